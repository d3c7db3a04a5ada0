"""The registry of pinned models that ``vidsearch model pull`` knows, and where their files live.

Each :class:`PinnedModel` names an upstream repository, a git revision and the SHA-256 of each
file, so a (revision, path) pair names exactly one file content. ``VIDSEARCH_HUB_URL`` replaces
``https://huggingface.co`` (a mirror with the same ``<repo>/resolve/<revision>/<path>`` layout);
``VIDSEARCH_HUB_REGISTRY`` names a JSON file with extra entries (same fields as PinnedModel).
"""
from __future__ import annotations

import dataclasses
import json
import urllib.parse
from pathlib import Path
from typing import Any

from vidsearch.errors import ModelError
from vidsearch.models.contract import CLIP_MEAN, CLIP_STD
from vidsearch.settings import current

HUB_URL_ENV = "VIDSEARCH_HUB_URL"
REGISTRY_ENV = "VIDSEARCH_HUB_REGISTRY"
DEFAULT_HUB_URL = "https://huggingface.co"
INCEPTION_MEAN = (0.5, 0.5, 0.5)
INCEPTION_STD = (0.5, 0.5, 0.5)


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    """One upstream file: its path under the repository, its SHA-256 (None: not pinned), its size."""

    path: str
    sha256: str | None = None
    size: int | None = None


@dataclasses.dataclass(frozen=True)
class PinnedModel:
    """A registry entry: where a model lives upstream and what our model.json will say.

    ``image_size``, ``mean``, ``std``, ``tokenizer`` and ``pad_token`` are what the model was
    trained with; when the upstream ``config.json`` / ``preprocess_cfg.json`` are also
    downloaded they are cross-checked against these values.
    """

    name: str
    repo: str
    revision: str
    files: tuple[RemoteFile, ...]
    arch: str | None = None
    pretrained: str | None = None
    image_size: int | None = None
    dim: int | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    tokenizer: str | None = None  # "clip-bpe" | "hf-tokenizers"; None: decide from the layout
    pad_token: str | None = None
    #: Download the external-data files ``textual/model.onnx`` / ``visual/model.onnx`` name
    #: (their names are only known from the graph; they are unpinned unless listed in ``files``).
    external_data: bool = False
    description: str = ""
    pin_source: str = ""

    @property
    def pinned(self) -> bool:
        return not self.external_data and all(f.sha256 for f in self.files)

    @property
    def download_size(self) -> int | None:
        sizes = [f.size for f in self.files]
        return None if any(s is None for s in sizes) else sum(sizes)  # type: ignore[arg-type]

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["files"] = [dataclasses.asdict(f) for f in self.files]
        d["pinned"] = self.pinned
        return d

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "PinnedModel":
        known = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in data.items() if k in known}
        missing = [k for k in ("name", "repo", "revision", "files") if k not in kw]
        if missing:
            raise ValueError(f"registry entry lacks {', '.join(missing)}")
        kw["files"] = tuple(
            RemoteFile(path=f["path"], sha256=f.get("sha256"), size=f.get("size")) if isinstance(f, dict) else RemoteFile(str(f))
            for f in kw["files"]
        )
        for k in ("mean", "std"):
            if kw.get(k) is not None:
                kw[k] = tuple(float(x) for x in kw[k])
        return cls(**kw)


