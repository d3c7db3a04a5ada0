"""Getting a real model: pinned downloads (``pull``), offline copies (``import``), listing.

Loading a model never downloads (:mod:`vidsearch.models.contract`). This module is the one explicit,
verified way to get one:

* :func:`pull` fetches a model from the short :func:`registry` of pinned defaults. The files
  are public ONNX exports in the layout Immich publishes for its smart search
  (``<repo>/visual/model.onnx``, ``<repo>/textual/model.onnx``, ``config.json``,
  ``visual/preprocess_cfg.json``, ``textual/tokenizer.json``...), fetched at a pinned git
  revision, each checked against a pinned SHA-256 before it is used. Transfers go to
  ``<file>.part`` and resume with an HTTP ``Range`` request; a file whose hash does not match
  is discarded, never loaded. Files without a pinned hash are refused unless the caller
  passes ``trust_unpinned`` (their computed hashes are then recorded in ``model.json``).
* :func:`convert_upstream` turns that upstream layout into our model directory
  (``image.onnx``, ``text.onnx``, ``model.json``): the towers get our tensor names
  (``pixel_values`` -> ``image_embeds``, ``input_ids`` int64 -> ``text_embeds``); int32 token
  inputs get a Cast; a text tower that also wants an ``attention_mask`` (XLM-RoBERTa M-CLIP)
  computes it inside the graph from ``input_ids != pad_id``; a tower exported with a fixed
  batch of 1 is wrapped in an ONNX ``Scan`` over the batch. Each converted tower is checked by
  running a batch of two against two single runs.
* :func:`import_model` installs a model directory or archive (a copy of a pulled model, or an
  upstream-layout directory) on an air-gapped machine.

``VIDSEARCH_HUB_URL`` replaces ``https://huggingface.co`` (a mirror with the same
``<repo>/resolve/<revision>/<path>`` layout); ``VIDSEARCH_HUB_REGISTRY`` names a JSON file with
extra registry entries (same fields as :class:`PinnedModel`).
"""
from __future__ import annotations

import dataclasses
import http.client
import json
import logging
import os
import re
import shutil
import socket
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from vidsearch import __version__
from vidsearch.errors import first_line, ModelError, TransientError
from vidsearch.models.contract import (
    CLIP_MEAN,
    CLIP_STD,
    IMAGE_FILE,
    IMAGE_INPUT,
    IMAGE_OUTPUT,
    META_FILE,
    TEXT_FILE,
    TEXT_INPUT,
    TEXT_OUTPUT,
    ModelInfo,
    installed_models,
    load_model_info,
    sha256_file,
    write_model_dir,
)
from vidsearch.settings import current, home, models_dir, read_config, write_config

log = logging.getLogger(__name__)

HUB_URL_ENV = "VIDSEARCH_HUB_URL"
REGISTRY_ENV = "VIDSEARCH_HUB_REGISTRY"
DEFAULT_HUB_URL = "https://huggingface.co"
#: longest wait (seconds) between retries of an interrupted download
RETRY_BACKOFF_MAX_S = 30.0
INCEPTION_MEAN = (0.5, 0.5, 0.5)
INCEPTION_STD = (0.5, 0.5, 0.5)
TOKENIZER_FILE = "tokenizer.json"
#: ONNX protobufs cannot exceed 2 GiB; bigger towers are saved with their weights in ``<file>.data``.
_EXTERNAL_DATA_THRESHOLD = 1_800_000_000
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")

Progress = Callable[[str, int, "int | None"], None]


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Downloads
# --------------------------------------------------------------------------------------------


class _Interrupted(Exception):
    """A transfer that stopped early; what arrived is kept in the .part file."""


