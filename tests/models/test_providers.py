"""Execution-provider selection, TensorRT options and engine-cache paths, session read-back, doctor.

No GPU needed: the available-provider list and, where a GPU session would be needed, the ONNX
Runtime session itself are faked. The CPU path runs for real on a tiny model.
"""
from __future__ import annotations

import json
import logging
import socket

import numpy as np
import onnxruntime
import pytest
from click.testing import CliRunner

from vidsearch.models import providers as P
from vidsearch.models.encoder import Encoder
from vidsearch.errors import ModelError
from vidsearch.models.contract import IMAGE_FILE, IMAGE_INPUT, TEXT_FILE
from vidsearch.demo.models import tiny_random_model
from vidsearch.settings import write_config

TRT, CUDA, CPU = P.TENSORRT, P.CUDA, P.CPU
GPU_BUILD = [TRT, CUDA, CPU]  # what onnxruntime-gpu lists, whether or not it can use them


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDSEARCH_HOME", str(tmp_path / "home"))
    for var in ("VIDSEARCH_PROVIDERS", "VIDSEARCH_TRT_CACHE", "VIDSEARCH_TRT_PROFILE", "VIDSEARCH_TRT_FP16",
                "VIDSEARCH_TRT_WORKSPACE", "VIDSEARCH_GPU_DEVICE", "VIDSEARCH_GPU_NAME", "VIDSEARCH_BROKER_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(P, "_nvidia_smi", lambda device_id=0: None)  # no GPU unless a test says so


@pytest.fixture(scope="module")
def tiny8(tmp_path_factory):
    return tiny_random_model(tmp_path_factory.mktemp("tiny8"), dim=8, image_size=32)


def names(entries):
    return [P.entry_name(e) for e in entries]


# ------------------------------------------------------------------------- choice and order


@pytest.mark.parametrize(
    "available, expected",
    [
        (GPU_BUILD, [TRT, CUDA, CPU]),
        ([CUDA, CPU], [CUDA, CPU]),
        (["AzureExecutionProvider", CPU], [CPU]),
        ([CPU, CUDA, TRT], [TRT, CUDA, CPU]),  # our order, not the build's
    ],
)
def test_auto_order(available, expected):
    assert names(P.resolve_providers("auto", available)) == expected
    assert names(P.resolve_providers(None, available)) == expected  # None -> default -> auto


@pytest.mark.parametrize("choice", ["tensorrt", "cuda", "TensorrtExecutionProvider", "CUDA"])
def test_explicit_gpu_provider_unavailable_is_an_error(choice):
    with pytest.raises(P.ProviderError) as e:
        P.resolve_providers(choice, [CPU])
    msg = str(e.value)
    assert "\n" not in msg and "not available" in msg and "onnxruntime-gpu" in msg
    assert isinstance(e.value, ModelError)  # the CLI turns it into a one-line error


def test_explicit_choices_when_available():
    assert names(P.resolve_providers("tensorrt", GPU_BUILD)) == [TRT, CUDA, CPU]
    assert names(P.resolve_providers("cuda", GPU_BUILD)) == [CUDA, CPU]
    assert names(P.resolve_providers("cpu", GPU_BUILD)) == [CPU]
    # the text tower never uses TensorRT: tensorrt means CUDA there
    assert names(P.resolve_providers("tensorrt", GPU_BUILD, use_tensorrt=False)) == [CUDA, CPU]
    assert names(P.resolve_providers("auto", GPU_BUILD, use_tensorrt=False)) == [CUDA, CPU]


def test_unknown_choice():
    with pytest.raises(P.ProviderError, match="auto, tensorrt, cuda, cpu"):
        P.resolve_providers("rocm", GPU_BUILD)


def test_default_choice_env_then_config(monkeypatch):
    assert P.default_choice() == "auto"
    write_config(providers="cpu")
    assert P.default_choice() == "cpu"
    assert names(P.resolve_providers(None, GPU_BUILD)) == [CPU]
    monkeypatch.setenv("VIDSEARCH_PROVIDERS", "cuda")
    assert P.default_choice() == "cuda"
    monkeypatch.setenv("VIDSEARCH_PROVIDERS", "gpu-please")
    with pytest.raises(P.ProviderError, match="VIDSEARCH_PROVIDERS"):
        P.default_choice()


# ------------------------------------------------------------------------- TensorRT options, cache paths


def test_engine_cache_path_per_model_and_gpu(tmp_path):
    a = P.engine_cache_path("clip-vit-b-32@0123456789ab", gpu="NVIDIA H100 80GB HBM3", root=tmp_path)
    assert a == tmp_path / "clip-vit-b-32@0123456789ab" / "nvidia-h100-80gb-hbm3"
    b = P.engine_cache_path("clip-vit-b-32@ba9876543210", gpu="NVIDIA H100 80GB HBM3", root=tmp_path)
    c = P.engine_cache_path("clip-vit-b-32@0123456789ab", gpu="NVIDIA L4", root=tmp_path)
    assert len({a, b, c}) == 3
    assert c.name == "nvidia-l4"
    # odd characters in a model id cannot escape the cache root
    d = P.engine_cache_path("../../etc/x y@1", gpu="g", root=tmp_path)
    assert tmp_path in d.parents and ".." not in d.parts


def test_engine_cache_root_and_gpu_name_sources(tmp_path, monkeypatch):
    assert P.trt_cache_root() == tmp_path / "home" / "trt-cache"
    # no nvidia-smi: the device number stands in for the name
    assert P.engine_cache_path("m@1").parts[-2:] == ("m@1", "gpu0")
    monkeypatch.setattr(P, "_nvidia_smi", lambda device_id=0: ("NVIDIA A10G", "550.54", "23028 MiB"))
    assert P.gpu_info() == {"name": "NVIDIA A10G", "driver": "550.54", "memory": "23028 MiB"}
    assert P.engine_cache_path("m@1") == tmp_path / "home" / "trt-cache" / "m@1" / "nvidia-a10g"
    monkeypatch.setenv("VIDSEARCH_GPU_NAME", "Jetson Orin")
    monkeypatch.setenv("VIDSEARCH_TRT_CACHE", str(tmp_path / "elsewhere"))
    assert P.engine_cache_path("m@1") == tmp_path / "elsewhere" / "m@1" / "jetson-orin"


def test_tensorrt_plan_options(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDSEARCH_TRT_CACHE", str(tmp_path / "cache"))
    plan = P.plan_providers("auto", model_id="tiny8@abc", image_size=224, available=GPU_BUILD, gpu="NVIDIA L4")
    assert plan.names == [TRT, CUDA, CPU] and plan.required is None
    trt_name, opts = plan.entries[0]
    assert trt_name == TRT
    cache = tmp_path / "cache" / "tiny8@abc" / "nvidia-l4"
    assert plan.cache_dir == cache
    assert opts["trt_engine_cache_path"] == str(cache)
    # the Python binding takes "True"/"False" for TensorRT flags ("1" is rejected)
    assert opts["trt_fp16_enable"] == "True"
    assert opts["trt_engine_cache_enable"] == "True"
    assert opts["trt_timing_cache_enable"] == "True"
    assert opts["trt_profile_min_shapes"] == f"{IMAGE_INPUT}:1x3x224x224"
    assert opts["trt_profile_opt_shapes"] == f"{IMAGE_INPUT}:32x3x224x224"
    assert opts["trt_profile_max_shapes"] == f"{IMAGE_INPUT}:128x3x224x224"
    assert plan.max_batch == 128
    cuda_name, cuda_opts = plan.entries[1]
    assert cuda_name == CUDA and cuda_opts["device_id"] == "0"
    assert plan.entries[2] == CPU


def test_tensorrt_settings_from_env_and_config(monkeypatch):
    write_config(trt_profile=[2, 16, 64])
    s = P.TensorRTSettings.from_env()
    assert s.profile == (2, 16, 64) and s.fp16 is True
    monkeypatch.setenv("VIDSEARCH_TRT_PROFILE", "4,8,256")  # env wins over config
    monkeypatch.setenv("VIDSEARCH_TRT_FP16", "0")
    plan = P.plan_providers("tensorrt", model_id="m@1", image_size=32, available=GPU_BUILD, gpu="g")
    opts = plan.entries[0][1]
    assert opts["trt_fp16_enable"] == "False"
    assert opts["trt_profile_max_shapes"] == f"{IMAGE_INPUT}:256x3x32x32"
    assert plan.required == TRT and plan.max_batch == 256
    for bad in ("8,4,16", "0,1,2", "1,2", "a,b,c"):
        monkeypatch.setenv("VIDSEARCH_TRT_PROFILE", bad)
        with pytest.raises(P.ProviderError, match="MIN,OPT,MAX"):
            P.TensorRTSettings.from_env()


def test_text_tower_plan_has_no_tensorrt():
    plan = P.plan_providers("tensorrt", model_id="m@1", image_size=32, tower="text", available=GPU_BUILD, gpu="g")
    assert plan.names == [CUDA, CPU] and plan.required == CUDA and plan.cache_dir is None


def test_cpu_plan_has_no_options():
    plan = P.plan_providers("cpu", model_id="m@1", image_size=32, available=GPU_BUILD, gpu="g")
    assert plan.entries == [CPU] and plan.required is None and plan.cache_dir is None


# ------------------------------------------------------------------------- session read-back


def test_readback_mismatch_explicit_is_error():
    plan = P.plan_providers("tensorrt", model_id="m@1", image_size=32, available=GPU_BUILD, gpu="g")
    with pytest.raises(P.ProviderError, match="asked for tensorrt but onnxruntime fell back to cuda, cpu"):
        P.check_session_providers(plan, [CUDA, CPU])
    plan = P.plan_providers("cuda", model_id="m@1", image_size=32, available=GPU_BUILD, gpu="g")
    with pytest.raises(P.ProviderError, match="fell back to cpu"):
        P.check_session_providers(plan, [CPU])
    assert P.check_session_providers(plan, [CUDA, CPU]) == CUDA


def test_readback_mismatch_auto_warns_and_reports(caplog):
    plan = P.plan_providers("auto", model_id="m@1", image_size=32, available=GPU_BUILD, gpu="g")
    with caplog.at_level(logging.WARNING, logger="vidsearch.models.providers"):
        assert P.check_session_providers(plan, [CPU], what="tiny8 image encoder") == CPU
    assert "could not use tensorrt and runs on cpu" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="vidsearch.models.providers"):
        assert P.check_session_providers(plan, [TRT, CUDA, CPU]) == TRT
    assert caplog.text == ""


class FakeSession:
    """Stands in for onnxruntime.InferenceSession on a machine without a GPU."""

    keep: set[str] = set()  # providers the fake "can" use; the others are silently dropped
    created: list["FakeSession"] = []

    def __init__(self, path, sess_options=None, providers=()):
        self.path = str(path)
        self.asked = list(providers)
        self.batches: list[int] = []
        self.got = [P.entry_name(e) for e in providers if P.entry_name(e) in self.keep or P.entry_name(e) == CPU]
        FakeSession.created.append(self)
        print("*************** EP Error *************** (onnxruntime prints this on stdout)")

    def get_providers(self):
        return list(self.got)

    def run(self, outputs, feeds):
        x = next(iter(feeds.values()))
        self.batches.append(len(x))
        return [np.ones((len(x), 8), dtype=np.float32)]


@pytest.fixture
def fake_gpu(monkeypatch, tmp_path):
    monkeypatch.setattr(P, "available_providers", lambda: list(GPU_BUILD))
    monkeypatch.setattr(onnxruntime, "InferenceSession", FakeSession)
    monkeypatch.setenv("VIDSEARCH_GPU_NAME", "NVIDIA L4")
    monkeypatch.setenv("VIDSEARCH_TRT_CACHE", str(tmp_path / "trt"))
    FakeSession.created = []
    FakeSession.keep = set()
    return FakeSession


def test_encoder_explicit_tensorrt_dropped_is_error(tiny8, fake_gpu, capsys):
    fake_gpu.keep = {CUDA}  # libnvinfer missing: onnxruntime keeps CUDA, drops TensorRT
    enc = Encoder(tiny8, providers="tensorrt")
    with pytest.raises(P.ProviderError, match="asked for tensorrt"):
        enc.encode_images(np.zeros((2, 3, 32, 32), dtype=np.float32))
    assert capsys.readouterr().out == ""  # onnxruntime's fallback notice kept off stdout (--json)


def test_encoder_explicit_cuda_dropped_is_error(tiny8, fake_gpu):
    fake_gpu.keep = set()  # no usable GPU at all
    with pytest.raises(P.ProviderError, match="asked for cuda but onnxruntime fell back to cpu"):
        Encoder(tiny8, providers="cuda").encode_texts(["a red car"])


def test_encoder_auto_falls_back_with_warning(tiny8, fake_gpu, caplog):
    fake_gpu.keep = set()
    enc = Encoder(tiny8, providers="auto")
    with caplog.at_level(logging.WARNING):
        out = enc.encode_images(np.zeros((3, 3, 32, 32), dtype=np.float32))
    assert out.shape == (3, 8)
    assert enc.providers("image") == [CPU] and enc.active_provider() == "cpu"
    assert "runs on cpu" in caplog.text


def test_encoder_tensorrt_session_gets_options_and_cache_dir(tiny8, fake_gpu, tmp_path, monkeypatch):
    monkeypatch.setenv("VIDSEARCH_TRT_PROFILE", "1,2,4")
    fake_gpu.keep = {TRT, CUDA}
    enc = Encoder(tiny8, providers="tensorrt")
    out = enc.encode_images(np.zeros((10, 3, 32, 32), dtype=np.float32))
    assert out.shape == (10, 8)
    assert enc.active_provider("image") == "tensorrt"
    sess = fake_gpu.created[0]
    name, opts = sess.asked[0]
    cache = tmp_path / "trt" / tiny8.model_id / "nvidia-l4"
    assert name == TRT and opts["trt_engine_cache_path"] == str(cache)
    assert cache.is_dir()  # created before the session, survives the worker
    assert opts["trt_profile_max_shapes"] == f"{IMAGE_INPUT}:4x3x32x32"
    assert sess.batches == [4, 4, 2]  # batches beyond the profile's max are split
    # the text tower: CUDA, not TensorRT
    enc.encode_texts(["x"])
    assert P.entry_name(fake_gpu.created[1].asked[0]) == CUDA
    assert enc.active_provider("text") == "cuda"


def test_encoder_uses_env_choice(tiny8, fake_gpu, monkeypatch):
    monkeypatch.setenv("VIDSEARCH_PROVIDERS", "cpu")
    fake_gpu.keep = {TRT, CUDA}
    enc = Encoder(tiny8)  # no explicit choice: env decides
    enc.encode_images(np.zeros((1, 3, 32, 32), dtype=np.float32))
    assert fake_gpu.created[0].asked == [CPU]


# ------------------------------------------------------------------------- the real CPU path


def test_cpu_path_on_tiny_model(tiny8):
    enc = Encoder(tiny8, providers="cpu")
    rng = np.random.default_rng(0)
    out = enc.encode_images(rng.standard_normal((5, 3, 32, 32), dtype=np.float32))
    assert out.shape == (5, 8)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    assert enc.providers("image") == [CPU] and enc.active_provider() == "cpu"
    auto = Encoder(tiny8, providers="auto")
    np.testing.assert_allclose(auto.encode_images(rng.standard_normal((2, 3, 32, 32), dtype=np.float32)).shape, (2, 8))
    assert auto.providers("image")[0] in P.available_providers()


@pytest.mark.skipif(CUDA in onnxruntime.get_available_providers(), reason="this onnxruntime build lists CUDA")
@pytest.mark.filterwarnings("ignore:Specified provider")
def test_real_build_without_cuda(tiny8):
    with pytest.raises(P.ProviderError, match="not available"):
        Encoder(tiny8, providers="cuda").encode_images(np.zeros((1, 3, 32, 32), dtype=np.float32))
    probe = P.probe_provider(CUDA)
    assert probe["usable"] is False and probe["error"]


def test_probe_cpu():
    r = P.probe_provider("cpu")
    assert r["usable"] is True and r["session_providers"] == [CPU] and r["error"] is None


# ------------------------------------------------------------------------- doctor


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_doctor_json(tiny8, monkeypatch):
    from vidsearch.cli import cli

    runner = CliRunner()
    res = runner.invoke(cli, ["doctor", "--json", "--model", str(tiny8.path)])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    for key in ("python", "vidsearch", "onnxruntime", "providers", "gpu", "av", "duckdb", "model", "broker", "checks", "ok"):
        assert key in d
    assert d["ok"] is True
    assert d["onnxruntime"]["version"] == onnxruntime.__version__
    assert d["onnxruntime"]["usable"]["cpu"]["usable"] is True
    assert d["providers"]["choice"] == "auto" and d["providers"]["would_use"] in ("tensorrt", "cuda", "cpu")
    assert d["av"]["decoders"]["h264"] is True
    assert d["model"]["ok"] and d["model"]["model_id"] == tiny8.model_id
    assert d["broker"]["configured"] is False
    assert d["gpu"] is None  # nvidia-smi faked away

    # failures: no model, an unreachable broker, an explicit provider that does not work -> exit 1
    monkeypatch.setenv("VIDSEARCH_BROKER_URL", f"redis://:s3cret@127.0.0.1:{_closed_port()}/0")
    monkeypatch.setenv("VIDSEARCH_PROVIDERS", "tensorrt")
    res = runner.invoke(cli, ["doctor", "--json"])
    assert res.exit_code == 1
    d = json.loads(res.stdout)
    assert d["ok"] is False
    assert d["model"]["ok"] is False and "no model installed" in d["model"]["error"]
    assert d["broker"]["ok"] is False and "s3cret" not in res.stdout
    failed = {c["check"] for c in d["checks"] if c["status"] == "FAIL"}
    assert {"model", "broker"} <= failed
    if TRT not in onnxruntime.get_available_providers():
        assert "providers setting" in failed


def test_doctor_reads_the_broker_from_config_and_option(home, monkeypatch):
    from vidsearch.cli import cli
    from vidsearch.settings import write_config

    monkeypatch.delenv("VIDSEARCH_BROKER_URL", raising=False)
    runner = CliRunner()
    # config.json's broker_url, the one workers and submitters use too
    write_config(broker_url=f"redis://127.0.0.1:{_closed_port()}/0")
    d = json.loads(runner.invoke(cli, ["doctor", "--json", "--providers", "cpu"]).stdout)
    assert d["broker"]["configured"] is True and d["broker"]["ok"] is False
    assert d["broker"]["url"].startswith("redis://127.0.0.1:")
    # --broker wins over config and env
    monkeypatch.setenv("VIDSEARCH_BROKER_URL", "redis://127.0.0.1:1/0")
    port = _closed_port()
    d = json.loads(runner.invoke(cli, ["doctor", "--json", "--providers", "cpu", "--broker", f"redis://127.0.0.1:{port}/3"]).stdout)
    assert d["broker"]["url"] == f"redis://127.0.0.1:{port}/3" and d["broker"]["ok"] is False


def test_doctor_text_output(tiny8):
    from vidsearch.cli import cli

    res = CliRunner().invoke(cli, ["doctor", "--warmup", "--providers", "cpu", "--model", str(tiny8.path)])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["STATUS", "CHECK", "DETAIL"]
    assert any(line.startswith("OK") and "provider cpu" in line for line in lines)
    assert any(line.startswith("OK") and "model" in line and tiny8.model_id in line for line in lines)
    assert any(line.startswith("OK") and "warm-up" in line and "runs on cpu" in line for line in lines)
    assert lines[-1] == "all checks passed"


@pytest.mark.skipif(CUDA in onnxruntime.get_available_providers(), reason="this onnxruntime build lists CUDA")
def test_doctor_explicit_provider_that_does_not_work(tiny8):
    from vidsearch.cli import cli

    res = CliRunner().invoke(cli, ["doctor", "--json", "--providers", "cuda", "--model", str(tiny8.path)])
    assert res.exit_code == 1
    d = json.loads(res.stdout)
    assert d["providers"]["choice"] == "cuda" and "cuda does not work here" in d["providers"]["error"]


def test_image_session_threads_sleep_between_batches(tiny8):
    """The image tower's idle ONNX Runtime threads must not spin: an ingest's decoder needs the
    cores between batches. The text tower (one short run per query) keeps the default."""
    enc = Encoder(tiny8, providers="cpu")
    enc.encode_images(np.zeros((1, 3, tiny8.image_size, tiny8.image_size), np.float32))
    enc.encode_texts(["a red car"])
    image = enc._session(IMAGE_FILE).get_session_options()
    text = enc._session(TEXT_FILE).get_session_options()
    assert image.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    with pytest.raises(RuntimeError, match="does not have configuration"):  # not set: the default
        text.get_session_config_entry("session.intra_op.allow_spinning")