# The pins below come from the LFS pointers shown on the Hugging Face commit pages of
# immich-app's repositories (the "+ oid sha256:... / size ..." lines of the commit that last
# changed both towers), so each (revision, path) pair names exactly one file content.
_BUILTIN: tuple[PinnedModel, ...] = (
    PinnedModel(
        name="clip-vit-b-32",
        repo="immich-app/ViT-B-32__openai",
        revision="77520f2136c0467e32b012be8d190ccf110c5667",
        files=(
            RemoteFile("visual/model.onnx", "91e4cb08370fa3bab75e4c8f2e35dff1c39a633aa3979bd9c06f142694cdef42", 351462928),
            RemoteFile("textual/model.onnx", "0b2072cd60a0c789ce418ad684d1ddc1a3936434b2bfeaff9f2eb6b1c06a4ec0", 253802891),
        ),
        arch="ViT-B-32",
        pretrained="openai",
        image_size=224,
        dim=512,
        mean=CLIP_MEAN,
        std=CLIP_STD,
        tokenizer="clip-bpe",
        description="OpenAI CLIP ViT-B/32: fast, English queries (the default)",
        pin_source="huggingface.co/immich-app/ViT-B-32__openai/commit/77520f2136c0467e32b012be8d190ccf110c5667",
    ),
    PinnedModel(
        name="clip-vit-b-32-laion2b",
        repo="immich-app/ViT-B-32__laion2b-s34b-b79k",
        revision="8204c663a7b5aa2edd55e0df578b39f57af07376",
        files=(
            RemoteFile("visual/model.onnx", "660f057ee8ba839f6ea43bcf9051bd577b436513e84da35dff91f26c9dc7e3a2", 351465480),
            RemoteFile("textual/model.onnx", "be71b030e2947ac9e99c9120e5970884f16882def778c80e4b7a9c89e28a20b4", 253805424),
        ),
        arch="ViT-B-32",
        pretrained="laion2b_s34b_b79k",
        image_size=224,
        dim=512,
        mean=CLIP_MEAN,
        std=CLIP_STD,
        tokenizer="clip-bpe",
        description="OpenCLIP ViT-B/32 trained on LAION-2B: same speed as clip-vit-b-32, better zero-shot accuracy",
        pin_source="huggingface.co/immich-app/ViT-B-32__laion2b-s34b-b79k/commit/8204c663a7b5aa2edd55e0df578b39f57af07376",
    ),
    PinnedModel(
        name="clip-vit-l-14",
        repo="immich-app/ViT-L-14__laion2b-s32b-b82k",
        revision="85f8d429fb8f0aa4bceadde7970dc1ad19038164",
        files=(
            RemoteFile("visual/model.onnx", "2981f1269ffcb0dc8c2888445f925035db965421dd2b3846b19546caa1172189", 1216001936),
            RemoteFile("textual/model.onnx", "26f17fc8e7fc28a296152904a02f9b3995c47690d367f1b68c564a12fe4bd52d", 494694283),
        ),
        arch="ViT-L-14",
        pretrained="laion2b_s32b_b82k",
        image_size=224,
        dim=768,
        mean=INCEPTION_MEAN,
        std=INCEPTION_STD,
        tokenizer="clip-bpe",
        description="OpenCLIP ViT-L/14 (LAION-2B): better recall, ~18x the compute per frame of ViT-B/32",
        pin_source="huggingface.co/immich-app/ViT-L-14__laion2b-s32b-b82k/commit/85f8d429fb8f0aa4bceadde7970dc1ad19038164",
    ),
    PinnedModel(
        name="clip-multilingual-vit-b-32",
        repo="immich-app/XLM-Roberta-Large-Vit-B-32",
        revision="ffb654c8551665771aee2dc00057651576fdea2c",
        files=(
            RemoteFile("visual/model.onnx"),
            RemoteFile("textual/model.onnx"),
            RemoteFile("textual/tokenizer.json"),
        ),
        arch="ViT-B-32",
        pretrained="M-CLIP/XLM-Roberta-Large-Vit-B-32",
        image_size=224,
        dim=512,
        mean=CLIP_MEAN,
        std=CLIP_STD,
        tokenizer="hf-tokenizers",
        pad_token="<pad>",
        external_data=True,
        description="M-CLIP XLM-RoBERTa-Large text tower + CLIP ViT-B/32: queries in ~100 languages (zh, id, ...)",
        pin_source="",  # no published SHA-256 found for these files: needs --trust-unpinned
    ),
)


def registry() -> dict[str, PinnedModel]:
    """Built-in pinned models plus the entries of ``$VIDSEARCH_HUB_REGISTRY`` (a JSON list)."""
    out = {m.name: m for m in _BUILTIN}
    extra = current().hub_registry
    if extra:
        try:
            data = json.loads(Path(extra).expanduser().read_text())
            entries = data.get("models", data) if isinstance(data, dict) else data
            for e in entries:
                m = PinnedModel.from_json(e)
                out[m.name] = m
        except (OSError, ValueError, TypeError, KeyError, json.JSONDecodeError) as e:
            raise ModelError(f"cannot read the model registry {extra} (${REGISTRY_ENV}): {e}") from None
    return out


def hub_url() -> str:
    return (current().hub_url or DEFAULT_HUB_URL).rstrip("/")


def file_url(entry: PinnedModel, path: str, base: str | None = None) -> str:
    quoted = urllib.parse.quote(f"{entry.repo}/resolve/{entry.revision}/{path}")
    return f"{base or hub_url()}/{quoted}"
