"""Query vectors: text prompts and example images as unit embeddings, and the query's one-line label."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from vidsearch.core.clip import ensemble
from vidsearch.models.images import image_vectors


def query_label(texts: Sequence[str], negatives: Sequence[str] = (), images: Sequence[str | Path] = ()) -> str:
    """One line naming the query: ``red | crimson + image:cat.png - not: blue``."""
    parts = [" | ".join(texts)] if texts else []
    parts += [f"image:{Path(p).name}" for p in images]
    label = " + ".join(parts)
    if negatives:
        label += " - not: " + " | ".join(negatives)
    return label


def query_vectors(encoder, texts: Sequence[str], negatives: Sequence[str] = (), images: Sequence[str | Path] = ()):
    """(positive unit vector, [negative unit vectors]).

    The positive vector averages the unit embeddings of every prompt and example image
    (:func:`vidsearch.core.clip.ensemble`). Negative prompts the model cannot embed (a zero
    vector) are dropped.
    """
    vecs = []
    if texts:
        vecs.append(encoder.encode_texts(list(texts)))
    if images:
        vecs.append(image_vectors(encoder, images))
    pos = ensemble(np.concatenate(vecs)) if vecs else np.zeros(encoder.info.dim, np.float32)
    negs = [v for v in (encoder.encode_texts(list(negatives)) if negatives else []) if np.any(v)]
    return pos, negs
