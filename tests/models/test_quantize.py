"""``vidsearch model quantize``: an int8 image tower, its own model id, checked before install."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli
from vidsearch.demo.cctv import sample_frames
from vidsearch.errors import ModelError, UserError
from vidsearch.models import quantize as Q
from vidsearch.models.contract import IMAGE_FILE, TEXT_FILE, load_model_info, sha256_file


def _ops(path):
    import onnx

    return {n.op_type for n in onnx.load(str(path)).graph.node}


def test_quantize_writes_a_new_model_and_checks_it(tiny, home):
    src_meta = json.loads((tiny.path / "model.json").read_text())
    (tiny.path / "model.json").write_text(json.dumps({**src_meta, "source": {"repo": "example/clip"}}))
    res = Q.quantize_model("tiny-random", sample_frames(60))
    info = res.info
    assert info.path == home / "models" / "tiny-random-int8" and info.name == "tiny-random-int8"
    assert info.model_id != tiny.model_id and info.semantics == tiny.semantics == "random"
    assert (info.dim, info.image_size, info.mean, info.std) == (tiny.dim, tiny.image_size, tiny.mean, tiny.std)
    meta = json.loads((info.path / "model.json").read_text())
    schema = json.loads((Path(__file__).resolve().parents[2] / "schemas" / "model.schema.json").read_text())
    assert set(meta) <= set(schema["properties"]) and set(schema["required"]) <= set(meta)
    assert meta["source_model"] == {"name": "tiny-random", "model_id": tiny.model_id, "image_sha256": tiny.files[IMAGE_FILE]}
    assert meta["quantization"]["weight_type"] == "QInt8" and meta["source"] == {"repo": "example/clip"}
    load_model_info(info.path, verify=True)  # the recorded hashes are those of the files
    assert sha256_file(info.path / TEXT_FILE) == tiny.files[TEXT_FILE]  # text tower unchanged
    assert "MatMulInteger" in _ops(info.path / IMAGE_FILE) and "MatMulInteger" not in _ops(tiny.path / IMAGE_FILE)
    a = res.agreement
    assert a.passed and a.frames == 60 and a.mean_cosine > 0.99 and a.mean_overlap >= 0.8
    assert set(a.overlap) == set(Q.PROMPTS["default"])
    assert not [p for p in (home / "models").iterdir() if p.name.startswith(".")]  # no temp dir left


def test_quantize_refuses_below_the_thresholds_and_installs_nothing(tiny, home):
    with pytest.raises(ModelError, match=r"int8 tower refused, nothing installed: mean cosine 0\.\d+ < 1\.5 on 40 frames"):
        Q.quantize_model("tiny-random", sample_frames(40), min_cosine=1.5)
    with pytest.raises(ModelError, match="top-10 overlap"):
        Q.quantize_model("tiny-random", sample_frames(40), min_overlap=1.01)
    with pytest.raises(UserError, match="at least 30 frames, got 5"):
        Q.quantize_model("tiny-random", sample_frames(5))
    assert sorted(p.name for p in (home / "models").iterdir()) == ["tiny-random"]


def test_agreement_figures():
    class Fake:
        def __init__(self, info, noise):
            self.info, self.noise = info, noise

        def encode_images(self, x):
            v = x.reshape(len(x), -1)[:, :8].astype(np.float32) + self.noise * np.arange(8, dtype=np.float32)
            return v / np.linalg.norm(v, axis=1, keepdims=True)

        def encode_texts(self, texts):
            return np.eye(8, dtype=np.float32)[: len(texts)]

    from vidsearch.models.contract import ModelInfo

    info = ModelInfo(name="f", image_size=8, dim=8, files={}, mean=(0, 0, 0), std=(1, 1, 1))
    frames = list(sample_frames(40, size=(16, 8)))
    same = Q.agreement(Fake(info, 0.0), Fake(info, 0.0), frames, ["a", "b"])
    assert same.mean_cosine == pytest.approx(1.0) and same.overlap == {"a": 1.0, "b": 1.0} and same.passed
    off = Q.agreement(Fake(info, 0.0), Fake(info, 5.0), frames, ["a", "b"])
    assert off.mean_cosine < 0.99 and not off.passed and off.failures[0].startswith("mean cosine")
    assert off.to_dict()["thresholds"] == {"mean_cosine": Q.MIN_COSINE, "mean_overlap": Q.MIN_OVERLAP}


def test_cli_quantize_colours_on_the_users_videos(colour, archive, home, runner):
    res = run_cli(runner, "model", "quantize", "demo-colours", "--sample", archive, "--frames", "40", "--json")
    out = json.loads(res.output)
    assert out["name"] == "demo-colours-int8" and out["source_model"] == colour.model_id
    assert out["agreement"]["frames"] == 42  # 3 videos x ceil(40 / 3)
    assert set(out["agreement"]["overlap"]) == set(Q.PROMPTS["colours"]) and out["agreement"]["passed"]
    assert load_model_info("demo-colours-int8").semantics == "colours"
    again = run_cli(runner, "model", "quantize", "demo-colours", ok=False)
    assert again.exit_code == 1 and again.output.strip().endswith("exists; pass --force to replace it")
    assert len(again.output.strip().splitlines()) == 1
    text = run_cli(runner, "model", "quantize", "demo-colours", "--force", "--frames", "30", "--prompt", "red",
                   "--prompt", "blue").output
    assert "checked on 30 frames: mean cosine" in text and "over 2 prompts" in text and "installed demo-colours-int8@" in text
    refused = run_cli(runner, "model", "quantize", "demo-colours", "--name", "x", "--min-cosine", "1", "--frames", "30", ok=False)
    assert refused.exit_code == 1 and "int8 tower refused" in refused.output and not (home / "models" / "x").exists()


def test_cli_defaults_are_the_module_thresholds():
    from vidsearch.cli.cmd_quantize import quantize_cmd

    defaults = {p.name: p.default for p in quantize_cmd.params}
    assert defaults["min_cosine"] == Q.MIN_COSINE and defaults["min_overlap"] == Q.MIN_OVERLAP
