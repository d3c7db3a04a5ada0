"""Turn an Immich-style upstream CLIP export into a vidsearch model directory.

The upstream layout is the one Immich publishes for its smart search (``visual/model.onnx``,
``textual/model.onnx``, ``config.json``, ``visual/preprocess_cfg.json``,
``textual/tokenizer.json``...). Preprocessing and tokenizer settings come from a registry entry
when there is one and are cross-checked against the upstream config files; each tower is adapted
by :mod:`vidsearch.models.towers`.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from vidsearch.errors import ModelError, first_line
from vidsearch.models.contract import CLIP_MEAN, CLIP_STD, IMAGE_FILE, META_FILE, TEXT_FILE, ModelInfo, write_model_dir
from vidsearch.models.registry import PinnedModel
from vidsearch.models.towers import convert_tower, graph_inputs, tensor_dims

log = logging.getLogger(__name__)

TOKENIZER_FILE = "tokenizer.json"


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object file, or {} when the file is missing (or holds no object)."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ModelError(f"cannot read {path}: {e}") from None
    return data if isinstance(data, dict) else {}


def _token_str(v: Any) -> str | None:
    if isinstance(v, dict):
        v = v.get("content")
    return v if isinstance(v, str) else None


def _pad_id(textual: Path, tok_file: Path, pad_token: str | None) -> int:
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise ModelError("this model's tokenizer needs the 'tokenizers' package: pip install 'vidsearch[hub]'") from None
    try:
        tok = Tokenizer.from_file(str(tok_file))
    except Exception as e:
        raise ModelError(f"{tok_file} is not a tokenizers file ({first_line(e)})") from None
    if pad_token is None:
        for cfg in ("tokenizer_config.json", "special_tokens_map.json"):
            pad_token = _token_str(read_json(textual / cfg).get("pad_token"))
            if pad_token:
                break
    if pad_token is not None:
        pid = tok.token_to_id(pad_token)
        if pid is None:
            raise ModelError(f"{tok_file} has no pad token {pad_token!r}")
        return int(pid)
    padding = read_json(tok_file).get("padding") or {}
    if isinstance(padding, dict) and "pad_id" in padding:
        return int(padding["pad_id"])
    return 0


def looks_upstream(path: Path) -> bool:
    return (path / "visual" / "model.onnx").is_file() or (path / "textual" / "model.onnx").is_file()



@dataclasses.dataclass(frozen=True)
class _Text:
    """How the text tower is fed: tokenizer kind, token count, pad id (HF tokenizers only)."""

    kind: str  # "clip-bpe" | "hf-tokenizers"
    context_length: int
    pad_id: int | None
    tok_file: Path


def _image_settings(src: Path, cfg: dict, pre: dict, h: PinnedModel | None) -> tuple[int, tuple, tuple]:
    """Image size, mean and std: the registry's values, checked against preprocess_cfg.json."""
    size = pre.get("size")
    cfg_size = size[0] if isinstance(size, list) and size else size
    if cfg_size is None:
        cfg_size = (cfg.get("vision_cfg") or {}).get("image_size")
        cfg_size = cfg_size[0] if isinstance(cfg_size, list) else cfg_size
    image_size = h.image_size if h and h.image_size else cfg_size
    if image_size is None:
        raise ModelError(f"{src}: cannot tell the image size (no visual/preprocess_cfg.json or config.json)")
    if cfg_size is not None and int(cfg_size) != int(image_size):
        raise ModelError(f"{src}: preprocess_cfg.json says {cfg_size}px images, the registry says {image_size}")
    mean = tuple(h.mean) if h and h.mean else tuple(pre.get("mean", CLIP_MEAN))
    std = tuple(h.std) if h and h.std else tuple(pre.get("std", CLIP_STD))
    for key, val in (("mean", mean), ("std", std)):
        if key in pre and not np.allclose(pre[key], val, atol=1e-6):
            raise ModelError(f"{src}: preprocess_cfg.json {key} {pre[key]} differs from the registry's {list(val)}")
    resize_mode = pre.get("resize_mode", "shortest")
    if resize_mode not in ("shortest",):
        log.warning("%s: upstream resizes with %r; vidsearch resizes the shortest side and centre-crops", src, resize_mode)
    return int(image_size), mean, std


def _text_settings(src: Path, textual: Path, cfg: dict, h: PinnedModel | None) -> _Text:
    """Tokenizer: CLIP BPE (vendored) unless the text tower is a Hugging Face model."""
    tok_file = src / "textual" / TOKENIZER_FILE
    text_cfg = cfg.get("text_cfg") or {}
    kind = h.tokenizer if h and h.tokenizer else None
    try:
        import onnx

        text_inputs = graph_inputs(onnx.load(str(textual), load_external_data=False).graph)
    except Exception as e:
        raise ModelError(f"textual/model.onnx is not a loadable ONNX model ({first_line(e)})") from None
    mask_inputs = [i for i in text_inputs if "mask" in i.name.lower()]
    ids_inputs = [i for i in text_inputs if "mask" not in i.name.lower()]
    if not ids_inputs:
        raise ModelError("textual/model.onnx has no token input; it is not a CLIP text tower")
    if kind is None:
        kind = "hf-tokenizers" if (mask_inputs or text_cfg.get("hf_tokenizer_name")) else "clip-bpe"
    # Text length: the exported graph's static length wins over config.json (M-CLIP's config is the image model's).
    context_length = int(text_cfg.get("context_length", 77))
    ids_shape = tensor_dims(ids_inputs[0])
    if len(ids_shape) == 2 and isinstance(ids_shape[1], int):
        context_length = int(ids_shape[1])
    pad_id: int | None = None
    if kind == "hf-tokenizers":
        if not tok_file.is_file():
            raise ModelError(f"{src}: the text tower needs textual/{TOKENIZER_FILE}, which is missing")
        pad_id = _pad_id(src / "textual", tok_file, h.pad_token if h else None)
    elif kind != "clip-bpe":
        raise ModelError(f"unknown tokenizer kind {kind!r}")
    return _Text(kind, context_length, pad_id, tok_file)


