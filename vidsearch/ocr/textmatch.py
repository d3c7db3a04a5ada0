"""Matching a text query against recognised on-screen text lines (pure: strings and numpy).

Three kinds of match, each a per-line score in 0..1 (0 = no match):

- ``exact``: the normalised query occurs in the normalised line. Normalisation upper-cases,
  folds Unicode compatibility forms and drops punctuation and whitespace, because OCR often
  loses or invents spaces ("2024-05-0112:34:56"). 1.0 when the query starts and ends on word
  boundaries of the line, 0.95 inside a longer word ("EXIT" in "EXITING").
- ``fuzzy``: the query occurs with a few character errors. rapidfuzz's ``partial_ratio`` (best
  window of the line, Indel distance: one substituted character costs 1/len of the score) on
  forms where the characters OCR confuses are folded together (0/O, 1/I, 5/S, 8/B, 2/Z, 6/G).
  The number of errors allowed grows with the query's length (:func:`allowed_errors`); short
  queries and queries that are mostly digits (timestamps, phone numbers) allow none beyond the
  confusable characters, which never map one digit onto another. Fuzzy scores are at most 0.94.
- ``semantic``: cosine similarity of sentence embeddings (see :mod:`vidsearch.ocr.sentence`) at or
  above a threshold (0.5 by default).

:func:`score_lines` combines them (max score; the kind is the one that gave it).
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Sequence

import numpy as np

EXACT = "exact"
FUZZY = "fuzzy"
SEMANTIC = "semantic"

EXACT_SCORE = 1.0
EXACT_IN_WORD_SCORE = 0.95
FUZZY_CAP = 0.94
DEFAULT_SEMANTIC_THRESHOLD = 0.5

_CONFUSABLE = str.maketrans({"0": "O", "1": "I", "5": "S", "8": "B", "2": "Z", "6": "G"})
_NON_ALNUM = re.compile(r"[^0-9A-Z]+")


def normalize_text(text: str) -> str:
    """Upper-case, NFKC, accents stripped, every run of non-alphanumerics -> one space, stripped.

    >>> normalize_text("  Emergency-exit!! ")
    'EMERGENCY EXIT'
    """
    if not text.isascii():  # ASCII (most OCR output) has nothing to decompose
        text = unicodedata.normalize("NFKD", text)
        text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return _NON_ALNUM.sub(" ", text.upper()).strip()


def compact(text: str) -> str:
    """:func:`normalize_text` without spaces."""
    return normalize_text(text).replace(" ", "")


def fold_confusables(text: str) -> str:
    """Map characters OCR mixes up onto one representative (applied to compact text)."""
    return text.translate(_CONFUSABLE)


def allowed_errors(query_compact: str) -> int:
    """How many character errors a fuzzy match may have for this (compact) query."""
    n = len(query_compact)
    if n == 0:
        return 0
    digits = sum(ch.isdigit() for ch in query_compact)
    if digits * 2 > n:  # mostly digits: one wrong digit is another timestamp / number
        return 0
    if n < 5:
        return 0
    if n < 10:
        return 1
    if n < 20:
        return 2
    return n // 8


@dataclass(frozen=True)
class TextQuery:
    """A prepared query: its normalised forms and fuzzy threshold."""

    raw: str
    norm: str  # spaced, upper-case
    compact: str
    folded: str
    max_errors: int

    @property
    def min_fuzzy(self) -> float:
        """Lowest partial_ratio score (0..1) that counts as a fuzzy match."""
        if not self.compact or self.max_errors <= 0:
            return 1.01  # nothing fuzzy passes
        return 1.0 - self.max_errors / len(self.compact) - 1e-9

    @property
    def empty(self) -> bool:
        return not self.compact


def prepare_query(query: str, max_errors: int | None = None) -> TextQuery:
    """Normalise ``query``; ``max_errors`` overrides :func:`allowed_errors` (0 = exact only)."""
    norm = normalize_text(query)
    comp = norm.replace(" ", "")
    errs = allowed_errors(comp) if max_errors is None else max(0, int(max_errors))
    return TextQuery(raw=query, norm=norm, compact=comp, folded=fold_confusables(comp), max_errors=errs)


def _as_query(query: str | TextQuery) -> TextQuery:
    return query if isinstance(query, TextQuery) else prepare_query(query)


def exact_scores(query: str | TextQuery, lines: Sequence[str], *, norms: Sequence[str] | None = None) -> np.ndarray:
    """Per line: 1.0 (on word boundaries), 0.95 (inside a word) or 0.0. ``norms``: the lines'
    :func:`normalize_text` forms, when the caller has them already."""
    q = _as_query(query)
    out = np.zeros(len(lines), dtype=np.float32)
    if q.empty:
        return out
    bounded = re.compile(r"(?<![0-9A-Z])" + r"\s*".join(map(re.escape, q.compact)) + r"(?![0-9A-Z])")
    for i, norm in enumerate(norms if norms is not None else map(normalize_text, lines)):
        if q.compact in norm.replace(" ", ""):
            out[i] = EXACT_SCORE if bounded.search(norm) else EXACT_IN_WORD_SCORE
    return out


def fuzzy_scores(query: str | TextQuery, lines: Sequence[str], *, threshold: bool = True,
                 norms: Sequence[str] | None = None) -> np.ndarray:
    """Per line: best-window similarity (0..1) of the folded query in the folded line.

    Lines shorter than the query are compared whole (so "EXIT" does not match "EMERGENCY EXIT").
    With ``threshold`` (default), scores under the query's fuzzy threshold become 0 and the
    rest are capped at 0.94 so an exact match always ranks first. ``norms`` as for :func:`exact_scores`.
    """
    from rapidfuzz import fuzz, process

    q = _as_query(query)
    out = np.zeros(len(lines), dtype=np.float32)
    if q.empty or not len(lines):
        return out
    norms = norms if norms is not None else [normalize_text(line) for line in lines]
    folded = [fold_confusables(n.replace(" ", "")) for n in norms]
    if q.max_errors <= 0:  # only confusable characters may differ
        hit = np.fromiter((q.folded in f for f in folded), dtype=bool, count=len(folded))
        return np.where(hit, FUZZY_CAP, 0.0).astype(np.float32)
    partial = process.cdist([q.folded], folded, scorer=fuzz.partial_ratio, dtype=np.float32)[0] / 100.0
    whole = process.cdist([q.folded], folded, scorer=fuzz.ratio, dtype=np.float32)[0] / 100.0
    longer = np.fromiter((len(f) >= len(q.folded) for f in folded), dtype=bool, count=len(folded))
    out = np.where(longer, partial, whole).astype(np.float32)
    if threshold:
        out = np.where(out >= q.min_fuzzy, np.minimum(out, FUZZY_CAP), 0.0).astype(np.float32)
    return out


def lexical_scores(query: str | TextQuery, lines: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(scores, kinds)``: exact where it matches, else fuzzy; kinds are "exact"/"fuzzy"/""."""
    q = _as_query(query)
    norms = [normalize_text(line) for line in lines]  # once, for both
    ex = exact_scores(q, lines, norms=norms)
    fz = fuzzy_scores(q, lines, norms=norms)
    scores = np.maximum(ex, fz)
    kinds = np.where(ex > 0, EXACT, np.where(fz > 0, FUZZY, "")).astype(object)
    return scores.astype(np.float32), kinds


