"""CLIP maths: prompt ensembling, softmax at logit scale 100, the negative-prompt contrast score."""
from __future__ import annotations

import numpy as np
import pytest

from vidsearch.core.clip import LOGIT_SCALE, contrast_scores, ensemble, ensemble_groups, softmax_probs


def test_ensemble_is_the_renormalised_mean():
    v = ensemble(np.array([[1.0, 0.0], [0.0, 1.0]]))
    assert v.dtype == np.float32
    np.testing.assert_allclose(v, [2 ** -0.5, 2 ** -0.5], rtol=1e-6)
    np.testing.assert_array_equal(ensemble(np.zeros((3, 4))), np.zeros(4))  # zero stays zero
    groups = ensemble_groups(np.array([[1, 0], [0, 1], [0, 1], [0, 1]], dtype=np.float32), 2)
    np.testing.assert_allclose(groups, [[2 ** -0.5, 2 ** -0.5], [0, 1]], rtol=1e-6)


def test_softmax_uses_clip_logit_scale():
    assert LOGIT_SCALE == 100.0
    p = softmax_probs(np.array([[0.30, 0.29, 0.20]]))
    e = np.exp(100 * np.array([0.30, 0.29, 0.20]))
    np.testing.assert_allclose(p[0], e / e.sum())
    assert p[0, 0] == pytest.approx(1 / (1 + np.exp(-1) + np.exp(-10)))  # a 0.01 cosine gap is a factor e
    np.testing.assert_allclose(softmax_probs(np.zeros((2, 4))), 0.25)


def test_contrast_formula():
    pos = np.array([0.30, 0.30, 0.02])
    neg = np.array([0.10, 0.40, 0.02])
    s = contrast_scores(pos, [neg])
    assert s[0] == pytest.approx(0.30, rel=1e-6)  # positive wins by 0.2: keeps its cosine
    assert s[1] == pytest.approx(0.30 / (1 + np.exp(10)), rel=1e-5)  # negative wins by 0.1: nearly nothing left
    assert s[2] == pytest.approx(0.01, rel=1e-6)  # a tie halves the score
    np.testing.assert_allclose(contrast_scores(pos, []), pos.astype(np.float32))
