"""ONNX Runtime execution providers: which to ask for, with which options, and what we really got.

Choice (``--providers``, env ``VIDSEARCH_PROVIDERS``, config key ``providers``; default ``auto``):

* ``auto``: TensorRT (FP16, engine cache on disk), then CUDA, then CPU, as far as this ONNX
  Runtime build lists them. If a GPU provider cannot really be used, ONNX Runtime silently drops
  it: we log a warning and record the provider actually in use.
* ``tensorrt`` / ``cuda``: that provider or an error (:class:`ProviderError`), never a silent CPU run.
* ``cpu``: CPU only.

TensorRT is used for the image tower only (``pixel_values`` has a dynamic batch dimension, covered
by one optimisation profile min/opt/max so the engine is built once and cached under
``<cache root>/<model id>/<gpu slug>``). The text tower runs on CUDA (or CPU).

Functions that only compute (choice parsing, options, cache paths, checking a session's read-back)
are pure; :func:`available_providers`, :func:`gpu_name` and :func:`probe_provider` touch the system.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence, Union

from vidsearch.errors import ModelError
from vidsearch.models.contract import IMAGE_INPUT
from vidsearch.settings import Settings, current

log = logging.getLogger(__name__)

TENSORRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"

ALIASES = {"tensorrt": TENSORRT, "trt": TENSORRT, "cuda": CUDA, "cpu": CPU}
SHORT = {TENSORRT: "tensorrt", CUDA: "cuda", CPU: "cpu"}
CHOICES = ("auto", "tensorrt", "cuda", "cpu")
AUTO_ORDER = [TENSORRT, CUDA, CPU]
#: Default TensorRT optimisation profile for the image batch dimension: min, opt, max.
DEFAULT_PROFILE = (1, 32, 128)

#: A provider as ``InferenceSession(providers=...)`` accepts it: a name or (name, options).
ProviderEntry = Union[str, "tuple[str, dict[str, str]]"]


class ProviderError(ModelError):
    """A requested execution provider is unknown, unavailable or was dropped by ONNX Runtime."""


# --------------------------------------------------------------------------- choice


def normalise_choice(choice: str | None) -> str:
    """``auto|tensorrt|cuda|cpu`` (or a full provider name); ``None``/empty -> :func:`default_choice`."""
    if choice is None or str(choice).strip() == "":
        return default_choice()
    c = str(choice).strip()
    if c.lower() == "auto":
        return "auto"
    if c.lower() in ALIASES:
        return SHORT[ALIASES[c.lower()]]
    if c in SHORT:
        return SHORT[c]
    raise ProviderError(f"unknown execution provider {choice!r}; choose one of: {', '.join(CHOICES)}")


def default_choice() -> str:
    """Env ``VIDSEARCH_PROVIDERS``, else config key ``providers``, else ``auto``."""
    s = current()
    value, source = s.providers, s.sources.get("providers")
    if value:
        try:
            return normalise_choice(value)
        except ProviderError:
            raise ProviderError(
                f"{source} is {value!r}; set it to one of: {', '.join(CHOICES)}"
            ) from None
    return "auto"


def short_name(provider: str) -> str:
    """``TensorrtExecutionProvider`` -> ``tensorrt`` (unknown names come back unchanged)."""
    return SHORT.get(provider, provider)


def entry_name(entry: ProviderEntry) -> str:
    return entry if isinstance(entry, str) else entry[0]


# --------------------------------------------------------------------------- settings, cache paths


def parse_profile(value: Any) -> tuple[int, int, int]:
    """``"1,32,128"`` or ``[1, 32, 128]`` -> (min, opt, max) batch sizes."""
    if isinstance(value, str):
        parts = [p for p in re.split(r"[,x/ ]+", value.strip()) if p]
    else:
        parts = list(value)
    try:
        nums = tuple(int(p) for p in parts)
    except (TypeError, ValueError):
        nums = ()
    if len(nums) != 3 or not (1 <= nums[0] <= nums[1] <= nums[2]):
        raise ProviderError(
            f"invalid TensorRT batch profile {value!r}; give MIN,OPT,MAX with 1 <= MIN <= OPT <= MAX, e.g. 1,32,128"
        )
    return nums  # type: ignore[return-value]


def _parse_bool(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    s = str(value).strip().lower()
    if s in ("1", "true", "yes", "on"):
        return True
    if s in ("0", "false", "no", "off"):
        return False
    raise ProviderError(f"{what} is {value!r}; use 1 or 0")


def trt_cache_root() -> Path:
    """Engine cache root: env ``VIDSEARCH_TRT_CACHE``, config ``trt_cache``, else ``$VIDSEARCH_HOME/trt-cache``."""
    return current().trt_cache_dir


@dataclasses.dataclass(frozen=True)
class TensorRTSettings:
    """How the TensorRT provider is configured (see :meth:`from_env`)."""

    fp16: bool = True
    profile: tuple[int, int, int] = DEFAULT_PROFILE
    cache_root: Path | None = None  # None: trt_cache_root()
    device_id: int = 0
    workspace_bytes: int | None = None  # None: ONNX Runtime's default

    @classmethod
    def from_env(cls, settings: Settings | None = None) -> "TensorRTSettings":
        """Env ``VIDSEARCH_TRT_FP16`` / ``VIDSEARCH_TRT_PROFILE`` / ``VIDSEARCH_TRT_WORKSPACE`` /
        ``VIDSEARCH_GPU_DEVICE`` or config keys ``trt_fp16`` / ``trt_profile`` / ``trt_workspace`` / ``gpu_device``
        (as resolved in ``settings``, default :func:`vidsearch.settings.current`)."""
        s = settings or current()
        fp16, profile, workspace, device = s.trt_fp16, s.trt_profile, s.trt_workspace, s.gpu_device
        try:
            device_id = int(device) if device not in (None, "") else 0
            workspace_bytes = int(workspace) if workspace not in (None, "") else None
        except ValueError:
            raise ProviderError(
                f"VIDSEARCH_GPU_DEVICE ({device!r}) and VIDSEARCH_TRT_WORKSPACE ({workspace!r}) must be integers"
            ) from None
        return cls(
            fp16=True if fp16 in (None, "") else _parse_bool(fp16, "VIDSEARCH_TRT_FP16"),
            profile=DEFAULT_PROFILE if profile in (None, "") else parse_profile(profile),
            cache_root=s.trt_cache_dir,
            device_id=device_id,
            workspace_bytes=workspace_bytes,
        )


def slug(text: str) -> str:
    """A lowercase file-name-safe slug: ``NVIDIA H100 80GB HBM3`` -> ``nvidia-h100-80gb-hbm3``."""
    s = re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")
    return s or "unknown"


def _model_dir_name(model_id: str) -> str:
    # model ids look like "name@0123456789ab"; keep them readable, drop anything odd
    s = re.sub(r"[^A-Za-z0-9@._-]+", "_", model_id).strip("._")
    return s or "model"


@functools.lru_cache(maxsize=8)
def _nvidia_smi(device_id: int) -> tuple[str, ...] | None:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader", "-i", str(device_id)],
            capture_output=True, text=True, timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0 or not out.stdout.strip():
        return None
    return tuple(p.strip() for p in out.stdout.strip().splitlines()[0].split(","))


def gpu_info(device_id: int = 0) -> dict[str, str] | None:
    """Name, driver and memory of GPU ``device_id`` from ``nvidia-smi``; ``None`` without one."""
    row = _nvidia_smi(device_id)
    if not row:
        return None
    keys = ("name", "driver", "memory")
    return {k: v for k, v in zip(keys, row)}


def gpu_name(device_id: int = 0) -> str | None:
    """Env ``VIDSEARCH_GPU_NAME`` if set, else the name ``nvidia-smi`` reports, else ``None``."""
    env = current().gpu_name
    if env:
        return env
    info = gpu_info(device_id)
    return info["name"] if info else None


def engine_cache_path(model_id: str, gpu: str | None = None, root: str | os.PathLike | None = None,
                      device_id: int = 0) -> Path:
    """``<root>/<model id>/<gpu slug>``: engines are specific to a model and a GPU model.

    ``gpu`` None means :func:`gpu_name` (falls back to ``gpu<device_id>`` when the name is unknown).
    """
    root = Path(root).expanduser() if root is not None else trt_cache_root()
    if gpu is None:
        gpu = gpu_name(device_id) or f"gpu{device_id}"
    return root / _model_dir_name(model_id) / slug(gpu)


def profile_shapes(input_name: str, image_size: int, profile: Sequence[int]) -> dict[str, str]:
    """TensorRT optimisation-profile options for an ``[N, 3, S, S]`` input."""
    lo, opt, hi = parse_profile(profile)
    shape = lambda n: f"{input_name}:{n}x3x{image_size}x{image_size}"  # noqa: E731
    return {
        "trt_profile_min_shapes": shape(lo),
        "trt_profile_opt_shapes": shape(opt),
        "trt_profile_max_shapes": shape(hi),
    }


def _flag(b: bool) -> str:
    # the Python binding accepts only "True"/"False" for TensorRT booleans ("1" is an error)
    return "True" if b else "False"


def tensorrt_options(cache_dir: str | os.PathLike, image_size: int, settings: TensorRTSettings | None = None,
                     input_name: str = IMAGE_INPUT) -> dict[str, str]:
    s = settings or TensorRTSettings()
    opts = {
        "device_id": str(s.device_id),
        "trt_fp16_enable": _flag(s.fp16),
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": str(cache_dir),
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": str(cache_dir),
        **profile_shapes(input_name, image_size, s.profile),
    }
    if s.workspace_bytes:
        opts["trt_max_workspace_size"] = str(int(s.workspace_bytes))
    return opts


def cuda_options(device_id: int = 0) -> dict[str, str]:
    # HEURISTIC: no exhaustive cuDNN benchmark for each new batch shape (the last, partial batch)
    return {"device_id": str(device_id), "arena_extend_strategy": "kSameAsRequested",
            "cudnn_conv_algo_search": "HEURISTIC"}


# --------------------------------------------------------------------------- resolution


def available_providers() -> list[str]:
    """What this ONNX Runtime build lists (onnxruntime-gpu lists GPU providers it may not be able to use)."""
    import onnxruntime as ort

    return list(ort.get_available_providers())


def resolve_providers(
    choice: str | None = "auto",
    available: Sequence[str] | None = None,
    *,
    trt_options: Mapping[str, str] | None = None,
    cuda_opts: Mapping[str, str] | None = None,
    use_tensorrt: bool = True,
) -> list[ProviderEntry]:
    """The providers to ask ONNX Runtime for, best first.

    Entries are names, or ``(name, options)`` where options are given for TensorRT / CUDA.
    An explicit ``tensorrt``/``cuda`` that this build does not list raises :class:`ProviderError`.
    ``use_tensorrt=False`` (the text tower) leaves TensorRT out: ``tensorrt`` then means CUDA.
    """
    c = normalise_choice(choice)
    avail = list(available_providers() if available is None else available)
    if c == "auto":
        names = [p for p in AUTO_ORDER if p in avail]
    else:
        wanted = ALIASES[c]
        if wanted not in avail:
            raise ProviderError(
                f"execution provider {c} is not available in this onnxruntime build "
                f"(it lists: {', '.join(avail) or 'nothing'}); {_install_hint(c)}"
            )
        names = {TENSORRT: [TENSORRT, CUDA, CPU], CUDA: [CUDA, CPU], CPU: [CPU]}[wanted]
        names = [n for n in names if n in avail or n == CPU]
    if not use_tensorrt:
        names = [n for n in names if n != TENSORRT]
    if CPU not in names:
        names.append(CPU)
    out: list[ProviderEntry] = []
    for n in names:
        if n == TENSORRT and trt_options is not None:
            out.append((n, dict(trt_options)))
        elif n == CUDA and cuda_opts is not None:
            out.append((n, dict(cuda_opts)))
        else:
            out.append(n)
    return out


def _install_hint(c: str) -> str:
    if c in ("tensorrt", "cuda"):
        return ("install onnxruntime-gpu instead of onnxruntime (pip uninstall -y onnxruntime && "
                "pip install onnxruntime-gpu), use the GPU image (docker/Dockerfile.gpu), or pass --providers auto")
    return "pass --providers auto"


@dataclasses.dataclass
class ProviderPlan:
    """What to ask for when creating one session, and what must show up in it."""

    choice: str  # normalised: auto|tensorrt|cuda|cpu
    entries: list  # ProviderEntry list for InferenceSession(providers=...)
    required: str | None  # provider that must be in session.get_providers() (explicit choice)
    cache_dir: Path | None = None  # TensorRT engine cache directory, when TensorRT is asked for
    max_batch: int | None = None  # TensorRT profile max: larger image batches are split

    @property
    def names(self) -> list[str]:
        return [entry_name(e) for e in self.entries]


def plan_providers(
    choice: str | None,
    *,
    model_id: str,
    image_size: int,
    tower: str = "image",
    available: Sequence[str] | None = None,
    settings: TensorRTSettings | None = None,
    gpu: str | None = None,
) -> ProviderPlan:
    """Providers and options for one tower of one model (pure apart from the GPU name look-up)."""
    c = normalise_choice(choice)
    use_trt = tower == "image"
    names = [entry_name(e) for e in resolve_providers(c, available, use_tensorrt=use_trt)]
    settings = settings or TensorRTSettings.from_env()
    trt_opts = cache_dir = max_batch = None
    if TENSORRT in names:
        root = settings.cache_root if settings.cache_root is not None else trt_cache_root()
        cache_dir = engine_cache_path(model_id, gpu=gpu, root=root, device_id=settings.device_id)
        trt_opts = tensorrt_options(cache_dir, image_size, settings)
        max_batch = settings.profile[2]
    entries = resolve_providers(
        c, available, trt_options=trt_opts, cuda_opts=cuda_options(settings.device_id), use_tensorrt=use_trt
    )
    required = None
    if c in ("tensorrt", "cuda"):
        required = TENSORRT if (c == "tensorrt" and use_trt) else CUDA
    return ProviderPlan(choice=c, entries=entries, required=required, cache_dir=cache_dir, max_batch=max_batch)


def check_session_providers(plan: ProviderPlan, got: Sequence[str], what: str = "model") -> str:
    """Compare what a session really runs on with what was asked; returns the provider in use.

    An explicit GPU choice that ONNX Runtime dropped is a :class:`ProviderError`; in ``auto`` mode a
    dropped provider is a warning.
    """
    got = list(got)
    active = got[0] if got else CPU
    if plan.required and plan.required not in got:
        raise ProviderError(
            f"{what}: asked for {short_name(plan.required)} but onnxruntime fell back to {', '.join(map(short_name, got)) or 'nothing'} "
            f"(CUDA/cuDNN/TensorRT libraries missing or no usable GPU; check `vidsearch doctor`)"
        )
    best = plan.names[0] if plan.names else CPU
    if active != best:
        log.warning(
            "%s: asked for %s, onnxruntime could not use %s and runs on %s (see `vidsearch doctor`)",
            what, ", ".join(map(short_name, plan.names)), short_name(best), short_name(active),
        )
    return active


def providers_in_use(session) -> list[str]:
    """What a created session really runs on (read back from ONNX Runtime)."""
    return list(session.get_providers())


@contextlib.contextmanager
def stdout_to_stderr():
    """onnxruntime prints its provider-fallback notice with print(); keep stdout clean for --json."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


