"""An int8 image tower (``vidsearch model quantize``), checked against the original before install.

ONNX Runtime *dynamic* quantization: the image tower's MatMul/Gemm weights become int8 (per
channel) and activations are quantized at run time, so no calibration set is kept. The text
tower is copied unchanged. The result is a new model directory with its own name (``NAME-int8``)
and therefore its own model id; ``model.json`` keeps ``semantics`` and records the source model
(``source_model``: name and model id) and the settings (``quantization``).

Before installing, both image towers embed the same sample of frames (:func:`agreement`):

* **cosine**: the mean cosine between each frame's fp32 and int8 embedding must be at least
  :data:`MIN_COSINE`;
* **top-10 overlap**: for each prompt, the share of the int8 tower's 10 best frames that are
  among the fp32 tower's 10 best (a frame whose fp32 score ties with the 10th, within
  :data:`TIE` of the score range, counts: near-duplicate frames swap places freely) must be at
  least :data:`MIN_OVERLAP` on average over the prompts.

Below either threshold nothing is installed. The CPU is what int8 is for: a GPU node keeps the
fp32 tower (TensorRT does its own FP16/INT8; see docs/gpu.md).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from vidsearch.core.preprocess import center_crop, to_tensor
from vidsearch.errors import ModelError, UserError, first_line
from vidsearch.models.contract import IMAGE_FILE, META_FILE, TEXT_FILE, ModelInfo, load_model_info, staged_dir, write_model_dir
from vidsearch.settings import models_dir

MIN_COSINE = 0.99
MIN_OVERLAP = 0.8
TOP_K = 10
TIE = 0.005  # scores this close to the k-th (fraction of the score range) tie with it
MIN_FRAMES = 3 * TOP_K  # fewer frames make the overlap meaningless
SUFFIX = "-int8"
OP_TYPES = ("MatMul", "Gemm")
#: Prompts for the overlap check, by the model's ``semantics``.
PROMPTS = {
    "colours": ("red", "blue", "green", "yellow", "gray", "black"),
    "default": ("a person walking", "a red car", "an empty corridor", "a truck at a loading bay",
                "people in a lobby", "a street at night"),
}


@dataclasses.dataclass
class Agreement:
    """How closely the int8 tower follows the fp32 one on a sample of frames."""

    frames: int
    mean_cosine: float
    min_cosine: float
    overlap: dict[str, float]  # prompt -> fraction of the top-k shared
    k: int = TOP_K
    min_cosine_required: float = MIN_COSINE
    min_overlap_required: float = MIN_OVERLAP

    @property
    def mean_overlap(self) -> float:
        return float(np.mean(list(self.overlap.values()))) if self.overlap else 0.0

    @property
    def failures(self) -> list[str]:
        out = []
        if self.mean_cosine < self.min_cosine_required:
            out.append(f"mean cosine {self.mean_cosine:.4f} < {self.min_cosine_required:g}")
        if self.mean_overlap < self.min_overlap_required:
            out.append(f"top-{self.k} overlap {self.mean_overlap:.2f} < {self.min_overlap_required:g}")
        return out

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict:
        return {"frames": self.frames, "mean_cosine": round(self.mean_cosine, 6), "min_cosine": round(self.min_cosine, 6),
                "top_k": self.k, "mean_overlap": round(self.mean_overlap, 4), "overlap": self.overlap,
                "thresholds": {"mean_cosine": self.min_cosine_required, "mean_overlap": self.min_overlap_required},
                "passed": self.passed}

    def summary(self) -> str:
        return (f"{self.frames} frames: mean cosine {self.mean_cosine:.5f} (min {self.min_cosine:.5f}), "
                f"top-{self.k} overlap {self.mean_overlap:.2f} over {len(self.overlap)} prompts "
                f"(required: {self.min_cosine_required:g} / {self.min_overlap_required:g})")


@dataclasses.dataclass
class QuantizeResult:
    info: ModelInfo  # the installed int8 model
    source: ModelInfo
    agreement: Agreement
    image_bytes: tuple[int, int]  # image.onnx size fp32, int8


def quantize_tower(src: Path, dst: Path, per_channel: bool = True) -> dict:
    """Write ``dst``: ``src`` with dynamically quantized int8 MatMul/Gemm weights; returns the settings."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    settings = {"method": "onnxruntime.quantize_dynamic", "weight_type": "QInt8", "per_channel": per_channel,
                "op_types": list(OP_TYPES)}
    hint = _DropHint()
    logging.getLogger().addFilter(hint)  # the quantizer logs a pre-processing tip on the root logger
    try:
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=per_channel,
                         op_types_to_quantize=list(OP_TYPES))
    except Exception as e:  # onnxruntime / onnx raise many types
        raise ModelError(f"cannot quantize {src}: {first_line(e) or type(e).__name__}") from None
    finally:
        logging.getLogger().removeFilter(hint)
    return settings


