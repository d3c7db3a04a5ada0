"""The compressed first stage of a big index: PQ codes of every matrix row, held in RAM, that find candidates.

Past a few million frames, scanning the float16 matrix costs a query more than reading it
once (10M frames: 10 GB) and past the machine's RAM every query reads from disk. Here each
row becomes a short product-quantisation code (faiss ``PCA128,PQ32x4fs``: 16 bytes instead of
1 KiB, 30M frames in ~0.5 GB), scanned with faiss's SIMD "fast scan"; a query takes the best
few thousand rows of it as *candidates* and rescores the windows around them exactly from the
float16 matrix (:mod:`vidsearch.query.engine`)::

    <index>/matrix/<model slug>/coarse/
        coarse.json          which matrix generation and rows the parts cover; written last
        trained-<id>.faiss   the trained, empty index (PCA + PQ tables), reused by every part
        part-<id>-<a>-<b>.faiss   codes of matrix rows [a, b)
        sample-<id>.f16      a fixed spread of matrix rows: the score median of a query is taken on them

Parts cover consecutive row ranges: appending an hour of video encodes its rows into a small
part (milliseconds); small parts are merged when there are many. A full matrix rebuild (a new
generation) re-encodes everything with the trained tables. Rows past the last part (written
since) are scored exactly by the query, so answers stay complete while an ingest appends.
Needs the ``scale`` extra (faiss-cpu); without it, and below :data:`MIN_ROWS`, queries scan
the whole matrix.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Callable, ContextManager

import numpy as np

from vidsearch.index.shards import write_json_atomic

log = logging.getLogger(__name__)

COARSE = "coarse"
MANIFEST = "coarse.json"
FORMAT = 1
#: below this many rows the exact scan is fast enough (and a query needs no faiss)
MIN_ROWS = 2_000_000
#: faiss index factory string for embeddings of 256+ dims (inner product on unit vectors)
FACTORY = "PCA128,PQ32x4fs"


def factory_for(dim: int) -> str:
    """:data:`FACTORY`; narrower embeddings: 4-bit PQ of 4 dims per code, no PCA."""
    return FACTORY if dim >= 256 else f"PQ{max(1, dim // 4)}x4fs"

TRAIN_ROWS = 65_536
SAMPLE_ROWS = 8_192
#: rows per part file, and rows encoded per batch while building (bounded memory)
PART_ROWS = 1 << 22
ADD_ROWS = 1 << 16
#: more small parts than this are merged into one
MAX_SMALL_PARTS = 8


def available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def _faiss():
    import faiss

    faiss.omp_set_num_threads(1)  # one query at a time: a single thread scans codes at memory speed
    return faiss


def coarse_dir(matrix_dir: Path) -> Path:
    return matrix_dir / COARSE


def read_manifest(d: Path) -> dict | None:
    try:
        m = json.loads((d / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return m if isinstance(m, dict) and m.get("format") == FORMAT else None


def _strided(emb: np.ndarray, n: int) -> np.ndarray:
    """``n`` rows spread evenly over ``emb``, as float32."""
    idx = np.linspace(0, len(emb) - 1, num=min(n, len(emb))).astype(np.int64)
    return np.asarray(emb[np.unique(idx)], dtype=np.float32)


def _write_index(index, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    _faiss().write_index(index, str(tmp))
    tmp.replace(path)


class Coarse:
    """The parts of one matrix generation, memory-mapped, searched as one index."""

    def __init__(self, d: Path, manifest: dict):
        faiss = _faiss()
        self.manifest = manifest
        self.rows = int(manifest["rows"])
        self.parts = []
        for name, a, b in manifest["parts"]:
            self.parts.append((faiss.read_index(str(d / name), faiss.IO_FLAG_MMAP_IFC), int(a), int(b)))
        dim = int(manifest["dim"])
        self.sample = np.fromfile(d / manifest["sample"], dtype=np.float16).reshape(-1, dim)

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Approximate scores and matrix rows of the ``k`` best rows among those the parts cover."""
        q = np.ascontiguousarray(np.asarray(query, dtype=np.float32).reshape(1, -1))
        scores, rows = [], []
        for index, a, b in self.parts:
            s, i = index.search(q, min(k, b - a))
            keep = i[0] >= 0
            scores.append(s[0][keep])
            rows.append(i[0][keep] + a)
        if not scores:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        s, r = np.concatenate(scores), np.concatenate(rows)
        if len(s) > k:
            top = np.argpartition(-s, k - 1)[:k]
            s, r = s[top], r[top]
        return s, r.astype(np.int64)


