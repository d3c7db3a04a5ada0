"""`vidsearch model pull/import/list/default` against a local HTTP server (no network).

The server serves tiny models in Immich's upstream layout (visual/model.onnx, textual/model.onnx,
config.json, visual/preprocess_cfg.json, textual/tokenizer.json...) built with onnx.helper, with
the same tensor names, int32 token inputs and fixed batch of 1 as the real exports.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import socket
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli

pytestmark = pytest.mark.hub  # the multilingual test models need the tokenizers package
onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from vidsearch.models import download, install, towers  # noqa: E402
from vidsearch.models.registry import file_url, registry  # noqa: E402
from vidsearch.models.encoder import Encoder  # noqa: E402
from vidsearch.errors import ModelError, TransientError  # noqa: E402
from vidsearch.models.contract import load_model_info, resolve_model_path  # noqa: E402
from vidsearch.models.tokenizer import clip_bpe  # noqa: E402

S = 16  # image size of the tiny models
D = 8  # embedding size
L = 77  # context length
REV = "0123456789abcdef0123456789abcdef01234567"
OPSET = 17


# ------------------------------------------------------------------------------------------
# Tiny upstream models
# ------------------------------------------------------------------------------------------


def _save(model, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def visual_tower(path: Path, w: np.ndarray, static_batch: bool) -> None:
    """image [1,3,S,S] -> embedding = flatten(image) @ w (Reshape to [1,-1] bakes in batch 1)."""
    nodes = []
    if static_batch:
        nodes.append(helper.make_node("Reshape", ["image", "shape"], ["flat"]))
        inits = [numpy_helper.from_array(np.array([1, -1], np.int64), "shape")]
    else:
        nodes.append(helper.make_node("Flatten", ["image"], ["flat"], axis=1))
        inits = []
    nodes.append(helper.make_node("MatMul", ["flat", "w"], ["embedding"]))
    inits.append(numpy_helper.from_array(w, "w"))
    g = helper.make_graph(
        nodes, "visual",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1 if static_batch else "b", 3, S, S])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [1 if static_batch else "b", D])],
        initializer=inits,
    )
    _save(helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)]), path)


def clip_text_tower(path: Path, emb: np.ndarray) -> None:
    """text int32 [1,77] -> mean over the 77 positions of emb[text] (open_clip export names)."""
    g = helper.make_graph(
        [
            helper.make_node("Gather", ["emb", "text"], ["tok"]),
            helper.make_node("ReduceMean", ["tok"], ["embedding"], axes=[1], keepdims=0),
        ],
        "textual",
        [helper.make_tensor_value_info("text", TensorProto.INT32, [1, L])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [1, D])],
        initializer=[numpy_helper.from_array(emb, "emb")],
    )
    _save(helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)]), path)


def mclip_text_tower(path: Path, emb: np.ndarray) -> None:
    """M-CLIP style: input_ids + attention_mask int32 [1,77] -> masked mean of emb[ids]; fixed batch 1."""
    g = helper.make_graph(
        [
            helper.make_node("Gather", ["emb", "input_ids"], ["tok"]),
            helper.make_node("Cast", ["attention_mask"], ["m"], to=TensorProto.FLOAT),
            helper.make_node("Unsqueeze", ["m", "ax2"], ["m3"]),
            helper.make_node("Mul", ["tok", "m3"], ["masked"]),
            helper.make_node("ReduceSum", ["masked", "ax1"], ["summed"], keepdims=0),
            helper.make_node("ReduceSum", ["m", "ax1"], ["count"], keepdims=1),
            helper.make_node("Div", ["summed", "count"], ["mean"]),
            helper.make_node("Reshape", ["mean", "shape"], ["embedding"]),  # bakes in batch 1
        ],
        "textual",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT32, [1, L]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT32, [1, L]),
        ],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [1, D])],
        initializer=[
            numpy_helper.from_array(emb, "emb"),
            numpy_helper.from_array(np.array([2], np.int64), "ax2"),
            numpy_helper.from_array(np.array([1], np.int64), "ax1"),
            numpy_helper.from_array(np.array([1, D], np.int64), "shape"),
        ],
    )
    _save(helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)]), path)


def multilingual_tokenizer(path: Path):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<s>", "<pad>", "</s>", "<unk>"])
    tok.train_from_iterator(
        ["a red car on the road", "一辆红色的汽车", "mobil merah di jalan", "a blue sky", "langit biru", "蓝色的天空", "一只狗"],
        trainer=trainer,
    )
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    path.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(path))
    return tok


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


PREPROCESS = {"size": [S, S], "mode": "RGB", "mean": [0.48145466, 0.4578275, 0.40821073],
              "std": [0.26862954, 0.26130258, 0.27577711], "interpolation": "bicubic", "resize_mode": "shortest", "fill_color": 0}


def upstream_clip(root: Path, seed: int = 0, static_batch: bool = True) -> dict:
    """An OpenCLIP-style export (CLIP BPE tokenizer) in Immich's layout; returns its weights."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((3 * S * S, D)).astype(np.float32)
    emb = rng.standard_normal((49408, D)).astype(np.float32)
    visual_tower(root / "visual" / "model.onnx", w, static_batch)
    clip_text_tower(root / "textual" / "model.onnx", emb)
    write_json(root / "config.json", {"embed_dim": D, "vision_cfg": {"image_size": S, "layers": 1, "width": 8, "patch_size": 8},
                                      "text_cfg": {"context_length": L, "vocab_size": 49408, "width": 8, "heads": 1, "layers": 1}})
    write_json(root / "visual" / "preprocess_cfg.json", PREPROCESS)
    return {"w": w, "emb": emb}