class _DropHint(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def pixels(frames: Iterable[np.ndarray], info: ModelInfo) -> np.ndarray:
    """RGB uint8 frames of any size -> the tower's input (short side resized, centre crop, mean/std)."""
    from PIL import Image

    from vidsearch.core.preprocess import resize_dims

    crops = []
    for f in frames:
        img = Image.fromarray(np.ascontiguousarray(f[:, :, :3]))
        img = img.resize(resize_dims(img.width, img.height, info.image_size), Image.BICUBIC)
        crops.append(center_crop(np.asarray(img), info.image_size))
    if not crops:
        return np.zeros((0, 3, info.image_size, info.image_size), np.float32)
    return to_tensor(crops, info.mean, info.std)


def _embed(encoder, x: np.ndarray, batch: int = 32) -> np.ndarray:
    return np.concatenate([encoder.encode_images(x[i: i + batch]) for i in range(0, len(x), batch)])


def top_overlap(ref: np.ndarray, cand: np.ndarray, k: int = TOP_K, tie: float = TIE) -> float:
    """Fraction of ``cand``'s top ``k`` that is in ``ref``'s top ``k``; a frame whose ``ref`` score
    is within ``tie`` x (the score range) of ``ref``'s k-th best counts as in it (near-duplicate
    frames swap places freely)."""
    kth = np.sort(ref)[::-1][k - 1]
    tol = tie * float(ref.max() - ref.min())
    top = np.argsort(-cand, kind="stable")[:k]
    return float(np.mean(ref[top] >= kth - tol))


def agreement(reference, candidate, frames: Iterable[np.ndarray], prompts: Sequence[str], k: int = TOP_K,
              min_cosine: float = MIN_COSINE, min_overlap: float = MIN_OVERLAP) -> Agreement:
    """Embed ``frames`` with both encoders and compare (module docstring). Text: ``reference``'s tower."""
    x = pixels(frames, reference.info)
    if len(x) < max(MIN_FRAMES, k):
        raise UserError(f"the agreement check needs at least {max(MIN_FRAMES, k)} frames, got {len(x)}")
    a, b = _embed(reference, x), _embed(candidate, x)
    cos = np.sum(a * b, axis=1)
    q = reference.encode_texts(list(prompts))
    overlap = {}
    for prompt, v in zip(prompts, q):
        overlap[prompt] = top_overlap(a @ v, b @ v, k)
    return Agreement(len(x), float(cos.mean()), float(cos.min()), overlap, k, min_cosine, min_overlap)


def default_prompts(info: ModelInfo) -> tuple[str, ...]:
    return PROMPTS.get(info.semantics, PROMPTS["default"])


def build_int8(source: ModelInfo, out_dir: Path, name: str) -> ModelInfo:
    """Write the int8 model directory ``out_dir`` from ``source`` (no check, no install)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = quantize_tower(source.path / IMAGE_FILE, out_dir / IMAGE_FILE)
    for fname in [TEXT_FILE, *(f for f in source.files if f not in (IMAGE_FILE, TEXT_FILE))]:
        if (source.path / fname).is_file():
            shutil.copyfile(source.path / fname, out_dir / fname)
    info = dataclasses.replace(
        source, name=name, files={f: "" for f in source.files if f != IMAGE_FILE}, path=None,
        description=f"{source.name} with an int8 image tower (dynamic quantization). " + source.description,
    )
    info = write_model_dir(out_dir, info)
    meta = json.loads((out_dir / META_FILE).read_text())
    upstream = json.loads((source.path / META_FILE).read_text()).get("source")
    if upstream is not None:  # where the fp32 model came from (model pull / import)
        meta["source"] = upstream
    meta["source_model"] = {"name": source.name, "model_id": source.model_id, "image_sha256": source.files.get(IMAGE_FILE)}
    meta["quantization"] = settings
    (out_dir / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return load_model_info(out_dir, verify=True)


def quantize_model(
    model: str | os.PathLike | None,
    frames: Iterable[np.ndarray],
    name: str | None = None,
    prompts: Sequence[str] | None = None,
    force: bool = False,
    min_cosine: float = MIN_COSINE,
    min_overlap: float = MIN_OVERLAP,
    root: Path | None = None,
    say: Callable[[str], None] = lambda msg: None,
) -> QuantizeResult:
    """Quantize ``model``'s image tower, check it on ``frames`` and install it as ``name``
    (default ``<name>-int8``) under ``root`` (default: the models directory). Raises
    :class:`ModelError` (nothing installed) when the check fails."""
    from vidsearch.models.encoder import Encoder

    source = load_model_info(model, verify=True)
    name = name or source.name + SUFFIX
    root = Path(root) if root is not None else models_dir()
    final = root / name
    if final.exists() and not force:
        raise UserError(f"{final} exists; pass --force to replace it")
    with staged_dir(final) as tmp:
        say(f"quantizing the image tower of {source.model_id} ...")
        info = build_int8(source, tmp, name)
        say("comparing the fp32 and int8 towers ...")
        check = agreement(Encoder(source, providers="cpu"), Encoder(info, providers="cpu"), frames,
                          list(prompts or default_prompts(source)), min_cosine=min_cosine, min_overlap=min_overlap)
        if not check.passed:
            raise ModelError(f"int8 tower refused, nothing installed: {'; '.join(check.failures)} on {check.frames} frames")
    sizes = ((source.path / IMAGE_FILE).stat().st_size, (final / IMAGE_FILE).stat().st_size)
    return QuantizeResult(load_model_info(final), source, check, sizes)