def _open(url: str, start: int, timeout: float):
    headers = {"User-Agent": f"vidsearch/{__version__} (+model pull)", "Accept-Encoding": "identity"}
    if start:
        headers["Range"] = f"bytes={start}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def _transfer(url: str, part: Path, expected_size: int | None, label: str, timeout: float, progress: Progress | None) -> None:
    """Append the rest of ``url`` to ``part`` (resuming with Range when part is not empty)."""
    start = part.stat().st_size if part.exists() else 0
    if expected_size is not None and start > expected_size:
        log.info("%s: %s is longer than the expected %d bytes; starting over", label, part, expected_size)
        part.unlink()
        start = 0
    if expected_size is not None and start == expected_size:
        return
    try:
        resp = _open(url, start, timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and start:
            # Nothing left to send: the part is complete (or not the file at all; the hash decides).
            return
        if e.code in (401, 403, 404, 410):
            raise ModelError(
                f"{label}: {url} answered HTTP {e.code}; the server does not have the expected layout "
                f"<repo>/resolve/<revision>/<path> (check {HUB_URL_ENV} or the registry entry)"
            ) from None
        raise _Interrupted(f"HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", e)
        raise _Interrupted(f"cannot reach {urllib.parse.urlsplit(url).netloc}: {reason}") from None
    with resp:
        status = getattr(resp, "status", 200)
        mode = "wb"
        if start and status == 206:
            m = re.match(r"bytes (\d+)-", resp.headers.get("Content-Range", ""))
            if m and int(m.group(1)) == start:
                mode = "ab"
            else:
                raise _Interrupted(f"the server resumed at {m.group(1) if m else '?'} instead of byte {start}")
        elif start:
            log.info("%s: server ignored the Range request; downloading from the start", label)
            start = 0
        length = resp.headers.get("Content-Length")
        total = start + int(length) if length and length.isdigit() else expected_size
        done = start
        with open(part, mode) as f:
            try:
                while True:
                    block = resp.read(1 << 20)
                    if not block:
                        break
                    f.write(block)
                    done += len(block)
                    if progress:
                        progress(label, done, total)
            except (http.client.IncompleteRead, OSError, socket.timeout, http.client.HTTPException) as e:
                raise _Interrupted(f"connection lost at {done} of {total or '?'} bytes ({type(e).__name__})") from None
        if total is not None and done < total:
            raise _Interrupted(f"connection closed at {done} of {total} bytes")


def download(
    url: str,
    dest: str | os.PathLike,
    sha256: str | None = None,
    size: int | None = None,
    *,
    retries: int = 3,
    timeout: float = 60.0,
    progress: Progress | None = None,
    label: str | None = None,
) -> str:
    """Download ``url`` to ``dest`` through ``dest + '.part'``; returns the file's SHA-256.

    An existing complete ``dest`` with the right hash is reused. A partial ``.part`` is resumed
    with an HTTP Range request (or restarted when the server ignores it). The finished file is
    hashed before it is renamed to ``dest``: a mismatch with ``sha256`` (or ``size``) deletes
    it and raises :class:`ModelError`. A transfer that keeps failing after ``retries`` retries
    raises :class:`TransientError` and leaves the ``.part`` for the next attempt.
    """
    dest = Path(dest)
    label = label or dest.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    if dest.exists():
        got = sha256_file(dest)
        if sha256 is None or got == sha256:
            return got
        dest.unlink()
    attempt = 0
    while True:
        try:
            _transfer(url, part, size, label, timeout, progress)
            break
        except _Interrupted as e:
            if attempt >= retries:
                have = part.stat().st_size if part.exists() else 0
                raise TransientError(
                    f"download of {label} failed: {e}; {have} bytes kept in {part}, run the same command again to resume"
                ) from None
            attempt += 1
            log.warning("%s: %s; retrying (%d/%d)", label, e, attempt, retries)
            time.sleep(min(2.0 ** attempt, RETRY_BACKOFF_MAX_S))
    got = sha256_file(part)
    have = part.stat().st_size
    if (sha256 is not None and got != sha256) or (size is not None and have != size):
        part.unlink()
        what = f"sha256 {got[:16]}… != pinned {sha256[:16]}…" if sha256 and got != sha256 else f"{have} bytes != pinned {size}"
        raise ModelError(f"{label} does not match its pin ({what}); the download was discarded and nothing was installed")
    os.replace(part, dest)
    return got


# --------------------------------------------------------------------------------------------
# ONNX conversion
# --------------------------------------------------------------------------------------------


def _graph_inputs(graph) -> list:
    inits = {t.name for t in graph.initializer}
    return [i for i in graph.input if i.name not in inits]


def _dims(vi) -> list[int | str | None]:
    out: list[int | str | None] = []
    for d in vi.type.tensor_type.shape.dim:
        if d.HasField("dim_value"):
            out.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            out.append(d.dim_param)
        else:
            out.append(None)
    return out


def _opset(model) -> int:
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            return int(o.version)
    return 13


def _axes_nodes(helper, opset: int, op: str, x: str, y: str, prefix: str) -> list:
    """``Unsqueeze``/``Squeeze`` on axis 0, as an input (opset >= 13) or an attribute."""
    if opset >= 13:
        axes = f"{prefix}_axes0"
        return [
            helper.make_node("Constant", [], [axes], value=helper.make_tensor(axes, 7, [1], [0])),
            helper.make_node(op, [x, axes], [y]),
        ]
    return [helper.make_node(op, [x], [y], axes=[0])]


def _rename(graph, old: str, new: str) -> None:
    """Rename value ``old`` to ``new`` everywhere in ``graph`` (and the subgraphs that see it)."""
    for node in graph.node:
        for i, n in enumerate(node.input):
            if n == old:
                node.input[i] = new
        for i, n in enumerate(node.output):
            if n == old:
                node.output[i] = new
        for a in node.attribute:
            if a.HasField("g"):
                _rename(a.g, old, new)
            for sub in a.graphs:
                _rename(sub, old, new)
    for vi in list(graph.input) + list(graph.output) + list(graph.value_info):
        if vi.name == old:
            vi.name = new


class _Tower:
    """An upstream tower adapted to our contract, buildable with a dynamic batch or a Scan."""

    def __init__(self, model, kind: str, pad_id: int | None = None):
        import onnx
        from onnx import TensorProto, helper

        self.onnx, self.helper, self.TP = onnx, helper, TensorProto
        self.model = model
        self.kind = kind
        self.opset = _opset(model)
        g = model.graph
        inputs = _graph_inputs(g)
        if not g.output:
            raise ValueError("the graph has no output")
        self.orig_out = g.output[0]
        if kind == "image":
            floats = [i for i in inputs if i.type.tensor_type.elem_type in (TensorProto.FLOAT, TensorProto.FLOAT16)]
            if len(inputs) != 1 or len(floats) != 1:
                raise ValueError(f"an image tower takes one float input, this one takes {[i.name for i in inputs]}")
            self.ids_in, self.mask_in = floats[0], None
            shape = _dims(self.ids_in)
            if len(shape) != 4 or shape[1] != 3:
                raise ValueError(f"image input {self.ids_in.name} has shape {shape}, expected [N, 3, S, S]")
            self.in_name, self.out_name = IMAGE_INPUT, IMAGE_OUTPUT
            self.in_type = TensorProto.FLOAT
        else:
            ints = [i for i in inputs if i.type.tensor_type.elem_type in (TensorProto.INT32, TensorProto.INT64)]
            if len(ints) != len(inputs) or not 1 <= len(inputs) <= 2:
                raise ValueError(f"a text tower takes token ids (and an attention mask), this one takes {[i.name for i in inputs]}")
            masks = [i for i in inputs if "mask" in i.name.lower()]
            ids = [i for i in inputs if i not in masks]
            if len(ids) != 1 or len(masks) > 1:
                raise ValueError(f"cannot tell token ids from attention mask among {[i.name for i in inputs]}")
            self.ids_in, self.mask_in = ids[0], (masks[0] if masks else None)
            if self.mask_in is not None and pad_id is None:
                raise ValueError("the text tower wants an attention_mask but the pad token id is unknown")
            shape = _dims(self.ids_in)
            if len(shape) != 2:
                raise ValueError(f"token input {self.ids_in.name} has shape {shape}, expected [N, length]")
            self.in_name, self.out_name = TEXT_INPUT, TEXT_OUTPUT
            self.in_type = TensorProto.INT64
        self.pad_id = pad_id
        self.shape = shape
        # Upstream names may be ours already ("input_ids" in M-CLIP): give them private names.
        for vi in (self.ids_in, self.mask_in, self.orig_out):
            if vi is not None:
                _rename(g, vi.name, f"upstream__{vi.name}")

    @property
    def sample_shape(self) -> list:
        return self.shape[1:]

    def _adapter(self, x: str, y: str) -> tuple[list, list]:
        """Nodes from our input ``x`` to the upstream inputs, and from the upstream output to ``y``."""
        h, TP = self.helper, self.TP
        pre: list = []
        want = self.ids_in.type.tensor_type.elem_type
        if want == self.in_type:
            pre.append(h.make_node("Identity", [x], [self.ids_in.name]))
        else:
            pre.append(h.make_node("Cast", [x], [self.ids_in.name], to=want))
        if self.mask_in is not None:
            pad = f"{y}__pad_id"
            pre += [
                h.make_node("Constant", [], [pad], value=h.make_tensor(pad, TP.INT64, [], [int(self.pad_id)])),
                h.make_node("Equal", [x, pad], [f"{y}__is_pad"]),
                h.make_node("Not", [f"{y}__is_pad"], [f"{y}__not_pad"]),
                h.make_node("Cast", [f"{y}__not_pad"], [self.mask_in.name], to=self.mask_in.type.tensor_type.elem_type),
            ]
        out_type = self.orig_out.type.tensor_type.elem_type
        post = [
            h.make_node("Identity", [self.orig_out.name], [y])
            if out_type == TP.FLOAT
            else h.make_node("Cast", [self.orig_out.name], [y], to=TP.FLOAT)
        ]
        return pre, post

    def _model(self, graph):
        m = self.helper.make_model(graph, opset_imports=list(self.model.opset_import), producer_name="vidsearch.hub")
        m.ir_version = self.model.ir_version
        m.functions.extend(self.model.functions)
        return m

    def build(self, mode: str):
        """``mode``: "dynamic" (the upstream graph with a symbolic batch) or "scan" (one sample at a time)."""
        h, g = self.helper, self.model.graph
        x, y = self.in_name, self.out_name
        sample = [d if isinstance(d, int) else None for d in self.sample_shape]
        x_vi = h.make_tensor_value_info(x, self.in_type, ["batch", *sample])
        y_vi = h.make_tensor_value_info(y, self.TP.FLOAT, ["batch", None])
        if mode == "dynamic":
            pre, post = self._adapter(x, y)
            graph = h.make_graph(pre + list(g.node) + post, "vidsearch_" + self.kind, [x_vi], [y_vi], initializer=list(g.initializer))
            return self._model(graph)
        if mode != "scan":
            raise ValueError(mode)
        xi, yi = f"{x}__sample", f"{y}__sample"
        xb, yb = f"{x}__one", f"{y}__one"
        pre, post = self._adapter(xb, yb)
        body_nodes = (
            _axes_nodes(h, self.opset, "Unsqueeze", xi, xb, f"{x}__u")
            + pre
            + list(g.node)
            + post
            + _axes_nodes(h, self.opset, "Squeeze", yb, yi, f"{y}__s")
        )
        body = h.make_graph(
            body_nodes,
            "vidsearch_" + self.kind + "_one",
            [h.make_tensor_value_info(xi, self.in_type, sample)],
            [h.make_tensor_value_info(yi, self.TP.FLOAT, [None])],
        )
        scan = h.make_node("Scan", [x], [y], body=body, num_scan_inputs=1)
        graph = h.make_graph([scan], "vidsearch_" + self.kind, [x_vi], [y_vi], initializer=list(g.initializer))
        return self._model(graph)


def _save_onnx(model, path: Path) -> list[str]:
    """Save ``model``; weights go to ``<name>.data`` when the protobuf would be too big. Returns extra files."""
    import onnx

    weight_bytes = sum(len(t.raw_data) for t in model.graph.initializer)
    for p in (path, path.with_name(path.name + ".data")):
        if p.exists():
            p.unlink()
    if weight_bytes > _EXTERNAL_DATA_THRESHOLD:
        data = path.name + ".data"
        onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location=data, size_threshold=1024)
        return [data]
    onnx.save_model(model, str(path))
    return []