def open_coarse(matrix_dir: Path, gen: int, rows: int) -> Coarse | None:
    """The coarse stage of matrix generation ``gen`` (None if there is none for it or faiss is missing)."""
    d = coarse_dir(matrix_dir)
    m = read_manifest(d)
    if m is None or int(m.get("matrix_gen", -1)) != gen or int(m["rows"]) > rows or not available():
        return None
    try:
        return Coarse(d, m)
    except (OSError, RuntimeError, ValueError) as e:  # a part removed by a concurrent rebuild: scan exactly
        log.info("coarse stage not readable (%s): scanning the matrix", e)
        return None


def update(matrix_dir: Path, manifest: dict, emb: np.ndarray, lock: Callable[[Path], ContextManager],
           min_rows: int = MIN_ROWS) -> str:
    """Bring the coarse stage up to date with a matrix (its manifest and mapped rows); ``lock(dir)``
    keeps other writers out (the matrix's own ``dir_lock``).

    Returns what it did: "none" (too small, or no faiss), "fresh", "append" or "build".
    """
    rows, gen = int(manifest["rows"]), int(manifest["gen"])
    if rows < min_rows or not available():
        return "none"
    d = coarse_dir(matrix_dir)
    with lock(d):
        m = read_manifest(d)
        action = "append"
        if m is None or int(m.get("dim", 0)) != emb.shape[1] or int(m.get("matrix_gen", -1)) != gen or int(m["rows"]) > rows:
            m, action = _start(d, m, gen, emb), "build"
        if int(m["rows"]) == rows and action != "build":
            return "fresh"
        _add_parts(d, m, emb, rows)
        m["updated_at"] = time.time()
        write_json_atomic(d / MANIFEST, m, indent=None, separators=(",", ":"))
        _remove_unreferenced(d, m)
    return action


def _start(d: Path, old: dict | None, gen: int, emb: np.ndarray) -> dict:
    """A manifest with no parts for generation ``gen``: trained tables (reused when the width still
    matches) and a fresh row sample."""
    faiss = _faiss()
    uid = f"{gen}-{time.time_ns() % 10**12}"
    trained = old["trained"] if old and int(old.get("dim", 0)) == emb.shape[1] and (d / old["trained"]).exists() else None
    if trained is None:
        factory = factory_for(emb.shape[1])
        index = faiss.index_factory(emb.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
        t = time.perf_counter()
        index.train(_strided(emb, TRAIN_ROWS))
        log.info("coarse stage: trained %s on %d rows in %.1f s", factory, min(TRAIN_ROWS, len(emb)), time.perf_counter() - t)
        trained = f"trained-{uid}.faiss"
        _write_index(index, d / trained)
    sample = f"sample-{uid}.f16"
    _strided(emb, SAMPLE_ROWS).astype(np.float16).tofile(d / sample)
    return {"format": FORMAT, "factory": factory_for(emb.shape[1]), "matrix_gen": gen, "dim": int(emb.shape[1]), "rows": 0,
            "parts": [], "trained": trained, "sample": sample}


def _add_parts(d: Path, m: dict, emb: np.ndarray, rows: int) -> None:
    """Encode rows ``[m["rows"], rows)`` into parts; merge the small ones when there are too many."""
    small = [p for p in m["parts"] if p[2] - p[1] < PART_ROWS // 4]
    if len(small) >= MAX_SMALL_PARTS and small == m["parts"][-len(small):]:
        m["parts"] = m["parts"][: -len(small)]
        m["rows"] = small[0][1]
    a = int(m["rows"])
    while a < rows:
        b = min(a + PART_ROWS, rows)
        m["parts"].append(_build_part(d, m, emb, a, b))
        m["rows"] = a = b


def _build_part(d: Path, m: dict, emb: np.ndarray, a: int, b: int) -> list:
    faiss = _faiss()
    index = faiss.read_index(str(d / m["trained"]))
    for i in range(a, b, ADD_ROWS):
        index.add(np.asarray(emb[i : min(i + ADD_ROWS, b)], dtype=np.float32))
    name = f"part-{m['matrix_gen']}-{time.time_ns() % 10**12}-{a}-{b}.faiss"
    _write_index(index, d / name)
    return [name, a, b]


def _remove_unreferenced(d: Path, m: dict) -> None:
    """Files no manifest names (a reader that mapped them keeps its inode)."""
    keep = {MANIFEST, ".lock", m["trained"], m["sample"], *(p[0] for p in m["parts"])}
    for p in d.iterdir():
        if p.name not in keep and not p.name.startswith("."):
            p.unlink(missing_ok=True)
