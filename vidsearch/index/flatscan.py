"""The exact scan at memory speed: faiss's fused float16 flat search run on the matrix file in place.

ONNX Runtime's Cast + MatMul (:func:`vidsearch.index.matrix.matmul`) widens each block to
float32 and multiplies it: about twice the time of reading the matrix once. faiss's float16
flat index (``IndexScalarQuantizer`` QT_fp16, or ``IndexFlatIP`` for a float32 matrix) fuses
the two and keeps only the best rows. Its codes are exactly the matrix rows, so instead of
copying 1 GiB per million frames into faiss, the file is mapped page-aligned right behind a
page holding a faiss header, and faiss reads that memory as a serialised index with a zero-copy
reader (Linux and macOS; elsewhere, or without faiss, the caller scores with ``matmul``).
"""
from __future__ import annotations

import ctypes
import logging
import mmap
import os
import sys
import weakref
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

_MAP_FIXED = getattr(mmap, "MAP_FIXED", 0x10)
#: fill the page tables at map time (Linux): one call instead of a fault per 64 KiB while scanning
_MAP_POPULATE = getattr(mmap, "MAP_POPULATE", 0x8000 if sys.platform.startswith("linux") else 0)


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return libc


def _header(faiss, dim: int, rows: int, dtype: str) -> bytes:
    """A serialised empty index of the right kind with ``rows`` rows declared; ends with the codes' byte count."""
    if dtype == "float16":
        index = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
    else:
        index = faiss.IndexFlatIP(dim)
    w = faiss.VectorIOWriter()
    faiss.write_index(index, w)
    h = bytearray(faiss.vector_to_array(w.data).tobytes())
    # fourcc, d (int32), ntotal (int64) ... codes: a uint64 count (bytes; floats for IndexFlat), then the data
    h[8:16] = np.int64(rows).tobytes()
    h[-8:] = np.uint64(rows * dim * (2 if dtype == "float16" else 1)).tobytes()
    return bytes(h)


class FlatScan:
    """A faiss flat index over the first ``rows`` rows of a matrix file, without a copy."""

    def __init__(self, path: Path, rows: int, dim: int, dtype: str):
        import faiss

        self.faiss, self.rows = faiss, rows
        header = _header(faiss, dim, rows, dtype)
        page = mmap.PAGESIZE
        nbytes = rows * dim * np.dtype(dtype).itemsize
        libc = _libc()
        size = page + nbytes
        # reserve the address range without committing memory (a matrix may be larger than RAM),
        # then make the header page writable
        flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_NORESERVE", 0)
        base = libc.mmap(None, size, 0, flags, -1, 0)  # PROT_NONE
        if base in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), "mmap failed")
        self._finalizer = weakref.finalize(self, libc.munmap, base, size)
        if libc.mprotect(base, page, mmap.PROT_READ | mmap.PROT_WRITE) != 0:
            raise OSError(ctypes.get_errno(), "mprotect failed")
        if len(header) > page:
            raise ValueError("faiss header longer than a page")
        ctypes.memmove(base + page - len(header), header, len(header))
        fd = os.open(path, os.O_RDONLY)
        try:
            got = libc.mmap(base + page, nbytes, mmap.PROT_READ, mmap.MAP_SHARED | _MAP_FIXED | _MAP_POPULATE, fd, 0)
        finally:
            os.close(fd)
        if got != base + page:
            raise OSError(ctypes.get_errno(), "mmap MAP_FIXED failed")
        #: the same rows as a numpy array (scattered reads that should not map the file again)
        self.matrix = np.frombuffer((ctypes.c_char * nbytes).from_address(base + page), dtype=dtype).reshape(rows, dim)
        start = faiss.cast_integer_to_uint8_ptr(base + page - len(header))
        self._reader = faiss.ZeroCopyIOReader(start, len(header) + nbytes)
        self.index = faiss.read_index(self._reader)
        if getattr(self.index.codes, "is_owned", True):  # an older faiss copied the codes: no gain, twice the memory
            raise RuntimeError("this faiss does not read codes in place")

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Scores and rows of the ``k`` best rows, best first (float32 accumulation)."""
        q = np.ascontiguousarray(np.asarray(query, dtype=np.float32).reshape(1, -1))
        s, i = self.index.search(q, min(k, self.rows))
        keep = i[0] >= 0
        return s[0][keep], i[0][keep].astype(np.int64)

    def above(self, query: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        """Scores and rows of every row scoring above ``threshold``."""
        q = np.ascontiguousarray(np.asarray(query, dtype=np.float32).reshape(1, -1))
        lims, s, i = self.index.range_search(q, float(threshold))
        return s[lims[0] : lims[1]], i[lims[0] : lims[1]].astype(np.int64)


def open_flat(path: Path | None, rows: int, dim: int, dtype: str) -> FlatScan | None:
    """A :class:`FlatScan` of the matrix file, or None (no faiss, another OS, an old faiss, no file)."""
    if path is None or rows == 0 or not sys.platform.startswith(("linux", "darwin")):
        return None
    try:
        return FlatScan(path, rows, dim, dtype)
    except ImportError:
        return None
    except (OSError, RuntimeError, ValueError, AttributeError) as e:
        log.info("flat scan through faiss unavailable (%s): scoring with ONNX Runtime", e)
        return None
