"""Image files as the image tower's input, and their unit embeddings (query by example)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from vidsearch.core.preprocess import center_crop, resize_dims, to_tensor
from vidsearch.errors import UserError, first_line
from vidsearch.models.contract import ModelInfo


def load_image_pixels(path: str | Path, info: ModelInfo) -> np.ndarray:
    """An image file as the image tower's input [1,3,S,S]: shortest side to S, centre crop, mean/std."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im).convert("RGB")  # a phone's photo: turned as its EXIF says it is shown
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
