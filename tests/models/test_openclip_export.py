"""`vidsearch model export`: a tiny open_clip architecture, exported through the CLI and checked
against torch (ONNX Runtime through vidsearch's Encoder and raw), plus the failure paths."""
from __future__ import annotations

import json
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")
ort = pytest.importorskip("onnxruntime")

from click.testing import CliRunner  # noqa: E402

from vidsearch.cli import cli  # noqa: E402
from vidsearch.models.encoder import Encoder, l2_normalize  # noqa: E402
from vidsearch.errors import UserError  # noqa: E402
from vidsearch.models.contract import load_model_info, sha256_file  # noqa: E402

pytestmark = pytest.mark.export

ARCH = "vidsearch-tiny-test"
WIDE_ARCH = "vidsearch-tiny-test-wide"  # same shape but another embed dim: its checkpoint does not fit ARCH
CANON_ARCH = "vidsearch-tiny-test-canon"  # a tokenizer other than CLIP's lower-case BPE
IMAGE_SIZE, DIM, CONTEXT = 64, 32, 77
TEXTS = [
    "a photo of a dog",
    "A RED car, parked near   the Station!",
    "café crème & naïve résumé 123",
    "",
    "a man walking in the rain at night " * 12,  # longer than the context: truncated with EOT last
    "two cats",
    "<end_of_text> is a special token",
]


def _config(embed_dim: int, **text_extra) -> dict:
    return {
        "embed_dim": embed_dim,
        "vision_cfg": {"image_size": IMAGE_SIZE, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32},
        "text_cfg": {"context_length": CONTEXT, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2, **text_extra},
    }


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    cfg_dir = root / "configs"
    cfg_dir.mkdir()
    (cfg_dir / f"{ARCH}.json").write_text(json.dumps(_config(DIM)))
    (cfg_dir / f"{WIDE_ARCH}.json").write_text(json.dumps(_config(48)))
    (cfg_dir / f"{CANON_ARCH}.json").write_text(json.dumps(_config(DIM, tokenizer_kwargs={"clean": "canonicalize"})))
    open_clip.add_model_config(cfg_dir)

    torch.manual_seed(7)  # not export's --random-weights seed (0): the two must differ
    ckpt = root / "tiny.pt"
    torch.save(open_clip.create_model(ARCH).state_dict(), ckpt)
    torch.manual_seed(1)
    wide = root / "wide.pt"
    torch.save(open_clip.create_model(WIDE_ARCH).state_dict(), wide)

    jit = root / "jit.pt"  # a TorchScript archive, like OpenAI's original ViT-B-32.pt
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(torch.nn.Linear(2, 2)).save(str(jit))

    out = root / "models" / "tiny"
    result = CliRunner().invoke(
        cli, ["model", "export", "--arch", ARCH, "--checkpoint", str(ckpt), "--out", str(out), "--name", "tiny-test", "--json"]
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)

    ref = open_clip.create_model(ARCH, pretrained=str(ckpt)).eval()
    return {"root": root, "ckpt": ckpt, "wide": wide, "jit": jit, "out": out, "printed": printed, "ref": ref}


def _run(args, env=None):
    return CliRunner().invoke(cli, ["model", "export", *args], env=env)


