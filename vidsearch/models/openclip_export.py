"""Build a model directory from an open_clip architecture and a checkpoint file the operator brings.

``export_open_clip`` creates the open_clip model from a *local* checkpoint (never a download),
exports the image and text towers to ONNX with torch's TorchScript-based exporter
(``dynamo=False``: it needs no ``onnxscript`` and handles open_clip's towers with a dynamic
batch axis), checks the ONNX files against torch on a random batch, and writes ``model.json``.

Everything is written to a temporary directory next to the destination and renamed into
place at the end, so a failed export leaves nothing half-written.

torch and open_clip are imported inside the functions (the ``export`` extra); the rest of
vidsearch never needs them.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

from vidsearch.errors import ModelError, UserError, first_line
from vidsearch.models.contract import (
    IMAGE_FILE,
    IMAGE_INPUT,
    IMAGE_OUTPUT,
    TEXT_FILE,
    TEXT_INPUT,
    TEXT_OUTPUT,
    ModelInfo,
    load_model_info,
    sha256_file,
    valid_name,
    write_model_dir,
)
from vidsearch.settings import models_dir

log = logging.getLogger(__name__)

DEFAULT_OPSET = 17
#: Batch size used while tracing: not 1, so that no batch-1 shape is baked into the graph.
TRACE_BATCH = 2
#: The ONNX towers must agree with torch to this cosine similarity (per row) on a random batch.
MIN_COSINE = 0.9999
CLIP_VOCAB_SIZE = 49408

INSTALL_HINT = (
    "model export needs torch and open_clip: pip install 'vidsearch[export]' "
    "(tested with torch==2.14.1 torchvision==0.29.1 open_clip_torch==3.3.0)"
)
#: Sentences the exporter tokenizes with both vidsearch and open_clip to prove they agree.
_TOKENIZER_PROBES = (
    "a photo of a dog",
    "A RED car, parked near   the Station!",
    "café crème & naïve résumé 123",
    "a very long sentence " * 20,
)


def default_name(arch: str, random_weights: bool = False) -> str:
    """``ViT-B-32`` -> ``clip-vit-b-32`` (``-random`` appended for random weights)."""
    base = re.sub(r"[^a-z0-9._-]+", "-", arch.lower()).strip("-")
    if not base.startswith("clip"):
        base = f"clip-{base}"
    return f"{base}-random" if random_weights else base


def _import_torch():
    try:
        import torch  # noqa: F401
        import open_clip  # noqa: F401
    except ImportError:
        raise UserError(INSTALL_HINT) from None
    return torch, open_clip


@contextlib.contextmanager
def _offline() -> Iterator[None]:
    """Forbid Hugging Face Hub downloads while open_clip runs (restored afterwards)."""
    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _check_tokenizer(arch: str, model_cfg: dict[str, Any]) -> None:
    """Only architectures whose text tower uses CLIP's BPE (lower-case cleaning) are supported."""
    text_cfg = model_cfg.get("text_cfg", {})
    kwargs = dict(text_cfg.get("tokenizer_kwargs") or {})
    clean = kwargs.pop("clean", "lower")
    reasons = []
    if "hf_tokenizer_name" in text_cfg or "hf_model_name" in text_cfg:
        reasons.append(f"a Hugging Face tokenizer ({text_cfg.get('hf_tokenizer_name') or text_cfg.get('hf_model_name')})")
    elif "siglip" in arch.lower():
        reasons.append("a SigLIP tokenizer")
    if clean != "lower":
        reasons.append(f"text cleaning {clean!r}")
    if kwargs.get("reduction_mask"):
        reasons.append(f"token reduction {kwargs['reduction_mask']!r}")
    if int(text_cfg.get("vocab_size", CLIP_VOCAB_SIZE)) != CLIP_VOCAB_SIZE:
        reasons.append(f"vocabulary size {text_cfg.get('vocab_size')}")
    if reasons:
        raise ModelError(
            f"architecture {arch} uses {', '.join(reasons)}, not CLIP's BPE tokenizer; "
            "vidsearch model export supports CLIP-BPE architectures only (e.g. ViT-B-32, ViT-B-16, ViT-L-14)"
        )