def semantic_scores(query_vec: np.ndarray, line_vecs: np.ndarray,
                    threshold: float = DEFAULT_SEMANTIC_THRESHOLD) -> np.ndarray:
    """Cosine of L2-normalised vectors, 0 below ``threshold``; clipped to 0..1."""
    line_vecs = np.asarray(line_vecs, dtype=np.float32)
    if line_vecs.size == 0:
        return np.zeros(len(line_vecs), dtype=np.float32)
    sims = line_vecs @ np.asarray(query_vec, dtype=np.float32).reshape(-1)
    sims = np.clip(sims, 0.0, 1.0)
    return np.where(sims >= threshold, sims, 0.0).astype(np.float32)


@dataclass(frozen=True)
class LineMatch:
    index: int  # position in the ``lines`` given
    score: float
    kind: str  # exact | fuzzy | semantic


def score_lines(query: str | TextQuery, lines: Sequence[str], *,
                query_vec: np.ndarray | None = None, line_vecs: np.ndarray | None = None,
                semantic_threshold: float = DEFAULT_SEMANTIC_THRESHOLD,
                lexical: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Combined per-line ``(scores, kinds)``: max of lexical and (if vectors given) semantic.

    ``lexical=False`` scores by meaning only. On a tie the lexical kind is reported.
    """
    n = len(lines)
    if lexical:
        scores, kinds = lexical_scores(query, lines)
    else:
        scores, kinds = np.zeros(n, dtype=np.float32), np.full(n, "", dtype=object)
    if query_vec is not None and line_vecs is not None:
        if len(line_vecs) != n:
            raise ValueError(f"{len(line_vecs)} line vectors for {n} lines")
        sem = semantic_scores(query_vec, line_vecs, semantic_threshold)
        better = sem > scores
        scores = np.where(better, sem, scores).astype(np.float32)
        kinds = np.where(better, SEMANTIC, kinds).astype(object)
    return scores, kinds


def matches(query: str | TextQuery, lines: Sequence[str], **kw) -> list[LineMatch]:
    """Lines with a positive :func:`score_lines` score, best first."""
    scores, kinds = score_lines(query, lines, **kw)
    idx = np.flatnonzero(scores > 0)
    idx = idx[np.argsort(-scores[idx], kind="stable")]
    return [LineMatch(int(i), float(scores[i]), str(kinds[i])) for i in idx]