def _install_tokenizer(dest: Path, text: _Text) -> tuple[Any, dict[str, str]]:
    """Copy a Hugging Face tokenizer into ``dest``; returns model.json's tokenizer spec and extra files."""
    if text.kind != "hf-tokenizers":
        return "clip-bpe", {}
    shutil.copyfile(text.tok_file, dest / TOKENIZER_FILE)
    return {"type": "hf-tokenizers", "file": TOKENIZER_FILE, "pad_id": int(text.pad_id or 0)}, {TOKENIZER_FILE: ""}


def _convert_pair(src: Path, dest: Path, image_size: int, text: _Text, tokenizer_spec: Any) -> tuple[int, dict, list[str]]:
    """Convert both towers; returns (embedding dim, batch modes, extra files)."""
    from vidsearch.models.tokenizer import get_tokenizer

    tok = get_tokenizer(tokenizer_spec, text.context_length, dest)
    ids = np.asarray(tok(["a photo of a red car", "一只在草地上奔跑的狗"]), dtype=np.int64)
    rng = np.random.default_rng(0)
    pixels = rng.standard_normal((2, 3, int(image_size), int(image_size))).astype(np.float32)

    dim_i, mode_i, extra_i = convert_tower(src / "visual" / "model.onnx", dest / IMAGE_FILE, "image", pixels, None)
    dim_t, mode_t, extra_t = convert_tower(src / "textual" / "model.onnx", dest / TEXT_FILE, "text", ids, text.pad_id)
    if dim_i != dim_t:
        raise ModelError(f"{src}: the image tower gives {dim_i}-d embeddings but the text tower {dim_t}-d; they are not a pair")
    return dim_i, {"image": mode_i, "text": mode_t}, extra_i + extra_t


def convert_upstream(
    src: str | os.PathLike,
    dest: str | os.PathLike,
    *,
    name: str,
    hints: PinnedModel | None = None,
    source: dict[str, Any] | None = None,
) -> ModelInfo:
    """Convert an Immich-style export in ``src`` into a model directory ``dest`` (created).

    ``src`` holds ``visual/model.onnx`` and ``textual/model.onnx`` and, optionally,
    ``config.json`` (open_clip model config), ``visual/preprocess_cfg.json`` and
    ``textual/tokenizer.json`` (+ ``tokenizer_config.json``/``special_tokens_map.json``).
    ``hints`` (a registry entry) supply or check image size, mean/std, tokenizer and dim.
    """
    src, dest = Path(src), Path(dest)
    visual, textual = src / "visual" / "model.onnx", src / "textual" / "model.onnx"
    missing = [str(p.relative_to(src)) for p in (visual, textual) if not p.is_file()]
    if missing:
        raise ModelError(
            f"{src} is not an Immich-style CLIP export: it lacks {', '.join(missing)} "
            "(expected visual/model.onnx, textual/model.onnx, config.json, visual/preprocess_cfg.json)"
        )
    cfg = read_json(src / "config.json")
    h = hints
    image_size, mean, std = _image_settings(src, cfg, read_json(src / "visual" / "preprocess_cfg.json"), h)
    text = _text_settings(src, textual, cfg, h)

    dest.mkdir(parents=True, exist_ok=True)
    tokenizer_spec, extra_files = _install_tokenizer(dest, text)
    dim, modes, extra = _convert_pair(src, dest, image_size, text, tokenizer_spec)
    cfg_dim = cfg.get("embed_dim")
    if h and h.dim and h.dim != dim:
        raise ModelError(f"{src}: embeddings are {dim}-d, the registry says {h.dim}")
    if cfg_dim and int(cfg_dim) != dim and text.kind == "clip-bpe":
        raise ModelError(f"{src}: embeddings are {dim}-d, config.json says {cfg_dim}")
    extra_files.update({f: "" for f in extra})

    info = ModelInfo(
        name=name,
        image_size=image_size,
        dim=dim,
        files=extra_files,
        mean=tuple(float(v) for v in mean),  # type: ignore[arg-type]
        std=tuple(float(v) for v in std),  # type: ignore[arg-type]
        context_length=text.context_length,
        tokenizer=tokenizer_spec,
        arch=(h.arch if h else None) or cfg.get("model_name") or None,
        pretrained=h.pretrained if h else None,
        semantics="clip",
        description=(h.description if h and h.description else f"converted from {src.name}"),
    )
    info = write_model_dir(dest, info)
    src_meta = dict(source or {})
    src_meta.update({"layout": "immich-clip-onnx", "batch": modes})
    add_meta(dest, source=src_meta)
    return info


def add_meta(directory: Path, **extra: Any) -> None:
    """Add keys to model.json that ModelInfo does not model (it ignores unknown keys)."""
    meta = directory / META_FILE
    data = json.loads(meta.read_text())
    data.update(extra)
    meta.write_text(json.dumps(data, indent=2) + "\n")