def _verify_tokenizer(open_clip, context_length: int) -> None:
    """The vendored tokenizer must reproduce open_clip's on a few probes (cheap; catches drift)."""
    import numpy as np

    from vidsearch.models.tokenizer import clip_bpe

    ours = clip_bpe(context_length)(list(_TOKENIZER_PROBES))
    theirs = open_clip.tokenize(list(_TOKENIZER_PROBES), context_length=context_length).numpy()
    if not np.array_equal(ours, theirs):
        raise ModelError("vidsearch's CLIP tokenizer disagrees with open_clip.tokenize; report this as a bug")


def _check_readable(torch, checkpoint: Path) -> None:
    """Read the checkpoint once on its own, so that 'not a checkpoint' and 'wrong --arch' differ."""
    from open_clip.factory import load_state_dict

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = load_state_dict(str(checkpoint), device="cpu", weights_only=True)
    except Exception as e:
        if "TorchScript" in str(e):
            raise ModelError(
                f"{checkpoint.name} is a TorchScript archive (like OpenAI's original ViT-B-32.pt), which is not "
                "loaded for safety; use an open_clip state-dict checkpoint instead, e.g. open_clip_pytorch_model.bin "
                "from timm/vit_base_patch32_clip_224.openai with --tag openai"
            ) from None
        raise ModelError(
            f"cannot read checkpoint {checkpoint}: not a state dict that torch.load(weights_only=True) "
            f"or safetensors can read ({type(e).__name__})"
        ) from None
    if not isinstance(state, dict) or not state or not all(torch.is_tensor(v) for v in state.values()):
        raise ModelError(f"checkpoint {checkpoint} holds no state dict of tensors; is it an open_clip checkpoint?")


def _load_error(e: BaseException, arch: str, checkpoint: Path) -> ModelError:
    """A one-line message for a checkpoint that does not load into ``arch``."""
    text = str(e)
    if "state_dict" in text and any(k in text for k in ("size mismatch", "Missing key", "Unexpected key")):
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        detail = next((ln for ln in lines if ln.startswith("size mismatch")), None) or next(
            (ln for ln in lines if "Missing key" in ln or "Unexpected key" in ln), lines[0]
        )
        return ModelError(
            f"checkpoint {checkpoint.name} does not fit open_clip {arch} ({detail[:200]}); "
            "give the --arch the checkpoint was trained with (e.g. ViT-B-16, ViT-L-14, ViT-B-32-quickgelu)"
        )
    return ModelError(
        f"checkpoint {checkpoint.name} does not fit open_clip {arch} ({type(e).__name__}: {first_line(e)[:200]}); "
        "give the --arch the checkpoint was trained with"
    )


def _square(size: Any, what: str) -> int:
    if isinstance(size, (tuple, list)):
        if len(set(int(s) for s in size)) != 1:
            raise ModelError(f"{what} {tuple(size)} is not square; vidsearch needs square image inputs")
        size = size[0]
    return int(size)


def _prepare_out(out: Path, force: bool) -> None:
    if out.exists():
        if not out.is_dir():
            raise UserError(f"{out} exists and is not a directory; choose another --out")
        if any(out.iterdir()) and not force:
            raise UserError(f"{out} already exists; use --force to replace it, or choose another --out")


