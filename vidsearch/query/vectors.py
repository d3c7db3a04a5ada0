"""Query vectors: text prompts and example images as unit embeddings, and the query's one-line label."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from vidsearch.core.clip import ensemble
from vidsearch.core.preprocess import center_crop, resize_dims, to_tensor
from vidsearch.errors import UserError, first_line
from vidsearch.models.contract import ModelInfo


def query_label(texts: Sequence[str], negatives: Sequence[str] = (), images: Sequence[str | Path] = ()) -> str:
    """One line naming the query: ``red | crimson + image:cat.png - not: blue``."""
    parts = [" | ".join(texts)] if texts else []
    parts += [f"image:{Path(p).name}" for p in images]
    label = " + ".join(parts)
    if negatives:
        label += " - not: " + " | ".join(negatives)
    return label


def load_image_pixels(path: str | Path, info: ModelInfo) -> np.ndarray:
    """An image file as the image tower's input [1,3,S,S]: shortest side to S, centre crop, mean/std."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = resize_dims(im.width, im.height, info.image_size)
            arr = np.asarray(im.resize((w, h), Image.BICUBIC))
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise UserError(f"{path}: cannot read the image ({first_line(e)}); pass a JPEG or PNG") from None
    return to_tensor([center_crop(arr, info.image_size)], info.mean, info.std)


def image_vectors(encoder, paths: Sequence[str | Path]) -> np.ndarray:
    """Unit embeddings [N, dim] of example images."""
    if not paths:
        return np.zeros((0, encoder.info.dim), dtype=np.float32)
    return encoder.encode_images(np.concatenate([load_image_pixels(p, encoder.info) for p in paths]))


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
