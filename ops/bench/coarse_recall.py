#!/usr/bin/env python
"""Recall of the coarse stage's quantiser alone, on real embeddings that can be made offline.

    python ops/bench/coarse_recall.py                 # ~20,000 sentences, 200 queries
    python ops/bench/coarse_recall.py --sentences 5000

The sentences are the docstrings and comments of the installed Python packages (real, varied
English text), embedded with the bundled all-MiniLM-L6-v2 int8 (384 dims; the ``ocr`` extra).
The coarse stage (:mod:`vidsearch.index.coarse`: faiss ``PCA128,PQ32x4fs``) is trained and
filled with them exactly as an index's would be; held-out sentences are the queries. Reported:
"10-recall@K", the share of each query's exact top-10 (cosine) found among the K best
candidates of the quantiser, for K at the same *fraction* of the collection as the query path's
8,192 candidates are of 1M / 10M / 30M frames, and for fixed K.
"""
from __future__ import annotations

import argparse
import re
import sys
import sysconfig
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def sentences(limit: int) -> list[str]:
    """Distinct sentences of 5-40 words from the standard library's and site-packages' sources."""
    seen: dict[str, None] = {}
    roots = [Path(sysconfig.get_paths()["stdlib"]), Path(sysconfig.get_paths()["purelib"])]
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            try:
                text = path.read_text(errors="ignore")
            except OSError:
                continue
            for block in re.findall(r'"""(.*?)"""|#\s*(.+)', text, flags=re.S):
                for s in re.split(r"(?<=[.!?])\s+", " ".join(" ".join(block).split())):
                    if 5 <= len(s.split()) <= 40 and re.search(r"[a-z]{3}", s):
                        seen.setdefault(s, None)
                if len(seen) >= limit:
                    return list(seen)
    return list(seen)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sentences", type=int, default=20_000)
    ap.add_argument("--queries", type=int, default=200)
    args = ap.parse_args(argv)
    from vidsearch.index import coarse
    from vidsearch.index.matrix import dir_lock
    from vidsearch.ocr.sentence import SentenceEmbedder

    texts = sentences(args.sentences + args.queries)
    rng = np.random.default_rng(0)
    rng.shuffle(texts)
    t = time.perf_counter()
    emb = SentenceEmbedder().encode(texts).astype(np.float32)
    print(f"{len(texts):,} sentences embedded in {time.perf_counter() - t:.0f} s ({emb.shape[1]} dims)", file=sys.stderr)
    queries, base = emb[: args.queries], emb[args.queries :]
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        coarse.update(d, {"rows": len(base), "gen": 1}, base.astype(np.float16), dir_lock, min_rows=0)
        c = coarse.open_coarse(d, 1, len(base))
        exact = np.argsort(-(queries @ base.T), axis=1)[:, :10]
        print(f"\nquantiser {coarse.factory_for(base.shape[1])} on {len(base):,} MiniLM sentence vectors, "
              f"{args.queries} held-out queries: 10-recall@K (exact cosine top-10 among the K best candidates)")
        ks = sorted({10, 50, 100, 500, 1000} | {max(10, round(len(base) * 8192 / n)) for n in (1e6, 1e7, 3e7)})
        for k in ks:
            if k > len(base):
                continue
            hit = sum(len(set(exact[i].tolist()) & set(c.search(queries[i], k)[1].tolist())) for i in range(len(queries)))
            frac = k / len(base)
            print(f"  K = {k:6d} ({100 * frac:6.3f}% of the collection; 8,192 of {8192 / frac:13,.0f} frames): "
                  f"{hit / (10 * len(queries)):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
