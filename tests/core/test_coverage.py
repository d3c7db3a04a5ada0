"""Coverage of a chunk by its decoded frames (pure)."""
from __future__ import annotations

from vidsearch.core.coverage import TOLERANCE, chunk_coverage, coverage, sampling_step, union


def test_a_whole_grid_is_covered():
    cov = coverage([float(t) for t in range(20)], 0.0, 20.0, 1.0)
    assert (cov.covered_s, cov.missing_s, cov.missing, cov.partial) == (20.0, 0.0, (), False)


def test_a_truncated_tail_and_a_hole_are_missing_with_their_times():
    cov = coverage([0, 1, 2, 3, 4, 5, 6, 7], 0.0, 20.0, 1.0)
    assert cov.partial and cov.missing == ((8.0, 20.0),) and (cov.covered_s, cov.missing_s) == (8.0, 12.0)
    cov = coverage([*range(10), *range(12, 20)], 0.0, 20.0, 1.0)
    assert cov.missing == ((10.0, 12.0),) and cov.missing_s == 2.0
    cov = coverage(range(65, 120), 60.0, 120.0, 1.0)
    assert cov.missing == ((60.0, 65.0),)


def test_jitter_within_the_tolerance_is_not_a_gap():
    assert TOLERANCE == 1.5
    assert not coverage([0, 1.4, 2.9, 4.0], 0.0, 5.0, 1.0).partial
    assert coverage([0, 1, 2.6, 3.6], 0.0, 5.0, 1.0).missing == ((2.0, 2.6),)


def test_no_frames_is_all_missing_but_keyframes_need_some_to_judge():
    assert coverage([], 10.0, 20.0, 1.0).missing == ((10.0, 20.0),)
    assert not coverage([], 10.0, 20.0, None).partial  # a chunk inside one long GOP
    assert not coverage([0, 2, 4, 6, 8], 0.0, 10.0, None).partial
    assert coverage([0, 2, 4, 6], 0.0, 20.0, None).missing == ((8.0, 20.0),)


def test_a_source_slower_than_the_sampling_is_not_partial():
    step = sampling_step("fps", 1.0, 2.0)  # a 0.5 fps camera sampled at 1 fps
    assert step == 2.0 and not coverage([0, 2, 4, 6, 8], 0.0, 10.0, step).partial
    assert sampling_step("keyframes", 1.0, 0.04) is None
    fields = chunk_coverage(0.0, 10.0, "fps", 1.0, [0, 1, 2], 0.1, damaged_packets=3)
    assert fields == {"covered_s": 3.0, "missing_s": 7.0, "missing": [[3.0, 10.0]], "damaged_packets": 3}


def test_union_merges_overlapping_stretches():
    assert union([(13, 20), (20, 30), (1, 2), (1.5, 1.8)]) == [(1.0, 2.0), (13.0, 30.0)]