def upstream_mclip(root: Path, seed: int = 1) -> dict:
    """An M-CLIP-style export: XLM-R-like tokenizer.json (pad id 1), ids + attention mask inputs."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((3 * S * S, D)).astype(np.float32)
    tok = multilingual_tokenizer(root / "textual" / "tokenizer.json")
    emb = rng.standard_normal((tok.get_vocab_size(), D)).astype(np.float32)
    visual_tower(root / "visual" / "model.onnx", w, True)
    mclip_text_tower(root / "textual" / "model.onnx", emb)
    write_json(root / "config.json", {"embed_dim": D, "vision_cfg": {"image_size": S}, "text_cfg": {"context_length": L}})
    write_json(root / "visual" / "preprocess_cfg.json", PREPROCESS)
    write_json(root / "textual" / "tokenizer_config.json", {"pad_token": "<pad>", "model_max_length": 512})
    write_json(root / "textual" / "special_tokens_map.json", {"pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>"})
    return {"w": w, "emb": emb, "tok": tok}


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


# ------------------------------------------------------------------------------------------
# Local HTTP server in Hugging Face's <repo>/resolve/<revision>/<path> layout
# ------------------------------------------------------------------------------------------


class Hub:
    def __init__(self, root: Path):
        self.root = root
        self.requests: list[tuple[str, str | None]] = []
        self.cut_once: set[str] = set()  # paths whose next GET stops half way
        self.ignore_range = False
        hubref = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                hubref.requests.append((self.path, rng))
                f = hubref.root / self.path.lstrip("/")
                if not f.is_file():
                    self.send_error(404)
                    return
                data = f.read_bytes()
                start = 0
                m = re.match(r"bytes=(\d+)-$", rng or "")
                if m and not hubref.ignore_range:
                    start = int(m.group(1))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                rel = self.path.split(f"/resolve/{REV}/", 1)[-1]
                if rel in hubref.cut_once:
                    hubref.cut_once.discard(rel)
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def repo_dir(self, repo: str) -> Path:
        return self.root / repo / "resolve" / REV

    def ranges(self, suffix: str) -> list[str]:
        return [r for p, r in self.requests if p.endswith(suffix) and r]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def entry(name: str, repo: str, files: dict[str, str | None], sizes: dict[str, int] | None = None, **kw) -> dict:
    return {
        "name": name, "repo": repo, "revision": REV,
        "files": [{"path": p, "sha256": s, "size": (sizes or {}).get(p)} for p, s in files.items()],
        **kw,
    }


@pytest.fixture
def server(tmp_path, home, monkeypatch):
    """Serves tiny-clip (pinned), tiny-mclip (pinned, hf tokenizer), and broken variants."""
    hubsrv = Hub(tmp_path / "srv")
    clip_dir = hubsrv.repo_dir("test/tiny-clip")
    weights = {"clip": upstream_clip(clip_dir), "mclip": upstream_mclip(hubsrv.repo_dir("test/tiny-mclip"))}
    mclip_dir = hubsrv.repo_dir("test/tiny-mclip")
    # M-CLIP with its text weights in per-tensor external files, as immich-app's big exports.
    ext = hubsrv.repo_dir("test/tiny-mclip-ext")
    shutil.copytree(mclip_dir, ext)
    m = onnx.load(str(ext / "textual" / "model.onnx"))
    (ext / "textual" / "model.onnx").unlink()
    onnx.save_model(m, str(ext / "textual" / "model.onnx"), save_as_external_data=True, all_tensors_to_one_file=False, size_threshold=0)
    # A second CLIP with a dynamic batch (the older Immich exports had one).
    weights["clip2"] = upstream_clip(hubsrv.repo_dir("test/tiny-clip-dyn"), seed=5, static_batch=False)
    # Wrong layout 1: towers at the repository root instead of visual/ and textual/.
    flat = hubsrv.repo_dir("test/flat")
    flat.mkdir(parents=True)
    shutil.copy(clip_dir / "visual" / "model.onnx", flat / "model.onnx")
    # Wrong layout 2: the text tower where the image tower should be.
    swapped = hubsrv.repo_dir("test/swapped")
    (swapped / "visual").mkdir(parents=True)
    (swapped / "textual").mkdir(parents=True)
    shutil.copy(clip_dir / "textual" / "model.onnx", swapped / "visual" / "model.onnx")
    shutil.copy(clip_dir / "textual" / "model.onnx", swapped / "textual" / "model.onnx")

    def pinned(d: Path, paths: list[str]) -> tuple[dict, dict]:
        return {p: sha(d / p) for p in paths}, {p: (d / p).stat().st_size for p in paths}

    clip_files = ["visual/model.onnx", "textual/model.onnx", "config.json", "visual/preprocess_cfg.json"]
    cf, cs = pinned(clip_dir, clip_files)
    mf, ms = pinned(mclip_dir, clip_files + ["textual/tokenizer.json", "textual/tokenizer_config.json"])
    df, ds = pinned(hubsrv.repo_dir("test/tiny-clip-dyn"), clip_files)
    bad = dict(cf)
    bad["textual/model.onnx"] = "0" * 64
    sf, _ = pinned(swapped, ["visual/model.onnx", "textual/model.onnx"])
    entries = [
        entry("tiny-clip", "test/tiny-clip", cf, cs, image_size=S, dim=D, tokenizer="clip-bpe", description="tiny clip"),
        entry("tiny-clip-dyn", "test/tiny-clip-dyn", df, ds, image_size=S, dim=D),
        entry("tiny-mclip", "test/tiny-mclip", mf, ms, image_size=S, dim=D, tokenizer="hf-tokenizers", pad_token="<pad>"),
        entry("tiny-mclip-ext", "test/tiny-mclip-ext", {p: None for p in ["visual/model.onnx", "textual/model.onnx", "textual/tokenizer.json"]},
              image_size=S, dim=D, tokenizer="hf-tokenizers", pad_token="<pad>", external_data=True),
        entry("tiny-bad", "test/tiny-clip", bad, None, image_size=S),
        entry("tiny-unpinned", "test/tiny-clip", {p: None for p in clip_files}),
        entry("tiny-flat", "test/flat", {"visual/model.onnx": "1" * 64, "textual/model.onnx": "2" * 64}),
        entry("tiny-swapped", "test/swapped", sf, None, image_size=S),
    ]
    reg = tmp_path / "registry.json"
    reg.write_text(json.dumps(entries))
    monkeypatch.setenv("VIDSEARCH_HUB_URL", hubsrv.url)
    monkeypatch.setenv("VIDSEARCH_HUB_REGISTRY", str(reg))
    monkeypatch.setattr(download, "RETRY_BACKOFF_MAX_S", 0.0)  # retry interrupted downloads at once
    hubsrv.weights = weights
    yield hubsrv
    hubsrv.close()


def _norm(x):
    x = np.asarray(x, np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _installed(home: Path) -> list[str]:
    d = home / "models"
    return sorted(p.name for p in d.iterdir() if not p.name.startswith(".")) if d.is_dir() else []


# ------------------------------------------------------------------------------------------
# pull
# ------------------------------------------------------------------------------------------


def test_pull_pinned_model_installs_a_directory_the_encoder_loads(server, home):
    info = install.pull("tiny-clip")
    assert info.path == home / "models" / "tiny-clip"
    assert sorted(p.name for p in info.path.iterdir()) == ["image.onnx", "model.json", "text.onnx"]
    assert (info.dim, info.image_size, info.context_length, info.tokenizer) == (D, S, L, "clip-bpe")
    load_model_info("tiny-clip", verify=True)
    meta = json.loads((info.path / "model.json").read_text())
    assert meta["source"]["pinned"] is True and meta["source"]["revision"] == REV
    assert meta["source"]["batch"] == {"image": "scan", "text": "dynamic"}  # the visual tower has batch 1 baked in
    assert install.default_model() == "tiny-clip"  # first model becomes the default
    assert not (home / "downloads" / "test__tiny-clip").exists()  # upstream files cleaned up

    enc = Encoder.load(None)  # the default model
    rng = np.random.default_rng(7)
    pixels = rng.standard_normal((3, 3, S, S)).astype(np.float32)
    got = enc.encode_images(pixels)
    want = _norm(pixels.reshape(3, -1) @ server.weights["clip"]["w"])
    assert got.shape == (3, D)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)

    texts = ["a red car", "a dog on the beach"]
    ids = clip_bpe(L)(texts)
    want_t = _norm(server.weights["clip"]["emb"][ids].mean(axis=1))
    np.testing.assert_allclose(enc.encode_texts(texts), want_t, rtol=1e-4, atol=1e-5)

    # Pulling again is a no-op that does not download.
    n = len(server.requests)
    assert install.pull("tiny-clip").model_id == info.model_id
    assert len(server.requests) == n


def test_pull_dynamic_batch_export_keeps_the_batch(server, home):
    info = install.pull("tiny-clip-dyn")
    meta = json.loads((info.path / "model.json").read_text())
    assert meta["source"]["batch"] == {"image": "dynamic", "text": "dynamic"}
    pixels = np.random.default_rng(3).standard_normal((4, 3, S, S)).astype(np.float32)
    np.testing.assert_allclose(
        Encoder(info).encode_images(pixels), _norm(pixels.reshape(4, -1) @ server.weights["clip2"]["w"]), rtol=1e-4, atol=1e-5
    )


def test_checksum_mismatch_is_refused_and_nothing_is_installed(server, home):
    with pytest.raises(ModelError, match="does not match its pin"):
        install.pull("tiny-bad", retries=0)
    assert _installed(home) == []
    cache = home / "downloads" / "test__tiny-clip" / REV
    assert not (cache / "textual" / "model.onnx").exists()
    assert not (cache / "textual" / "model.onnx.part").exists()  # discarded, never kept for resume
    assert install.default_model() is None


def test_interrupted_transfer_keeps_part_and_the_next_pull_resumes_with_range(server, home):
    full = (server.repo_dir("test/tiny-clip") / "textual" / "model.onnx").stat().st_size
    server.cut_once.add("textual/model.onnx")
    with pytest.raises(TransientError, match="run the same command again to resume"):
        install.pull("tiny-clip", retries=0)
    part = home / "downloads" / "test__tiny-clip" / REV / "textual" / "model.onnx.part"
    assert part.is_file() and 0 < part.stat().st_size < full
    have = part.stat().st_size
    assert _installed(home) == []
    assert server.ranges("textual/model.onnx") == []

    info = install.pull("tiny-clip", retries=0)
    assert server.ranges("textual/model.onnx") == [f"bytes={have}-"]
    load_model_info(info.path, verify=True)
    assert not part.exists()


def test_interrupted_transfer_is_retried_within_one_pull(server, home):
    server.cut_once.add("visual/model.onnx")
    install.pull("tiny-clip", retries=2)
    assert len(server.ranges("visual/model.onnx")) == 1
    load_model_info("tiny-clip", verify=True)


def test_part_from_another_file_is_discarded_never_loaded(server, home):
    """A .part whose bytes are not the pinned file fails the hash and is deleted; the retry works."""
    cache = home / "downloads" / "test__tiny-clip" / REV / "textual"
    cache.mkdir(parents=True)
    (cache / "model.onnx.part").write_bytes(b"\0" * 1000)  # garbage prefix
    with pytest.raises(ModelError, match="does not match its pin"):
        install.pull("tiny-clip", retries=0)
    assert not (cache / "model.onnx.part").exists()
    assert _installed(home) == []
    install.pull("tiny-clip", retries=0)
    load_model_info("tiny-clip", verify=True)


def test_server_that_ignores_range_restarts_the_file(server, home):
    server.cut_once.add("textual/model.onnx")
    server.ignore_range = True
    install.pull("tiny-clip", retries=1)
    load_model_info("tiny-clip", verify=True)


def test_wrong_layout_is_a_one_line_error(server, home, runner):
    r = run_cli(runner, "model", "pull", "tiny-flat", "-q", ok=False)
    assert r.exit_code == 1
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and "HTTP 404" in lines[0] and "layout" in lines[0]

    r = run_cli(runner, "model", "pull", "tiny-swapped", "-q", ok=False)
    lines = r.output.strip().splitlines()
    assert r.exit_code == 1 and len(lines) == 1, r.output
    assert "visual/model.onnx" in lines[0] and "image tower" in lines[0]
    assert _installed(home) == []


def test_unpinned_files_are_refused_unless_trusted(server, home, runner):
    r = run_cli(runner, "model", "pull", "tiny-unpinned", ok=False)
    assert r.exit_code == 1 and "--trust-unpinned" in r.output and "nothing was downloaded" in r.output
    assert server.requests == []

    r = run_cli(runner, "model", "pull", "tiny-unpinned", "--trust-unpinned", "-q")
    assert "computed hashes" in r.output
    meta = json.loads((home / "models" / "tiny-unpinned" / "model.json").read_text())
    assert meta["source"]["pinned"] is False
    up = server.repo_dir("test/tiny-clip") / "textual" / "model.onnx"
    assert meta["source"]["files"]["textual/model.onnx"] == {"sha256": sha(up), "pinned": False}


def test_multilingual_model_uses_tokenizer_json_and_an_in_graph_attention_mask(server, home):
    info = install.pull("tiny-mclip")
    assert info.tokenizer == {"type": "hf-tokenizers", "file": "tokenizer.json", "pad_id": 1}
    assert (info.path / "tokenizer.json").is_file() and "tokenizer.json" in info.files
    meta = json.loads((info.path / "model.json").read_text())
    assert meta["source"]["batch"] == {"image": "scan", "text": "scan"}

    tok, emb = server.weights["mclip"]["tok"], server.weights["mclip"]["emb"]
    texts = ["一辆红色的汽车", "mobil merah", "a blue sky"]
    want = _norm([emb[tok.encode(t).ids].mean(axis=0) for t in texts])  # mean over real tokens only
    got = Encoder(info).encode_texts(texts)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert not np.allclose(got[0], got[1])


def test_external_weight_files_named_by_the_graph_are_fetched(server, home):
    with pytest.raises(ModelError, match="external weight files"):
        install.pull("tiny-mclip-ext")
    assert server.requests == []
    info = install.pull("tiny-mclip-ext", trust_unpinned=True)
    fetched = json.loads((info.path / "model.json").read_text())["source"]["files"]
    assert {"textual/emb", "textual/ax1", "textual/ax2", "textual/shape"} <= set(fetched)
    texts = ["一只狗", "langit biru"]
    tok, emb = server.weights["mclip"]["tok"], server.weights["mclip"]["emb"]
    np.testing.assert_allclose(
        Encoder(info).encode_texts(texts), _norm([emb[tok.encode(t).ids].mean(axis=0) for t in texts]), rtol=1e-4, atol=1e-5
    )
    assert sorted(p.name for p in info.path.iterdir()) == ["image.onnx", "model.json", "text.onnx", "tokenizer.json"]


# ------------------------------------------------------------------------------------------
# import, list, default
# ------------------------------------------------------------------------------------------


def _fresh_home(tmp_path, monkeypatch, name: str) -> Path:
    h = tmp_path / name
    h.mkdir()
    monkeypatch.setenv("VIDSEARCH_HOME", str(h))
    return h


def test_import_from_directory_and_tar_gz_on_an_air_gapped_machine(server, home, tmp_path, monkeypatch, runner):
    info = install.pull("tiny-clip")
    copy = tmp_path / "usb" / "tiny-clip"
    shutil.copytree(info.path, copy)
    archive = tmp_path / "usb" / "tiny-clip.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        t.add(copy, arcname="tiny-clip")
    monkeypatch.delenv("VIDSEARCH_HUB_URL")  # no hub at all on the other side

    _fresh_home(tmp_path, monkeypatch, "site-a")
    r = run_cli(runner, "model", "import", copy, "--json")
    out = json.loads(r.output)
    assert out["model_id"] == info.model_id and out["default"] is True
    load_model_info("tiny-clip", verify=True)

    h2 = _fresh_home(tmp_path, monkeypatch, "site-b")
    imported = install.import_model(archive)
    assert imported.model_id == info.model_id and imported.path == h2 / "models" / "tiny-clip"
    pixels = np.random.default_rng(1).standard_normal((2, 3, S, S)).astype(np.float32)
    np.testing.assert_allclose(Encoder(imported).encode_images(pixels), Encoder(info).encode_images(pixels), atol=1e-6)

    with pytest.raises(ModelError, match="already installed"):
        install.import_model(archive)


def test_import_refuses_a_damaged_copy(server, home, tmp_path, monkeypatch):
    info = install.pull("tiny-clip")
    copy = tmp_path / "copy"
    shutil.copytree(info.path, copy)
    data = bytearray((copy / "text.onnx").read_bytes())
    data[-1] ^= 0xFF
    (copy / "text.onnx").write_bytes(bytes(data))
    h = _fresh_home(tmp_path, monkeypatch, "site")
    with pytest.raises(ModelError, match="does not match the sha256"):
        install.import_model(copy)
    assert not (h / "models" / "tiny-clip").exists()


def test_import_converts_an_upstream_layout_directory(tmp_path, home):
    src = tmp_path / "ViT-tiny__test"
    weights = upstream_clip(src)
    info = install.import_model(src, name="tiny-up")
    assert info.path.name == "tiny-up" and info.dim == D
    pixels = np.random.default_rng(2).standard_normal((2, 3, S, S)).astype(np.float32)
    np.testing.assert_allclose(Encoder(info).encode_images(pixels), _norm(pixels.reshape(2, -1) @ weights["w"]), rtol=1e-4, atol=1e-5)


def test_import_rejects_an_archive_without_a_model(tmp_path, home):
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("hello")
    archive = tmp_path / "junk.tgz"
    with tarfile.open(archive, "w:gz") as t:
        t.add(junk, arcname="junk")
    with pytest.raises(ModelError, match="no model found"):
        install.import_model(archive)
    assert _installed(home) == []


def test_list_shows_models_and_the_default(server, home, runner):
    r = run_cli(runner, "model", "list")
    assert "vidsearch model pull clip-vit-b-32" in r.output
    install.pull("tiny-clip")
    install.pull("tiny-mclip")
    rows = json.loads(run_cli(runner, "model", "list", "--json").output)
    by = {r["name"]: r for r in rows}
    assert set(by) == {"tiny-clip", "tiny-mclip"}
    assert by["tiny-clip"]["default"] and not by["tiny-mclip"]["default"]
    assert by["tiny-mclip"]["tokenizer"] == "hf-tokenizers" and by["tiny-clip"]["dim"] == D
    assert set(by["tiny-clip"]["sha256"]) == {"image.onnx", "text.onnx"}

    run_cli(runner, "model", "default", "tiny-mclip")
    assert run_cli(runner, "model", "default").output.strip() == "tiny-mclip"
    text = run_cli(runner, "model", "list").output
    assert re.search(r"^\*\s+tiny-mclip\s", text, re.M)
    assert not re.search(r"^\*\s+tiny-clip\s", text, re.M)
    r = run_cli(runner, "model", "default", "nope", ok=False)
    assert r.exit_code == 1 and "does not exist" in r.output

    avail = json.loads(run_cli(runner, "model", "list", "--available", "--json").output)
    names = {a["name"]: a for a in avail}
    assert names["tiny-clip"]["installed"] and names["clip-vit-b-32"]["pinned"]


def test_no_model_installed_says_how_to_get_one(home):
    with pytest.raises(ModelError, match=r"vidsearch model pull clip-vit-b-32"):
        resolve_model_path(None)


def test_builtin_registry_pins_are_well_formed(monkeypatch):
    monkeypatch.delenv("VIDSEARCH_HUB_REGISTRY", raising=False)
    reg = registry()
    assert {"clip-vit-b-32", "clip-vit-l-14", "clip-multilingual-vit-b-32"} <= set(reg)
    for e in reg.values():
        assert re.fullmatch(r"[0-9a-f]{40}", e.revision), e.name
        for f in e.files:
            assert f.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", f.sha256), (e.name, f.path)
        if e.pinned:
            assert all(f.size for f in e.files), e.name
            assert e.image_size and e.dim and e.mean and e.std and e.tokenizer
    assert reg["clip-vit-b-32"].pinned and reg["clip-vit-l-14"].pinned
    assert not reg["clip-multilingual-vit-b-32"].pinned  # no published hashes: needs --trust-unpinned
    url = file_url(reg["clip-vit-b-32"], "visual/model.onnx", "https://huggingface.co")
    assert url == f"https://huggingface.co/immich-app/ViT-B-32__openai/resolve/{reg['clip-vit-b-32'].revision}/visual/model.onnx"


def test_big_towers_are_saved_with_external_weights(tmp_path, home, monkeypatch):
    """Towers over the 2 GiB protobuf limit keep their weights in <file>.data (forced small here)."""
    monkeypatch.setattr(towers, "_EXTERNAL_DATA_THRESHOLD", 0)
    src = tmp_path / "up"
    weights = upstream_mclip(src)
    info = install.import_model(src, name="big")
    assert {"image.onnx.data", "text.onnx.data", "tokenizer.json"} <= set(info.files)
    load_model_info("big", verify=True)
    tok, emb = weights["tok"], weights["emb"]
    np.testing.assert_allclose(
        Encoder(info).encode_texts(["mobil merah"]), _norm([emb[tok.encode("mobil merah").ids].mean(axis=0)]), rtol=1e-4, atol=1e-5
    )
    pixels = np.random.default_rng(4).standard_normal((3, 3, S, S)).astype(np.float32)
    np.testing.assert_allclose(Encoder(info).encode_images(pixels), _norm(pixels.reshape(3, -1) @ weights["w"]), rtol=1e-4, atol=1e-5)
