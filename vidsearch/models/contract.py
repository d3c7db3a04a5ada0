"""The model contract: a model is a directory, never a download.

A model directory holds::

    image.onnx   float32 pixels [N, 3, H, W] (normalised with mean/std) -> embeddings [N, dim]
    text.onnx    int64 token ids [N, context_length]                   -> embeddings [N, dim]
    model.json   metadata (see ``ModelInfo``), including the SHA-256 of both ONNX files

This module is pure: it reads and validates ``model.json`` and resolves model names to
directories. Running the ONNX files is the job of :mod:`vidsearch.models.encoder`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Iterator

from vidsearch.core.hashing import sha256_file
from vidsearch.errors import ModelError
from vidsearch.settings import models_dir, read_config

FORMAT = "vidsearch-model/1"
IMAGE_FILE = "image.onnx"
TEXT_FILE = "text.onnx"
META_FILE = "model.json"

#: Input / output tensor names of the two ONNX files.
IMAGE_INPUT = "pixel_values"
IMAGE_OUTPUT = "image_embeds"
TEXT_INPUT = "input_ids"
TEXT_OUTPUT = "text_embeds"

#: A model name (also its directory name under ``models/``).
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

EXPORT_HINT = (
    "vidsearch model export --arch ViT-B-32 --checkpoint PATH --out DIR "
    "(or vidsearch model pull clip-vit-b-32 / vidsearch model import DIR)"
)


def valid_name(name: str | None) -> bool:
    """Model names are file names: letters, digits, '.', '_' and '-', at most 100 characters."""
    return bool(NAME_RE.match(name or ""))


def model_id_for(name: str, files: dict[str, str]) -> str:
    """``name@<12 hex>``: the id that ``files`` (file name -> sha256) give a model called ``name``."""
    digest = hashlib.sha256((files.get(IMAGE_FILE, "") + files.get(TEXT_FILE, "")).encode()).hexdigest()[:12]
    return f"{name}@{digest}"


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What ``model.json`` says about a model directory."""

    name: str
    image_size: int
    dim: int
    files: dict[str, str]  # file name -> sha256
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    context_length: int = 77
    tokenizer: Any = "clip-bpe"  # "clip-bpe" or {"type": "hf-tokenizers", "file": "tokenizer.json"}
    arch: str | None = None
    pretrained: str | None = None
    #: "clip" for a real, meaningful model; "random" for random weights (plumbing only);
    #: "colours" for the demo model that only knows colour words.
    semantics: str = "clip"
    description: str = ""
    path: Path | None = None

    @property
    def model_id(self) -> str:
        """Stable id carried by every embedding: name plus a hash of both ONNX files."""
        return model_id_for(self.name, self.files)

    @property
    def is_semantic(self) -> bool:
        return self.semantics != "random"

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("path")
        d["format"] = FORMAT
        d["mean"] = list(self.mean)
        d["std"] = list(self.std)
        return d

    @classmethod
    def from_json(cls, data: dict[str, Any], path: Path | None = None) -> "ModelInfo":
        fmt = data.get("format", FORMAT)
        if fmt != FORMAT:
            raise ValueError(f"unsupported model format {fmt!r} (expected {FORMAT!r})")
        missing = [k for k in ("name", "image_size", "dim", "files") if k not in data]
        if missing:
            raise ValueError(f"model.json lacks {', '.join(missing)}")
        known = {f.name for f in dataclasses.fields(cls)} - {"path"}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["mean"] = tuple(float(x) for x in kwargs.get("mean", CLIP_MEAN))
        kwargs["std"] = tuple(float(x) for x in kwargs.get("std", CLIP_STD))
        kwargs["image_size"] = int(kwargs["image_size"])
        kwargs["dim"] = int(kwargs["dim"])
        kwargs["context_length"] = int(kwargs.get("context_length", 77))
        if len(kwargs["mean"]) != 3 or len(kwargs["std"]) != 3:
            raise ValueError("mean and std must have 3 values")
        return cls(path=path, **kwargs)


