"""BERT uncased WordPiece tokenizer (pure Python) for the sentence embedder.

Reproduces the Hugging Face ``tokenizers`` pipeline of ``sentence-transformers/all-MiniLM-L6-v2``
(``BertNormalizer`` with clean_text, CJK spacing, accent stripping and lower-casing;
``BertPreTokenizer``; ``WordPiece`` with ``##`` continuations and 100 characters per word at
most; ``[CLS] ... [SEP]`` template). The vocabulary is BERT's uncased vocabulary (30,522 entries,
Apache-2.0, see ``data/LICENSE-BERT-VOCAB.txt``), vendored gzipped so nothing is downloaded.
"""
from __future__ import annotations

import gzip
import unicodedata
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

VOCAB_FILE = Path(__file__).parent.parent / "data" / "bert_uncased_vocab.txt.gz"
#: sha256 of the uncompressed vocabulary (same as bert-base-uncased / all-MiniLM-L6-v2).
VOCAB_SHA256 = "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"

MAX_CHARS_PER_WORD = 100


def _is_whitespace(ch: str) -> bool:
    if ch in (" ", "\t", "\n", "\r"):
        return True
    return unicodedata.category(ch) == "Zs"


def _is_control(ch: str) -> bool:
    if ch in ("\t", "\n", "\r"):
        return False
    return unicodedata.category(ch) in ("Cc", "Cf", "Cn", "Co")


def _is_punctuation(ch: str) -> bool:
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(cp: int) -> bool:
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B73F
        or 0x2B740 <= cp <= 0x2B81F
        or 0x2B820 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


def normalize(text: str) -> str:
    """BertNormalizer: clean, space out CJK, strip accents, lower-case."""
    out = []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD or _is_control(ch):
            continue
        if _is_whitespace(ch):
            out.append(" ")
        elif _is_cjk(cp):
            out.append(f" {ch} ")
        else:
            out.append(ch)
    text = unicodedata.normalize("NFD", "".join(out))
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Mn")
    return text.lower()


def pre_tokenize(text: str) -> list[str]:
    """BertPreTokenizer: split on whitespace and isolate every punctuation character."""
    words: list[str] = []
    cur: list[str] = []
    for ch in text:
        if _is_whitespace(ch):
            if cur:
                words.append("".join(cur))
                cur = []
        elif _is_punctuation(ch):
            if cur:
                words.append("".join(cur))
                cur = []
            words.append(ch)
        else:
            cur.append(ch)
    if cur:
        words.append("".join(cur))
    return words


@lru_cache(maxsize=4)
def load_vocab(path: Path = VOCAB_FILE) -> dict[str, int]:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        tokens = f.read().split("\n")
    if tokens and tokens[-1] == "":
        tokens.pop()
    return {tok: i for i, tok in enumerate(tokens)}


