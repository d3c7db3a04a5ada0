"""Small ONNX models built in code (no weights to download), for tests, demos and benchmarks.

* :func:`tiny_random_model`: random weights, the real contract (shapes, dynamic batch, the ONNX
  Runtime path). Its embeddings mean nothing: ``semantics="random"``.
* :func:`colour_model`: a deterministic model that understands *only colour words*. The image
  tower averages the pixels and measures how close the average is to ten named colours; the text
  tower looks up colour words in the CLIP vocabulary. It makes the demo and the end-to-end tests
  meaningful without pretending to be CLIP: ``semantics="colours"``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from vidsearch.models.contract import IMAGE_FILE, IMAGE_INPUT, IMAGE_OUTPUT, TEXT_FILE, TEXT_INPUT, TEXT_OUTPUT, ModelInfo, write_model_dir

VOCAB_SIZE = 49408
OPSET = 18

#: name -> RGB in 0..1; words the colour model understands (with a few synonyms).
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.90, 0.10, 0.10),
    "green": (0.10, 0.70, 0.15),
    "blue": (0.10, 0.20, 0.90),
    "yellow": (0.95, 0.90, 0.10),
    "white": (0.95, 0.95, 0.95),
    "black": (0.05, 0.05, 0.05),
    "gray": (0.50, 0.50, 0.50),
    "orange": (1.00, 0.55, 0.00),
    "purple": (0.50, 0.10, 0.60),
    "cyan": (0.10, 0.80, 0.90),
}
SYNONYMS = {"grey": "gray", "violet": "purple", "crimson": "red", "dark": "black", "teal": "cyan"}
COLOUR_SIGMA = 0.2


def _save(graph, path: Path) -> None:
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="vidsearch.modelgen")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _io(name: str, elem, shape):
    from onnx import helper

    return helper.make_tensor_value_info(name, elem, shape)


def _image_input(size: int):
    from onnx import TensorProto

    return _io(IMAGE_INPUT, TensorProto.FLOAT, ["batch", 3, size, size])


def _text_io(context_length: int, dim: int):
    from onnx import TensorProto

    return (
        _io(TEXT_INPUT, TensorProto.INT64, ["batch", context_length]),
        _io(TEXT_OUTPUT, TensorProto.FLOAT, ["batch", dim]),
    )


def _finish(out_dir: Path, info: ModelInfo) -> ModelInfo:
    return write_model_dir(out_dir, info)


def tiny_random_model(out_dir: str | Path, dim: int = 16, image_size: int = 32, seed: int = 0, name: str = "tiny-random") -> ModelInfo:
    """A random-weight model honouring the contract; for plumbing and parity tests only."""
    from onnx import TensorProto, helper, numpy_helper

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pool = image_size // 4
    w_img = rng.standard_normal((3 * 4 * 4, dim)).astype(np.float32)
    nodes = [
        helper.make_node("AveragePool", [IMAGE_INPUT], ["pooled"], kernel_shape=[pool, pool], strides=[pool, pool]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "w_img"], ["proj"]),
        helper.make_node("Tanh", ["proj"], [IMAGE_OUTPUT]),
    ]
    graph = helper.make_graph(
        nodes, "tiny_image", [_image_input(image_size)], [_io(IMAGE_OUTPUT, TensorProto.FLOAT, ["batch", dim])],
        initializer=[numpy_helper.from_array(w_img, "w_img")],
    )
    _save(graph, out_dir / IMAGE_FILE)

    table = rng.standard_normal((VOCAB_SIZE, dim)).astype(np.float32) * 0.1
    w_txt = rng.standard_normal((dim, dim)).astype(np.float32)
    nodes = [
        helper.make_node("Gather", ["table", TEXT_INPUT], ["tok"], axis=0),
        helper.make_node("ReduceMean", ["tok", "axes1"], ["mean"], keepdims=0),
        helper.make_node("MatMul", ["mean", "w_txt"], [TEXT_OUTPUT]),
    ]
    graph = helper.make_graph(
        nodes, "tiny_text", [_text_io(77, dim)[0]], [_text_io(77, dim)[1]],
        initializer=[
            numpy_helper.from_array(table, "table"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "axes1"),
            numpy_helper.from_array(w_txt, "w_txt"),
        ],
    )
    _save(graph, out_dir / TEXT_FILE)
    info = ModelInfo(
        name=name, image_size=image_size, dim=dim, files={}, semantics="random", arch="tiny-random",
        description="Random weights for plumbing tests; its embeddings mean nothing.",
    )
    return _finish(out_dir, info)


def colour_model(out_dir: str | Path, image_size: int = 32, name: str = "demo-colours") -> ModelInfo:
    """The colours-only demo model (see module docstring)."""
    from onnx import TensorProto, helper, numpy_helper

    from vidsearch.models.tokenizer import clip_bpe

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = list(COLOURS)
    k = len(names)
    centres = np.array([COLOURS[n] for n in names], dtype=np.float32)  # [K,3]
    scale = np.float32(1.0 / (2 * COLOUR_SIGMA**2))
    nodes = [
        helper.make_node("ReduceMean", [IMAGE_INPUT, "axes23"], ["rgb"], keepdims=0),  # [N,3]
        helper.make_node("MatMul", ["rgb", "centres_t"], ["xc"]),  # [N,K]
        helper.make_node("Mul", ["rgb", "rgb"], ["sq"]),
        helper.make_node("ReduceSum", ["sq", "axes1"], ["xx"], keepdims=1),  # [N,1]
        helper.make_node("Mul", ["xc", "minus_two"], ["m2xc"]),
        helper.make_node("Add", ["xx", "m2xc"], ["d0"]),
        helper.make_node("Add", ["d0", "cc"], ["d2"]),  # squared distance to each centre
        helper.make_node("Mul", ["d2", "neg_scale"], ["logit"]),
        helper.make_node("Exp", ["logit"], [IMAGE_OUTPUT]),
    ]
    graph = helper.make_graph(
        nodes, "colour_image", [_image_input(image_size)], [_io(IMAGE_OUTPUT, TensorProto.FLOAT, ["batch", k])],
        initializer=[
            numpy_helper.from_array(np.array([2, 3], dtype=np.int64), "axes23"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "axes1"),
            numpy_helper.from_array(centres.T.copy(), "centres_t"),
            numpy_helper.from_array(np.array(-2.0, dtype=np.float32), "minus_two"),
            numpy_helper.from_array((centres**2).sum(1)[None, :].astype(np.float32), "cc"),
            numpy_helper.from_array(np.array(-scale, dtype=np.float32), "neg_scale"),
        ],
    )
    _save(graph, out_dir / IMAGE_FILE)

    tok = clip_bpe()
    table = np.zeros((VOCAB_SIZE, k), dtype=np.float32)
    for word in names + list(SYNONYMS):
        ids = tok.encode(word)
        if len(ids) == 1:
            table[ids[0], names.index(SYNONYMS.get(word, word))] = 1.0
    nodes = [
        helper.make_node("Gather", ["table", TEXT_INPUT], ["tok"], axis=0),
        helper.make_node("ReduceSum", ["tok", "axes1"], [TEXT_OUTPUT], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes, "colour_text", [_text_io(77, k)[0]], [_text_io(77, k)[1]],
        initializer=[
            numpy_helper.from_array(table, "table"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "axes1"),
        ],
    )
    _save(graph, out_dir / TEXT_FILE)
    info = ModelInfo(
        name=name, image_size=image_size, dim=k, files={}, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
        semantics="colours", arch="colour-histogram",
        description="Demo model: understands only the colour words " + ", ".join(names) + ". Not CLIP.",
    )
    return _finish(out_dir, info)


def install_model(builder, name: str, models_root: Path) -> ModelInfo:
    """Build a model into ``models_root/name`` atomically (temp dir + rename)."""
    from vidsearch.models.contract import staged_dir

    final = models_root / name
    with staged_dir(final) as tmp:
        builder(tmp, name=name)
    from vidsearch.models.contract import load_model_info

    return load_model_info(final)