def _run(path: Path, name: str, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 4  # a failing probe is expected; say nothing
    sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    return np.asarray(sess.run(None, {name: x})[0], dtype=np.float32)


def _batch_ok(path: Path, name: str, x: np.ndarray) -> tuple[bool, np.ndarray | None, str]:
    """Does the tower at ``path`` give, for a batch of two, the same rows as two single runs?"""
    try:
        both = _run(path, name, x)
        ones = np.concatenate([_run(path, name, x[i : i + 1]) for i in range(len(x))])
    except Exception as e:  # onnxruntime raises its own types
        return False, None, first_line(e)
    if both.shape != ones.shape or both.ndim != 2:
        return False, None, f"output shape {both.shape} for a batch of {len(x)}"
    if not np.all(np.isfinite(both)):
        return False, None, "non-finite output"
    n1 = both / np.maximum(np.linalg.norm(both, axis=1, keepdims=True), 1e-12)
    n2 = ones / np.maximum(np.linalg.norm(ones, axis=1, keepdims=True), 1e-12)
    if not np.allclose(n1, n2, rtol=1e-3, atol=2e-4):
        return False, None, f"batched rows differ from single runs by {float(np.abs(n1 - n2).max()):.2g}"
    return True, both, ""


def _convert_tower(src: Path, dest: Path, kind: str, sample: np.ndarray, pad_id: int | None) -> tuple[int, str, list[str]]:
    """Convert one upstream tower to ``dest``; returns (embedding dim, batch mode, extra files)."""
    import onnx

    label = f"{src.parent.name}/{src.name}"
    try:
        model = onnx.load(str(src), load_external_data=True)
    except Exception as e:
        raise ModelError(f"{label} is not a loadable ONNX model ({first_line(e)})") from None
    try:
        tower = _Tower(model, kind, pad_id)
    except ValueError as e:
        raise ModelError(f"{label}: {e}; it is not a CLIP {kind} tower in the expected layout") from None
    if kind == "image":
        s = tower.sample_shape
        if isinstance(s[1], int) and isinstance(s[2], int) and (s[1], s[2]) != sample.shape[2:]:
            raise ModelError(f"{label} takes {s[1]}x{s[2]} images but the model config says {sample.shape[2]}")
    else:
        length = tower.sample_shape[0]
        if isinstance(length, int) and length != sample.shape[1]:
            raise ModelError(f"{label} takes {length} tokens but the model config says {sample.shape[1]}")
    name = tower.in_name
    errors = []
    for mode in ("dynamic", "scan"):
        extra = _save_onnx(tower.build(mode), dest)
        ok, out, why = _batch_ok(dest, name, sample)
        if ok and out is not None:
            log.info("%s: converted (%s batch)", label, mode)
            return int(out.shape[1]), mode, extra
        errors.append(f"{mode}: {why}")
        log.info("%s: %s batch does not work (%s)", label, mode, why)
    raise ModelError(f"cannot adapt {label} to batched inference ({'; '.join(errors)})")


def _read_json(path: Path) -> dict[str, Any]:
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
            pad_token = _token_str(_read_json(textual / cfg).get("pad_token"))
            if pad_token:
                break
    if pad_token is not None:
        pid = tok.token_to_id(pad_token)
        if pid is None:
            raise ModelError(f"{tok_file} has no pad token {pad_token!r}")
        return int(pid)
    padding = _read_json(tok_file).get("padding") or {}
    if isinstance(padding, dict) and "pad_id" in padding:
        return int(padding["pad_id"])
    return 0


def looks_upstream(path: Path) -> bool:
    return (path / "visual" / "model.onnx").is_file() or (path / "textual" / "model.onnx").is_file()


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
    cfg = _read_json(src / "config.json")
    pre = _read_json(src / "visual" / "preprocess_cfg.json")
    h = hints

    # Image size, mean and std: the registry's values, checked against preprocess_cfg.json.
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

    # Tokenizer: CLIP BPE (vendored) unless the text tower is a Hugging Face model.
    tok_file = src / "textual" / TOKENIZER_FILE
    text_cfg = cfg.get("text_cfg") or {}
    tokenizer_kind = h.tokenizer if h and h.tokenizer else None
    try:
        import onnx

        text_inputs = _graph_inputs(onnx.load(str(textual), load_external_data=False).graph)
    except Exception as e:
        raise ModelError(f"textual/model.onnx is not a loadable ONNX model ({first_line(e)})") from None
    mask_inputs = [i for i in text_inputs if "mask" in i.name.lower()]
    ids_inputs = [i for i in text_inputs if "mask" not in i.name.lower()]
    if not ids_inputs:
        raise ModelError("textual/model.onnx has no token input; it is not a CLIP text tower")
    if tokenizer_kind is None:
        tokenizer_kind = "hf-tokenizers" if (mask_inputs or text_cfg.get("hf_tokenizer_name")) else "clip-bpe"
    # Text length: the exported graph's static length wins over config.json (M-CLIP's config is the image model's).
    context_length = int(text_cfg.get("context_length", 77))
    ids_shape = _dims(ids_inputs[0])
    if len(ids_shape) == 2 and isinstance(ids_shape[1], int):
        context_length = int(ids_shape[1])
    pad_id: int | None = None
    if tokenizer_kind == "hf-tokenizers":
        if not tok_file.is_file():
            raise ModelError(f"{src}: the text tower needs textual/{TOKENIZER_FILE}, which is missing")
        pad_id = _pad_id(src / "textual", tok_file, h.pad_token if h else None)
    elif tokenizer_kind != "clip-bpe":
        raise ModelError(f"unknown tokenizer kind {tokenizer_kind!r}")

    dest.mkdir(parents=True, exist_ok=True)
    tokenizer_spec: Any = "clip-bpe"
    extra_files: dict[str, str] = {}
    if tokenizer_kind == "hf-tokenizers":
        shutil.copyfile(tok_file, dest / TOKENIZER_FILE)
        tokenizer_spec = {"type": "hf-tokenizers", "file": TOKENIZER_FILE, "pad_id": int(pad_id or 0)}
        extra_files[TOKENIZER_FILE] = ""

    from vidsearch.models.tokenizer import get_tokenizer

    tok = get_tokenizer(tokenizer_spec, context_length, dest)
    ids = np.asarray(tok(["a photo of a red car", "一只在草地上奔跑的狗"]), dtype=np.int64)
    rng = np.random.default_rng(0)
    pixels = rng.standard_normal((2, 3, int(image_size), int(image_size))).astype(np.float32)

    dim_i, mode_i, extra_i = _convert_tower(visual, dest / IMAGE_FILE, "image", pixels, None)
    dim_t, mode_t, extra_t = _convert_tower(textual, dest / TEXT_FILE, "text", ids, pad_id)
    if dim_i != dim_t:
        raise ModelError(f"{src}: the image tower gives {dim_i}-d embeddings but the text tower {dim_t}-d; they are not a pair")
    cfg_dim = cfg.get("embed_dim")
    if h and h.dim and h.dim != dim_i:
        raise ModelError(f"{src}: embeddings are {dim_i}-d, the registry says {h.dim}")
    if cfg_dim and int(cfg_dim) != dim_i and tokenizer_kind == "clip-bpe":
        raise ModelError(f"{src}: embeddings are {dim_i}-d, config.json says {cfg_dim}")
    for f in extra_i + extra_t:
        extra_files[f] = ""

    info = ModelInfo(
        name=name,
        image_size=int(image_size),
        dim=dim_i,
        files=extra_files,
        mean=tuple(float(v) for v in mean),  # type: ignore[arg-type]
        std=tuple(float(v) for v in std),  # type: ignore[arg-type]
        context_length=context_length,
        tokenizer=tokenizer_spec,
        arch=(h.arch if h else None) or cfg.get("model_name") or None,
        pretrained=h.pretrained if h else None,
        semantics="clip",
        description=(h.description if h and h.description else f"converted from {src.name}"),
    )
    info = write_model_dir(dest, info)
    src_meta = dict(source or {})
    src_meta.update({"layout": "immich-clip-onnx", "batch": {"image": mode_i, "text": mode_t}})
    _add_meta(dest, source=src_meta)
    return info


def _add_meta(directory: Path, **extra: Any) -> None:
    """Add keys to model.json that ModelInfo does not model (it ignores unknown keys)."""
    meta = directory / META_FILE
    data = json.loads(meta.read_text())
    data.update(extra)
    meta.write_text(json.dumps(data, indent=2) + "\n")


# --------------------------------------------------------------------------------------------
# Installing
# --------------------------------------------------------------------------------------------


def _check_name(name: str) -> str:
    if not _NAME_RE.match(name or ""):
        raise ModelError(f"invalid model name {name!r}: use letters, digits, '.', '_' and '-'")
    return name


def _install_dir(tmp: Path, name: str, force: bool) -> Path:
    """Move a finished model directory into ``models/<name>`` (replacing it with ``force``)."""
    target = models_dir() / name
    if target.exists():
        if not force:
            raise ModelError(f"a model named {name} is already installed in {target}; add --force to replace it")
        old = target.with_name(f".{name}.old-{os.getpid()}")
        os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)
    return target