class WordPieceTokenizer:
    """``encode(text) -> list[int]`` and ``batch(texts) -> (input_ids, attention_mask)``."""

    def __init__(self, vocab: dict[str, int] | None = None, max_length: int = 128):
        self.vocab = load_vocab() if vocab is None else vocab
        self.max_length = max_length
        self.unk_id = self.vocab["[UNK]"]
        self.cls_id = self.vocab["[CLS]"]
        self.sep_id = self.vocab["[SEP]"]
        self.pad_id = self.vocab["[PAD]"]
        self._cache: dict[str, list[int]] = {}

    def _word_ids(self, word: str) -> list[int]:
        hit = self._cache.get(word)
        if hit is not None:
            return hit
        if len(word) > MAX_CHARS_PER_WORD:
            ids = [self.unk_id]
        else:
            ids = []
            start = 0
            while start < len(word):
                end = len(word)
                found = None
                while start < end:
                    piece = word[start:end] if start == 0 else "##" + word[start:end]
                    found = self.vocab.get(piece)
                    if found is not None:
                        break
                    end -= 1
                if found is None:
                    ids = [self.unk_id]
                    break
                ids.append(found)
                start = end
        if len(self._cache) < 100_000:
            self._cache[word] = ids
        return ids

    def tokenize_ids(self, text: str) -> list[int]:
        """Word-piece ids of ``text`` without special tokens."""
        ids: list[int] = []
        for word in pre_tokenize(normalize(text)):
            ids.extend(self._word_ids(word))
        return ids

    def encode(self, text: str) -> list[int]:
        """``[CLS] ids [SEP]``, truncated to ``max_length`` tokens in all."""
        ids = self.tokenize_ids(text)[: self.max_length - 2]
        return [self.cls_id, *ids, self.sep_id]

    def batch(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """int64 ``input_ids`` and ``attention_mask`` [N, longest], right-padded with [PAD]."""
        rows = [self.encode(t) for t in texts]
        width = max((len(r) for r in rows), default=2)
        ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = r
            mask[i, : len(r)] = 1
        return ids, mask



_SHORT_WORDS = frozenset("a i an as at be by do go he if in is it me my no of on or so to up us we".split())
_ALPHA_RUN = None
_LETTER_DIGIT = None


@lru_cache(maxsize=4)
def _whole_words(path: Path = VOCAB_FILE) -> dict[str, int]:
    """Whole words of the vocabulary -> id (BERT's ids grow as words get rarer)."""
    vocab = load_vocab(path)
    return {t: i for t, i in vocab.items() if t.isalpha() and t.isascii() and (len(t) >= 3 or t in _SHORT_WORDS)}


def split_glued_words(text: str, min_len: int = 6, max_len: int = 40) -> str:
    """Put back the spaces OCR often drops, before the text is embedded.

    Letters and digits glued together are separated ("VAN42DELIVERY" -> "VAN 42 DELIVERY"),
    and a run of ``min_len``..``max_len`` ASCII letters that is not itself a vocabulary word is
    split into the fewest vocabulary words (3+ letters, or a common 1-2 letter word; at most
    one word per 3 letters), commoner words preferred ("EMERGENCYEXIT" -> "EMERGENCY EXIT").
    A run with no such split is left as it is. Case is kept.
    """
    import re

    global _ALPHA_RUN, _LETTER_DIGIT
    if _ALPHA_RUN is None:
        # not around one digit between letters: that is usually an OCR error ("EX1T")
        _LETTER_DIGIT = re.compile(r"(?<=[A-Za-z])(?=\d(?![A-Za-z]))|(?<=[A-Za-z])(?=\d\d)|(?<=\d)(?=[A-Za-z])(?<![A-Za-z]\d)")
        _ALPHA_RUN = re.compile(r"[A-Za-z]+")
    words = _whole_words()

    def fix(m) -> str:
        token = m.group(0)
        low = token.lower()
        if not (min_len <= len(low) <= max_len) or low in words:
            return token
        parts = _word_break(low, words)
        if not parts or len(parts) > max(2, len(low) // 3):
            return token
        pieces, pos = [], 0
        for p in parts:
            pieces.append(token[pos : pos + len(p)])
            pos += len(p)
        return " ".join(pieces)

    return _ALPHA_RUN.sub(fix, _LETTER_DIGIT.sub(" ", text))


def _word_break(s: str, words: dict[str, int]) -> list[str] | None:
    """Fewest vocabulary words spelling ``s`` (ties: the rarest word as common as can be)."""
    n = len(s)
    best: list[tuple[int, int, int] | None] = [None] * (n + 1)  # (count, rarest id, prev)
    best[0] = (0, 0, -1)
    for end in range(1, n + 1):
        for start in range(max(0, end - 20), end):
            if best[start] is None or s[start:end] not in words:
                continue
            c, rarest, _ = best[start]
            cand = (c + 1, max(rarest, words[s[start:end]]), start)
            if best[end] is None or cand[:2] < best[end][:2]:
                best[end] = cand
    if best[n] is None or best[n][0] < 2:
        return None
    parts, end = [], n
    while end > 0:
        start = best[end][2]
        parts.append(s[start:end])
        end = start
    return parts[::-1]