# --------------------------------------------------------------------------- probing


def _probe_model_bytes() -> bytes:
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.eye(4, dtype=np.float32) * 2.0, "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Relu", ["m"], ["y"])],
        "vidsearch_probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        initializer=[w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="vidsearch.doctor")
    model.ir_version = 7
    return model.SerializeToString()


def probe_provider(name: str, options: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Create a tiny in-memory session on ``name`` alone, run it, and read back its providers.

    Returns ``{"provider", "usable", "session_providers", "error"}``: usable means ONNX Runtime
    kept the provider and the run gave the right answer.
    """
    import numpy as np
    import onnxruntime as ort

    name = ALIASES.get(name.lower(), name) if isinstance(name, str) else name
    result: dict[str, Any] = {"provider": name, "usable": False, "session_providers": [], "error": None}
    opts = ort.SessionOptions()
    opts.log_severity_level = 4  # fatal only: failures are reported through the result
    entry: ProviderEntry = (name, dict(options)) if options else name
    try:
        with stdout_to_stderr():
            sess = ort.InferenceSession(_probe_model_bytes(), sess_options=opts, providers=[entry])
            got = providers_in_use(sess)
            result["session_providers"] = got
            x = np.array([[1.0, -1.0, 0.5, 0.0]], dtype=np.float32)
            y = sess.run(None, {"x": x})[0]
    except Exception as e:  # onnxruntime raises its own exception types
        result["error"] = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        return result
    if name not in got:
        result["error"] = f"onnxruntime dropped it and ran on {', '.join(got)}"
    elif not np.allclose(y, [[2.0, 0.0, 1.0, 0.0]], atol=1e-2):
        result["error"] = "wrong result from the probe model"
    else:
        result["usable"] = True
    return result