def _error_line(result) -> str:
    """The CLI's error: exactly one 'Error:' line on stderr, and it is the last line."""
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("Error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    return errors[0]


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


# ----------------------------------------------------------------------------- the model directory


def test_model_json_and_hashes(work):
    out, ref = work["out"], work["ref"]
    assert sorted(p.name for p in out.iterdir()) == ["image.onnx", "model.json", "text.onnx"]
    data = json.loads((out / "model.json").read_text())
    assert data["format"] == "vidsearch-model/1"
    assert data["name"] == "tiny-test"
    assert data["arch"] == ARCH
    assert data["image_size"] == IMAGE_SIZE
    assert data["dim"] == DIM
    assert data["context_length"] == CONTEXT
    assert data["tokenizer"] == "clip-bpe"
    assert data["semantics"] == "clip"
    assert data["pretrained"] == "tiny.pt"
    assert sha256_file(work["ckpt"]) in data["description"]
    pp = open_clip.get_model_preprocess_cfg(ref)
    np.testing.assert_allclose(data["mean"], pp["mean"])
    np.testing.assert_allclose(data["std"], pp["std"])
    assert set(data["files"]) == {"image.onnx", "text.onnx"}
    for fname, digest in data["files"].items():
        assert sha256_file(out / fname) == digest
    info = load_model_info(out, verify=True)
    assert info.is_semantic
    assert work["printed"]["model_id"] == info.model_id
    assert work["printed"]["path"] == str(out)


def test_onnx_signatures(work):
    out = work["out"]
    img = ort.InferenceSession(str(out / "image.onnx"), providers=["CPUExecutionProvider"])
    (i,) = img.get_inputs()
    (o,) = img.get_outputs()
    assert (i.name, i.type, i.shape[1:]) == ("pixel_values", "tensor(float)", [3, IMAGE_SIZE, IMAGE_SIZE])
    assert (o.name, o.shape[1:]) == ("image_embeds", [DIM])
    assert isinstance(i.shape[0], str) and isinstance(o.shape[0], str)  # dynamic batch
    txt = ort.InferenceSession(str(out / "text.onnx"), providers=["CPUExecutionProvider"])
    (i,) = txt.get_inputs()
    (o,) = txt.get_outputs()
    assert (i.name, i.type, i.shape[1:]) == ("input_ids", "tensor(int64)", [CONTEXT])
    assert (o.name, o.shape[1:]) == ("text_embeds", [DIM])
    assert isinstance(i.shape[0], str) and isinstance(o.shape[0], str)


# ----------------------------------------------------------------------------- parity with torch


@pytest.mark.parametrize("batch", [1, 3, 7])
def test_image_tower_matches_torch(work, batch):
    ref = work["ref"]
    rng = np.random.default_rng(batch)
    pixels = rng.standard_normal((batch, 3, IMAGE_SIZE, IMAGE_SIZE)).astype(np.float32)
    with torch.no_grad():
        want = ref.encode_image(torch.from_numpy(pixels)).numpy()

    sess = ort.InferenceSession(str(work["out"] / "image.onnx"), providers=["CPUExecutionProvider"])
    raw = sess.run(["image_embeds"], {"pixel_values": pixels})[0]
    assert raw.shape == (batch, DIM)
    np.testing.assert_allclose(raw, want, atol=1e-4, rtol=1e-4)  # not normalised inside the graph
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0, atol=1e-3)

    enc = Encoder.load(str(work["out"]), providers="cpu")
    got = enc.encode_images(pixels)
    np.testing.assert_allclose(got, l2_normalize(want), atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_tokenizer_matches_open_clip(work):
    enc = Encoder.load(str(work["out"]), providers="cpu")
    ours = enc.tokenize(TEXTS)
    theirs = open_clip.tokenize(TEXTS, context_length=CONTEXT).numpy()
    assert ours.dtype == np.int64 and ours.shape == (len(TEXTS), CONTEXT)
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("batch", [1, 3, 7])
def test_text_tower_matches_torch(work, batch):
    ref = work["ref"]
    texts = TEXTS[:batch]
    ids = open_clip.tokenize(texts, context_length=CONTEXT)
    with torch.no_grad():
        want = ref.encode_text(ids).numpy()

    sess = ort.InferenceSession(str(work["out"] / "text.onnx"), providers=["CPUExecutionProvider"])
    raw = sess.run(["text_embeds"], {"input_ids": ids.numpy()})[0]
    assert raw.shape == (batch, DIM)
    np.testing.assert_allclose(raw, want, atol=1e-4, rtol=1e-4)

    enc = Encoder.load(str(work["out"]), providers="cpu")
    got = enc.encode_texts(texts)
    np.testing.assert_allclose(got, l2_normalize(want), atol=1e-4)
    if batch > 1:  # different sentences, different embeddings
        assert not np.allclose(got[0], got[1], atol=1e-3)


# ----------------------------------------------------------------------------- failures


def test_missing_checkpoint_is_one_line_and_writes_nothing(work, tmp_path):
    out = tmp_path / "m"
    result = _run(["--arch", ARCH, "--checkpoint", str(tmp_path / "nope.safetensors"), "--out", str(out)])
    assert result.exit_code != 0
    line = _error_line(result)
    assert "nope.safetensors" in line and "does not exist" in line
    assert not out.exists() and _leftovers(tmp_path) == []

    result = _run(["--arch", ARCH, "--out", str(out)])  # no checkpoint at all
    assert result.exit_code != 0
    assert "--checkpoint" in _error_line(result) and "--random-weights" in _error_line(result)
    assert not out.exists()


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--arch", WIDE_ARCH, "--checkpoint", "{ckpt}"], "does not fit"),
        (["--arch", ARCH, "--checkpoint", "{wide}"], "does not fit"),
        (["--arch", ARCH, "--checkpoint", "{junk}"], "cannot read checkpoint"),
        (["--arch", ARCH, "--checkpoint", "{jit}"], "TorchScript archive"),
        (["--arch", "no-such-arch", "--checkpoint", "{ckpt}"], "unknown open_clip architecture"),
        (["--arch", CANON_ARCH, "--checkpoint", "{ckpt}"], "CLIP's BPE"),
        (["--arch", "ViT-B-32", "--checkpoint", "{ckpt}", "--tag", "no-such-tag"], "no pretrained tag"),
        (["--arch", ARCH, "--checkpoint", "{ckpt}", "--random-weights"], "not both"),
    ],
)
def test_bad_inputs_fail_cleanly(work, tmp_path, args, expected):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"this is not a checkpoint\n" * 64)
    paths = {"ckpt": work["ckpt"], "wide": work["wide"], "junk": junk, "jit": work["jit"]}
    out = tmp_path / "m"
    result = _run([a.format(**paths) for a in args] + ["--out", str(out)])
    assert result.exit_code != 0
    assert expected in _error_line(result)
    assert not out.exists()
    assert _leftovers(tmp_path) == []