def _install(tmp: Path, out: Path) -> None:
    """Move the finished ``tmp`` directory to ``out`` (replacing an old ``out``) with renames only."""
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.rmdir(old)
        os.rename(out, old)
    try:
        os.rename(tmp, out)
    except OSError:
        if old is not None:
            os.rename(old, out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _cosines(a, b):
    import numpy as np

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    num = (a * b).sum(-1)
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return num / np.maximum(den, 1e-12)


def _check_args(arch: str, checkpoint, random_weights: bool, name: str | None, opset: int) -> tuple[Path | None, str]:
    """Refuse bad arguments before anything is imported or written; returns (checkpoint, name)."""
    if random_weights and checkpoint is not None:
        raise UserError("give either --checkpoint PATH or --random-weights, not both")
    if not random_weights:
        if checkpoint is None:
            raise UserError(
                "no checkpoint: give --checkpoint PATH to a local open_clip checkpoint file "
                "(--random-weights builds a meaningless model for plumbing tests)"
            )
        checkpoint = Path(checkpoint).expanduser().resolve()
        if not checkpoint.is_file():
            raise UserError(
                f"checkpoint {checkpoint} does not exist or is not a file; "
                "give --checkpoint PATH to a local open_clip checkpoint (.bin, .pt, .safetensors)"
            )
    name = name or default_name(arch, random_weights)
    if not valid_name(name):
        raise UserError(f"invalid model name {name!r}: use letters, digits, '.', '_' and '-'")
    if opset < 14 or opset > 20:
        raise UserError(f"--opset {opset} is not supported; use 14 to 20 (default {DEFAULT_OPSET})")
    return checkpoint, name


def _create_kwargs(open_clip, arch: str, model_cfg: dict[str, Any], tag: str | None) -> dict[str, Any]:
    """``open_clip.create_model`` options: no pretrained towers; the tag's preprocessing and QuickGELU."""
    kwargs: dict[str, Any] = {"pretrained_image": False, "pretrained_text": False}
    if tag:
        tag_cfg = open_clip.get_pretrained_cfg(arch, tag)
        if not tag_cfg:
            known = ", ".join(open_clip.list_pretrained_tags_by_model(arch)) or "none"
            raise UserError(f"open_clip knows no pretrained tag {tag!r} for {arch} (known: {known})")
        kwargs["force_preprocess_cfg"] = {
            k: tag_cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in tag_cfg
        }
        if tag_cfg.get("quick_gelu") and not model_cfg.get("quick_gelu"):
            kwargs["force_quick_gelu"] = True
    return kwargs


def _build_model(torch, open_clip, arch: str, checkpoint: Path | None, create_kwargs: dict[str, Any], seed: int):
    """The open_clip model in eval mode, float32: from ``checkpoint``, or random when it is None."""
    if checkpoint is not None:
        _check_readable(torch, checkpoint)
    try:
        if checkpoint is None:
            with torch.random.fork_rng(), warnings.catch_warnings():
                torch.manual_seed(seed)
                warnings.simplefilter("ignore")
                model = open_clip.create_model(arch, pretrained=None, **create_kwargs)
        else:
            # An absolute path to an existing file is never taken for a pretrained tag.
            model = open_clip.create_model(arch, pretrained=str(checkpoint), **create_kwargs)
    except Exception as e:
        if checkpoint is None:
            raise ModelError(f"cannot build open_clip {arch}: {first_line(e)[:300]}") from None
        raise _load_error(e, arch, checkpoint) from None
    return model.eval().float()


def _preprocessing(open_clip, model, arch: str, model_cfg: dict[str, Any]) -> dict[str, Any]:
    """image_size, mean, std and context_length of the built model (the tokenizer is checked too)."""
    pp = open_clip.get_model_preprocess_cfg(model)
    image_size = _square(getattr(model.visual, "image_size", None) or pp.get("size"), "image size")
    mean = tuple(float(x) for x in pp.get("mean", ()))
    std = tuple(float(x) for x in pp.get("std", ()))
    if len(mean) != 3 or len(std) != 3:
        raise ModelError(f"open_clip {arch} has no 3-channel mean/std in its preprocess config")
    if pp.get("resize_mode", "shortest") != "shortest":
        log.warning(
            "%s was trained with resize_mode=%r; vidsearch resizes the shortest side and centre-crops",
            arch, pp.get("resize_mode"),
        )
    context_length = int(getattr(model, "context_length", None) or model_cfg["text_cfg"].get("context_length", 77))
    _verify_tokenizer(open_clip, context_length)
    return {"image_size": image_size, "mean": mean, "std": std, "context_length": context_length}


def _provenance(arch: str, checkpoint: Path | None, tag: str | None, seed: int, say) -> dict[str, Any]:
    """model.json's pretrained, semantics and description (with the checkpoint's SHA-256)."""
    if checkpoint is None:
        return {
            "pretrained": None,
            "semantics": "random",
            "description": f"open_clip {arch} with RANDOM weights (seed {seed}): plumbing/testing only, embeddings mean nothing",
        }
    say(f"hashing {checkpoint.name}")
    ck_sha = sha256_file(checkpoint)
    description = f"open_clip {arch} exported from checkpoint {checkpoint.name} (sha256 {ck_sha})" + (
        f", pretrained tag {tag}" if tag else ""
    )
    return {"pretrained": tag or checkpoint.name, "semantics": "clip", "description": description}


def _write_and_install(torch, model, out: Path, force: bool, meta: dict[str, Any], opset: int, say) -> None:
    """Export into a temporary directory beside ``out``, write model.json, rename it to ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the model directory is not a secret
    try:
        dim = _export_towers(
            torch, model, tmp, image_size=meta["image_size"], context_length=meta["context_length"], opset=opset, say=say
        )
        write_model_dir(tmp, ModelInfo(dim=dim, files={}, tokenizer="clip-bpe", **meta))
        if out.exists() and any(out.iterdir()) and not force:  # appeared while we worked
            raise UserError(f"{out} already exists; use --force to replace it, or choose another --out")
        _install(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def export_open_clip(
    arch: str,
    checkpoint: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    *,
    name: str | None = None,
    tag: str | None = None,
    opset: int = DEFAULT_OPSET,
    force: bool = False,
    random_weights: bool = False,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> ModelInfo:
    """Export open_clip architecture ``arch`` with weights from ``checkpoint`` to a model directory.

    ``checkpoint`` is a local file (``.bin``, ``.pt``, ``.pth`` or ``.safetensors``); nothing is
    ever downloaded. ``tag`` optionally names the open_clip pretrained tag the checkpoint comes
    from (e.g. ``laion2b_s34b_b79k``): its preprocessing mean/std and QuickGELU setting are read
    from open_clip's built-in table and it is recorded in model.json. ``random_weights`` (plumbing
    and testing only: the embeddings mean nothing) builds the model without a checkpoint and
    marks it ``semantics="random"``. ``out`` defaults to ``$VIDSEARCH_HOME/models/<name>``.
    """
    say = progress or (lambda msg: log.info("%s", msg))
    checkpoint, name = _check_args(arch, checkpoint, random_weights, name, opset)
    out = (Path(out).expanduser() if out is not None else models_dir() / name).absolute()
    _prepare_out(out, force)

    with _offline():
        torch, open_clip = _import_torch()
        model_cfg = open_clip.get_model_config(arch)
        if model_cfg is None:
            raise UserError(
                f"unknown open_clip architecture {arch!r}; see open_clip.list_models() (e.g. ViT-B-32, ViT-B-16, ViT-L-14)"
            )
        _check_tokenizer(arch, model_cfg)
        create_kwargs = _create_kwargs(open_clip, arch, model_cfg, tag)
        say(f"loading open_clip {arch}" + (" with random weights" if random_weights else f" from {checkpoint}"))
        model = _build_model(torch, open_clip, arch, checkpoint, create_kwargs, seed)
        meta = _preprocessing(open_clip, model, arch, model_cfg)
        meta.update(name=name, arch=arch, **_provenance(arch, checkpoint, tag, seed, say))
        _write_and_install(torch, model, out, force, meta, opset, say)

    final = load_model_info(out)  # write_model_dir hashed the files we just wrote
    say(f"wrote {out} ({final.model_id}, dim {final.dim}, image size {final.image_size})")
    return final


def _tower_modules(torch, model) -> tuple[Any, Any]:
    """torch modules that return the image and the text embedding (not normalised)."""

    class ImageTower(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, pixel_values):
            return self.m.encode_image(pixel_values, normalize=False)

    class TextTower(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids):
            return self.m.encode_text(input_ids, normalize=False)

    return ImageTower(model).eval(), TextTower(model).eval()


def _onnx_export(torch, tower, sample, path: Path, in_name: str, out_name: str, opset: int) -> None:
    """Trace ``tower`` on a batch of TRACE_BATCH into ``path`` with a dynamic batch axis."""
    fname = path.name
    # Not under torch.no_grad(): with grad off, nn.MultiheadAttention takes its fused fast path
    # (aten::_native_multi_head_attention), which the ONNX exporter cannot translate.
    try:
        with torch.enable_grad(), warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                tower,
                (sample[:TRACE_BATCH],),
                str(path),
                input_names=[in_name],
                output_names=[out_name],
                dynamic_axes={in_name: {0: "batch"}, out_name: {0: "batch"}},
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
    except Exception as e:
        raise ModelError(f"torch.onnx.export failed for {fname}: {type(e).__name__}: {first_line(e)[:300]}") from None
    if not path.is_file():
        raise ModelError(f"torch.onnx.export wrote no {fname}")
    extra = sorted(p.name for p in path.parent.iterdir() if p.name not in (IMAGE_FILE, TEXT_FILE))
    if extra:
        raise ModelError(
            f"{fname} needed external weight files ({extra[0]}...): the tower is over 2 GB, which vidsearch does not support"
        )


def _check_against_torch(torch, tower, sample, path: Path, in_name: str, out_name: str) -> tuple[int, float]:
    """Run the ONNX file on a batch size other than the traced one; returns (dim, worst cosine)."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    fname = path.name
    onnx.checker.check_model(str(path))
    with torch.no_grad():
        want = tower(sample).numpy()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run([out_name], {in_name: sample.numpy()})[0]
    if got.shape != want.shape:
        raise ModelError(f"{fname} returned shape {got.shape}, torch {want.shape}; the export is broken")
    worst = float(np.min(_cosines(got, want)))
    if not np.isfinite(worst) or worst < MIN_COSINE:
        raise ModelError(f"{fname} disagrees with torch (cosine {worst:.6f} < {MIN_COSINE}); the export is broken")
    return int(got.shape[-1]), worst


