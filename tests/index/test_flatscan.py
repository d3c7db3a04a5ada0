"""The fused flat scan (vidsearch/index/flatscan.py) and the coarse stage's parts (vidsearch/index/coarse.py)."""
from __future__ import annotations

import numpy as np
import pytest

from vidsearch.index import coarse
from vidsearch.index.flatscan import open_flat
from vidsearch.index.matrix import dir_lock

pytestmark = pytest.mark.scale


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_flat_scan_reads_the_matrix_file_in_place(tmp_path, dtype):
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((5000, 48)).astype(dtype)
    (tmp_path / "emb").write_bytes(emb.tobytes() + b"\0" * 1000)  # a crashed append's leftovers past the rows
    q = rng.standard_normal(48).astype(np.float32)
    ref = emb.astype(np.float32) @ q
    scan = open_flat(tmp_path / "emb", 4000, 48, dtype)  # the manifest's row count, not the file's
    s, rows = scan.search(q, 10)
    assert rows.tolist() == np.argsort(-ref[:4000])[:10].tolist()
    np.testing.assert_allclose(s, ref[rows], rtol=1e-5, atol=1e-4)
    s, rows = scan.above(q, 5.0)
    assert sorted(rows.tolist()) == np.flatnonzero(ref[:4000] > 5.0).tolist()


def test_coarse_parts_cover_consecutive_rows_and_merge_when_small(tmp_path, monkeypatch):
    monkeypatch.setattr(coarse, "PART_ROWS", 4000)
    monkeypatch.setattr(coarse, "MAX_SMALL_PARTS", 3)
    rng = np.random.default_rng(1)
    emb = rng.standard_normal((9000, 32)).astype(np.float16)
    d = tmp_path / "m"
    d.mkdir()

    def upto(n, gen=1):
        return coarse.update(d, {"rows": n, "gen": gen}, emb[:n], dir_lock, min_rows=0)

    assert upto(6000) == "build"
    parts = lambda: [p[1:] for p in coarse.read_manifest(coarse.coarse_dir(d))["parts"]]
    assert parts() == [[0, 4000], [4000, 6000]]
    assert upto(6000) == "fresh"
    for n in (6500, 7000, 7500):
        assert upto(n) == "append"
    assert parts() == [[0, 4000], [4000, 6000], [6000, 6500], [6500, 7000], [7000, 7500]]
    upto(8000)  # 4 small parts: merged into one
    assert parts() == [[0, 4000], [4000, 6000], [6000, 8000]]
    c = coarse.open_coarse(d, 1, 8000)
    q = emb[1234].astype(np.float32)
    s, rows = c.search(q, 20)
    assert 1234 in rows.tolist()
    assert coarse.open_coarse(d, 2, 8000) is None  # another matrix generation
    assert upto(8000, gen=2) == "build" and parts() == [[0, 4000], [4000, 8000]]
    assert len(list(coarse.coarse_dir(d).glob("part-*"))) == 2  # the old generation's files are gone