def _maybe_default(name: str, make_default: bool | None) -> bool:
    """Make ``name`` the default when asked, or when no (working) default is configured."""
    current = read_config().get("default_model")
    if make_default or (make_default is None and (not current or not (models_dir() / str(current)).is_dir())):
        write_config(default_model=name)
        return True
    return False


def _staging(prefix: str) -> Path:
    root = models_dir()
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{prefix}-", dir=root))


def _external_locations(onnx_path: Path) -> list[str]:
    import onnx

    try:
        m = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as e:
        raise ModelError(f"{onnx_path.name} is not a loadable ONNX model ({first_line(e)})") from None
    locs: set[str] = set()
    tensors = list(m.graph.initializer)
    for node in m.graph.node:
        for a in node.attribute:
            if a.HasField("t"):
                tensors.append(a.t)
    for t in tensors:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            for kv in t.external_data:
                if kv.key == "location":
                    locs.add(kv.value)
    for loc in locs:
        if loc.startswith(("/", "\\")) or ".." in Path(loc).parts:
            raise ModelError(f"{onnx_path.name} names an unsafe external data path {loc!r}")
    return sorted(locs)


def pull(
    name: str,
    *,
    trust_unpinned: bool = False,
    force: bool = False,
    make_default: bool | None = None,
    retries: int = 3,
    timeout: float = 60.0,
    keep_download: bool = False,
    progress: Progress | None = None,
) -> ModelInfo:
    """Download, verify, convert and install the registry model ``name``.

    Refuses (before downloading anything) a model with unpinned files unless ``trust_unpinned``.
    """
    entries = registry()
    entry = entries.get(name)
    if entry is None:
        raise ModelError(f"unknown model {name!r}; choose one of: {', '.join(sorted(entries))} (vidsearch model list --available)")
    unpinned = [f.path for f in entry.files if not f.sha256]
    if (unpinned or entry.external_data) and not trust_unpinned:
        what = ", ".join(unpinned) + (" and the external weight files its graphs name" if entry.external_data else "")
        raise ModelError(
            f"{name} has files without a pinned sha256 ({what}); nothing was downloaded. "
            f"Pull it with --trust-unpinned to install them anyway (their computed hashes go into model.json), "
            f"or pick a pinned model: {', '.join(n for n, e in sorted(entries.items()) if e.pinned)}"
        )
    target = models_dir() / name
    if target.exists() and not force:
        try:
            info = load_model_info(target)
        except ModelError:
            info = None
        if info is not None:
            src = _read_json(target / META_FILE).get("source") or {}
            if src.get("revision") == entry.revision and src.get("repo") == entry.repo:
                _maybe_default(name, make_default)
                return info
        raise ModelError(f"a different model named {name} is installed in {target}; add --force to replace it")

    base = hub_url()
    cache = home() / "downloads" / entry.repo.replace("/", "__") / entry.revision
    fetched: dict[str, dict[str, Any]] = {}

    def fetch(rf: RemoteFile) -> Path:
        dest = cache / rf.path
        got = download(
            file_url(entry, rf.path, base), dest, rf.sha256, rf.size,
            retries=retries, timeout=timeout, progress=progress, label=rf.path,
        )
        fetched[rf.path] = {"sha256": got, "pinned": bool(rf.sha256)}
        return dest

    for rf in entry.files:
        fetch(rf)
    if entry.external_data:
        listed = {f.path for f in entry.files}
        for tower in ("visual", "textual"):
            graph = cache / tower / "model.onnx"
            if graph.is_file():
                for loc in _external_locations(graph):
                    path = f"{tower}/{loc}"
                    if path not in listed:
                        fetch(RemoteFile(path))

    staging = _staging(name)
    try:
        source = {
            "kind": "pull",
            "hub": base,
            "repo": entry.repo,
            "revision": entry.revision,
            "files": fetched,
            "pinned": all(v["pinned"] for v in fetched.values()),
        }
        convert_upstream(cache, staging, name=name, hints=entry, source=source)
        load_model_info(staging)  # the contract check; the hashes were just computed by the conversion
        _install_dir(staging, name, force=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if not keep_download:
        shutil.rmtree(cache, ignore_errors=True)
        for parent in (cache.parent, cache.parent.parent):
            try:
                parent.rmdir()  # only when empty
            except OSError:
                break
    _maybe_default(name, make_default)
    return load_model_info(name)


def _safe_extract(archive: Path, into: Path) -> None:
    name = archive.name.lower()
    if name.endswith(".zip"):
        try:
            with zipfile.ZipFile(archive) as z:
                for member in z.namelist():
                    p = Path(member)
                    if p.is_absolute() or ".." in p.parts:
                        raise ModelError(f"{archive} holds an unsafe path {member!r}; not extracting it")
                z.extractall(into)
        except (zipfile.BadZipFile, OSError) as e:
            raise ModelError(f"cannot extract {archive}: {e}") from None
        return
    try:
        with tarfile.open(archive) as t:
            if hasattr(tarfile, "data_filter"):
                t.extractall(into, filter="data")
            else:  # pragma: no cover - Python < 3.11.4
                for m in t.getmembers():
                    p = Path(m.name)
                    if p.is_absolute() or ".." in p.parts or not (m.isfile() or m.isdir()):
                        raise ModelError(f"{archive} holds an unsafe entry {m.name!r}; not extracting it")
                t.extractall(into)
    except (tarfile.TarError, OSError) as e:
        raise ModelError(f"cannot extract {archive}: {e}") from None


def _find_model_root(root: Path) -> Path:
    found: list[Path] = []
    for d in [root, *sorted(p for p in root.rglob("*") if p.is_dir() and len(p.relative_to(root).parts) <= 3)]:
        if (d / META_FILE).is_file() or looks_upstream(d):
            if not any(parent in found for parent in d.parents):
                found.append(d)
    if not found:
        raise ModelError(
            "no model found: expected a model directory (image.onnx, text.onnx, model.json) "
            "or an Immich-style export (visual/model.onnx, textual/model.onnx)"
        )
    if len(found) > 1:
        raise ModelError(f"the archive holds several models ({', '.join(str(f.relative_to(root)) for f in found)}); import them one at a time")
    return found[0]


def import_model(
    path: str | os.PathLike,
    *,
    name: str | None = None,
    force: bool = False,
    make_default: bool | None = None,
) -> ModelInfo:
    """Install a model from a directory or archive (.tar, .tar.gz, .tgz, .zip) without network.

    A vidsearch model directory (model.json) is copied and its hashes verified; an Immich-style
    export is converted. The installed directory is named ``name`` or after the model.
    """
    src = Path(path).expanduser()
    if not src.exists():
        raise ModelError(f"{src} does not exist")
    staging = _staging("import")
    try:
        if src.is_dir():
            root = src
        else:
            _safe_extract(src, staging / "extract")
            root = _find_model_root(staging / "extract")
        if root.is_dir() and not (root / META_FILE).is_file() and not looks_upstream(root):
            root = _find_model_root(root)
        out = staging / "model"
        if (root / META_FILE).is_file():
            # verify the copy (what gets installed), once: the hashes are read after copying
            shutil.copytree(root, out)
            try:
                probe = load_model_info(out, verify=True)
            except ModelError as e:
                raise ModelError(f"{src}: {str(e).replace(str(out), str(root))}") from None
            install_name = _check_name(name or probe.name)
            source = {"kind": "import", "from": str(src)}
            old = _read_json(out / META_FILE).get("source")
            if old:
                source["original"] = old
            _add_meta(out, source=source)
        else:
            install_name = _check_name(name or re.sub(r"[^A-Za-z0-9._-]+", "-", root.name if root != staging / "extract" else src.name.split(".")[0]))
            files = {}
            for p in sorted(root.rglob("*")):
                if p.is_file():
                    files[str(p.relative_to(root))] = {"sha256": sha256_file(p), "pinned": False}
            convert_upstream(root, out, name=install_name, source={"kind": "import", "from": str(src), "files": files})
            load_model_info(out)  # the contract check; the conversion just computed the hashes
        _install_dir(out, install_name, force)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _maybe_default(install_name, make_default)
    return load_model_info(install_name)


def default_model() -> str | None:
    return read_config().get("default_model") or None


def set_default(name: str) -> ModelInfo:
    info = load_model_info(name)
    write_config(default_model=name)
    return info


def _dir_size(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def list_models() -> list[dict[str, Any]]:
    """Installed models with their id, dim, file hashes, size and whether each is the default."""
    default = default_model()
    out = []
    for info in installed_models():
        assert info.path is not None
        meta = _read_json(info.path / META_FILE)
        src = meta.get("source") or {}
        out.append(
            {
                "name": info.path.name,
                "model_id": info.model_id,
                "dim": info.dim,
                "image_size": info.image_size,
                "tokenizer": info.tokenizer if isinstance(info.tokenizer, str) else info.tokenizer.get("type"),
                "semantics": info.semantics,
                "default": info.path.name == default,
                "pinned": src.get("pinned", (src.get("original") or {}).get("pinned")),
                "source": src.get("repo") or src.get("from") or src.get("kind"),
                "size_bytes": _dir_size(info.path),
                "sha256": dict(info.files),
                "path": str(info.path),
                "description": info.description,
            }
        )
    return out


def available_models() -> list[dict[str, Any]]:
    installed = {info.path.name for info in installed_models() if info.path is not None}
    return [
        {
            "name": e.name,
            "repo": e.repo,
            "revision": e.revision,
            "pinned": e.pinned,
            "download_bytes": e.download_size,
            "arch": e.arch,
            "pretrained": e.pretrained,
            "installed": e.name in installed,
            "description": e.description,
        }
        for e in registry().values()
    ]


__all__: Iterable[str] = [
    "PinnedModel",
    "RemoteFile",
    "available_models",
    "convert_upstream",
    "default_model",
    "download",
    "file_url",
    "hub_url",
    "import_model",
    "list_models",
    "pull",
    "registry",
    "set_default",
]