def _export_towers(torch, model, directory: Path, *, image_size: int, context_length: int, opset: int, say) -> int:
    """Write image.onnx and text.onnx into ``directory``, check them against torch; returns the dim."""
    from vidsearch.models.tokenizer import clip_bpe

    gen = torch.Generator().manual_seed(1234)
    pixels = torch.randn(TRACE_BATCH + 1, 3, image_size, image_size, generator=gen)
    ids = torch.from_numpy(
        clip_bpe(context_length)(["a photo of a cat", "people walking in the rain", "a red car"][: TRACE_BATCH + 1])
    )
    image_tower, text_tower = _tower_modules(torch, model)
    towers = [
        (IMAGE_FILE, image_tower, pixels, IMAGE_INPUT, IMAGE_OUTPUT),
        (TEXT_FILE, text_tower, ids, TEXT_INPUT, TEXT_OUTPUT),
    ]
    dims = {}
    for fname, tower, sample, in_name, out_name in towers:
        say(f"exporting {fname} (opset {opset})")
        _onnx_export(torch, tower, sample, directory / fname, in_name, out_name, opset)
        dims[fname], worst = _check_against_torch(torch, tower, sample, directory / fname, in_name, out_name)
        say(f"checked {fname} against torch: worst cosine {worst:.7f}")
    if dims[IMAGE_FILE] != dims[TEXT_FILE]:
        raise ModelError(f"image and text embeddings differ in size ({dims[IMAGE_FILE]} vs {dims[TEXT_FILE]})")
    return dims[IMAGE_FILE]


__all__ = ["export_open_clip", "default_name", "DEFAULT_OPSET", "INSTALL_HINT"]