def test_failure_after_onnx_export_leaves_old_dir_intact(work, tmp_path, monkeypatch):
    import vidsearch.models.openclip_export as export

    out = tmp_path / "installed"
    shutil.copytree(work["out"], out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    seen = {}

    def boom(directory, info):
        seen["files"] = sorted(p.name for p in Path(directory).iterdir())
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(export, "write_model_dir", boom)
    with pytest.raises(OSError):
        export.export_open_clip(ARCH, work["ckpt"], out, force=True)
    assert seen["files"] == ["image.onnx", "text.onnx"]  # it failed late, with both towers written
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert _leftovers(tmp_path) == []


def test_random_weights_default_location_and_force(work, tmp_path):
    env = {"VIDSEARCH_HOME": str(tmp_path / "home")}
    result = _run(["--arch", ARCH, "--random-weights"], env=env)
    assert result.exit_code == 0, result.output
    out = tmp_path / "home" / "models" / f"clip-{ARCH}-random"
    assert result.stdout.split()[0] == str(out)
    assert "random weights" in result.stderr
    info = load_model_info(out, verify=True)
    assert info.semantics == "random" and not info.is_semantic
    assert info.pretrained is None
    assert (info.dim, info.image_size, info.tokenizer) == (DIM, IMAGE_SIZE, "clip-bpe")
    first_id = info.model_id

    result = _run(["--arch", ARCH, "--random-weights"], env=env)  # exists, no --force
    assert result.exit_code != 0 and "--force" in _error_line(result)
    assert load_model_info(out).model_id == first_id

    result = _run(["--arch", ARCH, "--checkpoint", str(work["ckpt"]), "--name", f"clip-{ARCH}-random", "--force"], env=env)
    assert result.exit_code == 0, result.output
    info = load_model_info(out, verify=True)
    assert info.semantics == "clip" and info.model_id != first_id
    assert info.files == load_model_info(work["out"]).files  # same checkpoint, same ONNX bytes
    assert _leftovers(out.parent) == []


def test_missing_extra_says_how_to_install(work, monkeypatch, tmp_path):
    from vidsearch.models.openclip_export import export_open_clip

    monkeypatch.setitem(sys.modules, "open_clip", None)  # makes `import open_clip` raise ImportError
    with pytest.raises(UserError) as e:
        export_open_clip(ARCH, work["ckpt"], tmp_path / "m")
    msg = str(e.value)
    assert "\n" not in msg
    assert "pip install 'vidsearch[export]'" in msg and "torch==2.14.1" in msg
    assert not (tmp_path / "m").exists()
