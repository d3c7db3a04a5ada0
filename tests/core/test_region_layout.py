"""The region layout (pure): tiles, names, and the sampling key that carries the grid."""
from __future__ import annotations

import numpy as np
import pytest

from vidsearch.core.plan import Sampling, plan_video
from vidsearch.core.regions import best_of_regions, count, decode_side, frame_starts, layout, pixel_box, where


def test_layout_is_the_whole_frame_then_overlapping_tiles():
    assert layout(1) == [(0.0, 0.0, 1.0, 1.0)]
    boxes = layout(3)
    assert len(boxes) == count(3) == 10 and boxes[0] == (0.0, 0.0, 1.0, 1.0)
    assert boxes[1] == (0.0, 0.0, 0.5, 0.5) and boxes[3] == (0.5, 0.0, 1.0, 0.5) and boxes[9] == (0.5, 0.5, 1.0, 1.0)
    assert boxes[2] == (0.25, 0.0, 0.75, 0.5)  # neighbours overlap by half a tile
    for n in range(2, 7):
        tiles = np.array(layout(n)[1:])
        assert len(tiles) == n * n and tiles.min() >= 0 and tiles.max() <= 1
        assert tiles[:, 2].max() == pytest.approx(1.0) and tiles[:, 3].max() == pytest.approx(1.0)
        # any square of up to half a tile's side lies whole inside some tile
        side = (2 / (n + 1)) / 2
        for cx in np.linspace(side / 2, 1 - side / 2, 7):
            inside = (tiles[:, 0] <= cx - side / 2 + 1e-9) & (tiles[:, 2] >= cx + side / 2 - 1e-9)
            assert inside.any()
    with pytest.raises(ValueError):
        layout(0)
    with pytest.raises(ValueError):
        layout(7)


def test_names_and_pixels():
    assert where((0.5, 0.0, 1.0, 0.5)) == "top-right"
    assert where((0.25, 0.25, 0.75, 0.75)) == "centre"
    assert where((0.0, 0.5, 0.5, 1.0)) == "bottom-left"
    assert where((0.25, 0.5, 0.75, 1.0)) == "bottom"
    assert where((0.0, 0.0, 1.0, 1.0)) == where(None) == "whole frame"
    assert pixel_box((0.5, 0.0, 1.0, 0.5), 320, 180) == (160, 0, 320, 90)
    assert decode_side(1, 224) == 224 and decode_side(3, 224) == 448


def test_best_of_regions_per_frame():
    region = np.array([0, 1, 2, 0, 1, 2, 0])
    starts = frame_starts(region)
    assert starts.tolist() == [0, 3, 6, 7]
    assert best_of_regions(np.array([0.1, 0.5, 0.2, 0.3, 0.1, 0.0, 0.9]), starts).tolist() == [0.5, 0.3, 0.9]


def test_the_grid_is_part_of_the_chunk_key_only_when_used():
    assert Sampling("fps", 1.0).key == "fps=1"
    s = Sampling("fps", 2.0, regions=3)
    assert s.key == "fps=2+regions=3" and Sampling.parse(s.key) == s
    assert Sampling.parse("keyframes+regions=2") == Sampling("keyframes", regions=2)
    with pytest.raises(ValueError):
        Sampling.parse("fps=1+colour=3")
    whole = plan_video("v" * 64, "/a.mp4", 25.0, "m@1", Sampling(), 10)
    tiles = plan_video("v" * 64, "/a.mp4", 25.0, "m@1", Sampling(regions=3), 10)
    # whole-frame chunks keep the ids they always had; a grid is another plan
    assert whole[0].chunk_id == plan_video("v" * 64, "/a.mp4", 25.0, "m@1", Sampling("fps", 1.0), 10)[0].chunk_id
    assert {c.chunk_id for c in whole}.isdisjoint(c.chunk_id for c in tiles)
    assert tiles[0].name.endswith("-fps1+regions3")