def write_model_dir(directory: str | os.PathLike, info: ModelInfo) -> ModelInfo:
    """Hash the ONNX files in ``directory`` and write ``model.json``; returns the final info."""
    directory = Path(directory)
    files = {name: sha256_file(directory / name) for name in (IMAGE_FILE, TEXT_FILE)}
    extra = {k: v for k, v in info.files.items() if k not in files and (directory / k).exists()}
    for k in extra:
        files[k] = sha256_file(directory / k)
    info = dataclasses.replace(info, files=files, path=directory)
    (directory / META_FILE).write_text(json.dumps(info.to_json(), indent=2) + "\n")
    return info


def resolve_model_path(name_or_path: str | os.PathLike | None) -> Path:
    """A model argument is a directory path or the name of an installed model.

    ``None`` means the configured default model.
    """
    if name_or_path is None:
        name_or_path = read_config().get("default_model")
        if not name_or_path:
            raise ModelError(
                "no model installed: run `vidsearch model pull clip-vit-b-32` "
                "(or `vidsearch model import DIR`, `vidsearch model export ...`, or `vidsearch demo` "
                "for the colours-only demo model)"
            )
    p = Path(name_or_path).expanduser()
    if p.is_dir() or os.sep in str(name_or_path) or str(name_or_path).startswith("."):
        return p
    return models_dir() / str(name_or_path)


def load_model_info(name_or_path: str | os.PathLike | None = None, verify: bool = False) -> ModelInfo:
    """Read and check a model directory. Never downloads anything.

    Raises :class:`ModelError` with a one-line message naming the directory and how to
    get a model. With ``verify`` every file is re-hashed and compared to model.json (loading an
    ONNX file always checks it: :mod:`vidsearch.models.verify`).
    """
    directory = resolve_model_path(name_or_path)
    if not directory.is_dir():
        raise ModelError(f"model directory {directory} does not exist; get a model with: {EXPORT_HINT}")
    meta = directory / META_FILE
    if not meta.is_file():
        raise ModelError(f"{directory} is not a model directory (no {META_FILE}); build one with: {EXPORT_HINT}")
    try:
        info = ModelInfo.from_json(json.loads(meta.read_text()), path=directory)
    except (ValueError, TypeError, json.JSONDecodeError) as e:
        raise ModelError(f"invalid {meta}: {e}; rebuild it with: {EXPORT_HINT}") from None
    for fname in (IMAGE_FILE, TEXT_FILE):
        if not (directory / fname).is_file():
            raise ModelError(f"model directory {directory} lacks {fname}; rebuild it with: {EXPORT_HINT}")
        if fname not in info.files:
            raise ModelError(f"{meta} has no sha256 for {fname}; rebuild it with: {EXPORT_HINT}")
    if verify:
        for fname, expected in info.files.items():
            check_file(directory, fname, expected)
    return info


def check_file(directory: Path, fname: str, expected: str) -> str:
    """Hash ``directory/fname`` in full; a :class:`ModelError` naming both hashes unless it is ``expected``."""
    path = directory / fname
    try:
        got = sha256_file(path)
    except OSError as e:
        raise ModelError(f"cannot read {path} ({e.strerror or e}); reinstall the model") from None
    if got != expected:
        raise ModelError(
            f"{path} does not match the sha256 in {META_FILE} (file {got}, {META_FILE} {expected}); "
            "the model is damaged or was modified: reinstall it"
        )
    return got


def installed_models() -> list[ModelInfo]:
    out = []
    root = models_dir()
    if root.is_dir():
        for d in sorted(root.iterdir()):
            if (d / META_FILE).is_file():
                try:
                    out.append(load_model_info(d))
                except ModelError:
                    continue
    return out


@contextlib.contextmanager
def staged_dir(final: Path) -> Iterator[Path]:
    """A temporary directory beside ``final`` to build a model in: it replaces ``final`` when the
    block ends normally and is removed when it raises (a model directory appears whole or not at all)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    import shutil
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o777 & ~mask)  # mkdtemp makes it 0700: give it a normal directory's mode
        yield tmp
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
