"""CLIP maths on unit embeddings (pure numpy): prompt ensembling, zero-shot softmax at CLIP's
logit scale, and the negative-prompt contrast score (Radford et al., 2021)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

#: CLIP's learned logit scale (exp(4.6052) = 100)
LOGIT_SCALE = 100.0


def ensemble(vectors: np.ndarray) -> np.ndarray:
    """Average of unit vectors, re-normalised (prompt ensembling, in embedding space; zero stays zero)."""
    v = np.asarray(vectors, dtype=np.float64).mean(axis=0)
    n = float(np.linalg.norm(v))
    return (v / n if n > 0 else v).astype(np.float32)


def ensemble_groups(emb: np.ndarray, groups: int) -> np.ndarray:
    """[groups * per_group, dim] unit vectors (consecutive runs of one group) -> [groups, dim] ensembles."""
    emb = np.asarray(emb, dtype=np.float32)
    return np.stack([ensemble(e) for e in emb.reshape(groups, len(emb) // groups, -1)])


def softmax_probs(cosines: np.ndarray, scale: float = LOGIT_SCALE) -> np.ndarray:
    """Row-wise ``softmax(scale * cosines)``: [N, K] cosines -> [N, K] probabilities."""
    z = scale * np.asarray(cosines, dtype=np.float64)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def contrast_scores(pos: np.ndarray, negs: Sequence[np.ndarray], scale: float = LOGIT_SCALE) -> np.ndarray:
    """Score with negative prompts: ``cos(x, q+) * P(q+ | x)``.

    ``P(q+ | x)`` is CLIP zero-shot classification of the frame between the positive prompt and
    each negative prompt: ``softmax(scale * [cos(x,q+), cos(x,q-1), ...])[0]``. A frame that the
    model finds closer to a negative prompt loses almost all its score; a frame that matches the
    positive prompt better keeps its cosine (so scores stay on the usual scale and the adaptive
    threshold works as without negatives).
    """
    pos = np.asarray(pos, dtype=np.float64)
    if not len(negs):
        return pos.astype(np.float32)
    p = softmax_probs(np.stack([pos, *[np.asarray(n, dtype=np.float64) for n in negs]], axis=1), scale)[:, 0]
    return (pos * p).astype(np.float32)
