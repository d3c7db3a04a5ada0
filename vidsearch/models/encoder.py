"""ONNX Runtime adapter: run a model directory's image and text towers.

Sessions are created lazily (a query needs only the text tower) and once per ``Encoder``; each
ONNX file is checked against model.json's SHA-256 just before it is loaded
(:mod:`vidsearch.models.verify`), so embeddings never carry the id of a model they do not come from.
Embeddings come back L2-normalised float32.
"""
from __future__ import annotations

import logging
import threading
from typing import Sequence

import numpy as np

from vidsearch.errors import first_line, ModelError
from vidsearch.models.contract import IMAGE_FILE, IMAGE_INPUT, TEXT_FILE, TEXT_INPUT, ModelInfo, load_model_info
from vidsearch.models.providers import (
    TENSORRT,
    check_session_providers,
    plan_providers,
    providers_in_use,
    short_name,
    stdout_to_stderr,
)
from vidsearch.models.tokenizer import get_tokenizer
from vidsearch.settings import current
from vidsearch.models.verify import verify_file, verify_tower

log = logging.getLogger(__name__)


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norm, eps)


class Encoder:
    """Image and text encoders of one model directory."""

    def __init__(self, info: ModelInfo, providers: str | None = None, intra_op_threads: int | None = None):
        if info.path is None:
            raise ModelError("ModelInfo has no directory")
        self.info = info
        #: auto|tensorrt|cuda|cpu; None: env VIDSEARCH_PROVIDERS, config key providers, else auto
        self.provider_choice = providers
        self.intra_op_threads = intra_op_threads
        self._sessions: dict[str, object] = {}
        self._lock = threading.Lock()
        self._tokenizer = None
        self._max_batch: dict[str, int] = {}  # file -> largest batch one run may take (TensorRT profile)

    @classmethod
    def load(cls, name_or_path=None, providers: str | None = None, **kw) -> "Encoder":
        return cls(load_model_info(name_or_path), providers=providers, **kw)

    @property
    def model_id(self) -> str:
        return self.info.model_id

    def _session(self, fname: str):
        with self._lock:
            sess = self._sessions.get(fname)
            if sess is None:
                sess = self._create_session(fname)
                self._sessions[fname] = sess
            return sess

    def _create_session(self, fname: str):
        import onnxruntime as ort

        path = self.info.path / fname
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        threads = self.intra_op_threads or int(current().threads or 0)
        if threads:
            opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        tower = "image" if fname == IMAGE_FILE else "text"
        if tower == "image":
            # between image batches the ingest's decoder needs the cores: idle ONNX Runtime threads
            # must sleep, not spin (3-5 % less CPU per ingest, measured in ops/bench/motion.py --ingest)
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        plan = plan_providers(
            self.provider_choice, model_id=self.info.model_id, image_size=self.info.image_size, tower=tower
        )
        if plan.cache_dir is not None:
            try:
                plan.cache_dir.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise ModelError(
                    f"cannot create the TensorRT engine cache {plan.cache_dir} ({e.strerror}); "
                    "set VIDSEARCH_TRT_CACHE to a writable directory"
                ) from None
        verify_tower(self.info, fname)
        try:
            with stdout_to_stderr():
                sess = ort.InferenceSession(str(path), sess_options=opts, providers=plan.entries)
        except Exception as e:  # onnxruntime raises its own exception types
            raise ModelError(f"cannot load {path}: {first_line(e)}") from None
        got = providers_in_use(sess)
        active = check_session_providers(plan, got, what=f"{self.info.name} {tower} encoder")
        log.info("%s: asked for %s, running on %s", fname, plan.names, got)
        if active == TENSORRT and plan.max_batch:
            self._max_batch[fname] = plan.max_batch
        return sess

    def providers(self, tower: str = "image") -> list[str]:
        """Providers the session really runs on, best first (creates the session if needed)."""
        return providers_in_use(self._session(IMAGE_FILE if tower == "image" else TEXT_FILE))

    def active_provider(self, tower: str = "image") -> str:
        """``tensorrt``, ``cuda`` or ``cpu``: what the tower really runs on (for logs and reports)."""
        got = self.providers(tower)
        return short_name(got[0]) if got else "cpu"

    def encode_images(self, pixels: np.ndarray) -> np.ndarray:
        """``pixels``: float32 [N, 3, S, S], already normalised with the model's mean/std."""
        if len(pixels) == 0:
            return np.zeros((0, self.info.dim), dtype=np.float32)
        sess = self._session(IMAGE_FILE)
        pixels = np.ascontiguousarray(pixels, dtype=np.float32)
        step = self._max_batch.get(IMAGE_FILE) or len(pixels)  # a TensorRT profile caps the batch
        outs = [sess.run(None, {IMAGE_INPUT: pixels[i : i + step]})[0] for i in range(0, len(pixels), step)]
        return l2_normalize(outs[0] if len(outs) == 1 else np.concatenate(outs))

    def tokenize(self, texts: Sequence[str]) -> np.ndarray:
        if self._tokenizer is None:
            spec = self.info.tokenizer
            if isinstance(spec, dict) and spec.get("file") in self.info.files:
                verify_file(self.info, spec["file"])
            self._tokenizer = get_tokenizer(self.info.tokenizer, self.info.context_length, self.info.path)
        return self._tokenizer(list(texts))

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.info.dim), dtype=np.float32)
        sess = self._session(TEXT_FILE)
        out = sess.run(None, {TEXT_INPUT: self.tokenize(texts)})[0]
        return l2_normalize(out)
