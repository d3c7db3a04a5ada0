"""Cold-start costs of a query: the prompt cache, the tokenizer tables, lazy command imports."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from conftest import run_cli
from vidsearch.models import tokenizer
from vidsearch.query.prompts import CachedTextEncoder, cache_dir


class Tower:
    def __init__(self, dim):
        self.dim, self.calls = dim, []

    def encode_texts(self, texts):
        self.calls.append(list(texts))
        return np.stack([np.full(self.dim, len(t), np.float32) for t in texts])


def test_repeated_prompts_need_no_text_tower(home, tiny):
    tower = Tower(tiny.dim)
    first = CachedTextEncoder(tiny, lambda: tower).encode_texts(["red car", "blue van"])
    assert tower.calls == [["red car", "blue van"]]
    again = CachedTextEncoder(tiny, lambda: (_ for _ in ()).throw(AssertionError("tower opened")))
    np.testing.assert_array_equal(again.encode_texts(["red car", "blue van"]), first)
    mixed = CachedTextEncoder(tiny, lambda: tower).encode_texts(["blue van", "a bus"])
    assert tower.calls[-1] == ["a bus"] and mixed[0][0] == len("blue van")
    assert len(list(cache_dir(tiny.model_id).glob("*.f32"))) == 3


def test_query_results_are_the_same_with_a_cached_prompt(home, colour, archive, runner):
    run_cli(runner, "ingest", archive, "--model", "demo-colours", "--chunk", "10")
    first = json.loads(run_cli(runner, "query", "red", "--json").stdout)
    assert list(cache_dir(colour.model_id).glob("*.f32"))
    second = json.loads(run_cli(runner, "query", "red", "--json").stdout)
    assert first["ranges"] == second["ranges"] and first["ranges"]


def test_tokenizer_tables_are_cached(home):
    enc, ranks = tokenizer._bpe_tables(tokenizer.VOCAB_FILE, ["<start_of_text>", "<end_of_text>"])
    cached = list((home / "cache" / "tokenizer").glob("clip-bpe-*.marshal"))
    assert len(cached) == 1
    enc2, ranks2 = tokenizer._bpe_tables(tokenizer.VOCAB_FILE, ["<start_of_text>", "<end_of_text>"])
    assert enc2 == enc and ranks2 == ranks
    cached[0].write_bytes(b"garbage")  # a damaged cache is rebuilt
    assert tokenizer._bpe_tables(tokenizer.VOCAB_FILE, ["<start_of_text>", "<end_of_text>"])[0] == enc


def test_the_query_command_imports_only_what_it_needs():
    code = ("import sys, vidsearch.cli as c; from click import Context; c.cli.get_command(Context(c.cli), 'query'); "
            "print(sorted({m.split('.')[0] for m in sys.modules}))")
    mods = set(json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                         check=True).stdout.replace("'", '"')))
    assert not mods & {"onnxruntime", "onnx", "duckdb", "pyarrow", "torch", "fastapi", "av", "faiss", "celery", "PIL"}


def test_a_query_process_skips_the_ocr_channel_and_exits_with_its_whole_output(home, colour, archive, runner):
    run_cli(runner, "ingest", archive, "--model", "demo-colours", "--chunk", "10")
    expected = json.loads(run_cli(runner, "query", "red", "--json").stdout)
    p = subprocess.run([sys.executable, "-X", "importtime", "-m", "vidsearch", "query", "red", "--json"],
                       capture_output=True, text=True)
    # the process ends with os._exit once its output is flushed: all of it arrives, exit status 0
    assert p.returncode == 0 and json.loads(p.stdout)["ranges"] == expected["ranges"] and expected["ranges"]
    loaded = {line.split("|")[-1].strip() for line in p.stderr.splitlines() if line.startswith("import time:")}
    assert "vidsearch.query.engine" in loaded
    assert not loaded & {"vidsearch.query.text", "vidsearch.ocr.channel", "numpy.ma"}  # np.median / np.unique load numpy.ma
    table = subprocess.run([sys.executable, "-m", "vidsearch", "query", "red"], capture_output=True, text=True)
    assert table.returncode == 0 and len(table.stdout.splitlines()) >= len(expected["ranges"]) + 1
    bad = subprocess.run([sys.executable, "-m", "vidsearch", "query", "red", "--model", "no-such-model"],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and bad.stderr.strip()
