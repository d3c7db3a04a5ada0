"""ONNX graph surgery: adapt one upstream CLIP tower to vidsearch's contract.

The tower gets our tensor names (``pixel_values`` -> ``image_embeds``, ``input_ids`` int64 ->
``text_embeds``); int32 token inputs get a Cast; a text tower that also wants an
``attention_mask`` (XLM-RoBERTa M-CLIP) computes it inside the graph from ``input_ids != pad_id``;
a tower exported with a fixed batch of 1 is wrapped in an ONNX ``Scan`` over the batch. Each
converted tower is checked by running a batch of two against two single runs.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from vidsearch.errors import ModelError, first_line
from vidsearch.models.contract import IMAGE_INPUT, IMAGE_OUTPUT, TEXT_INPUT, TEXT_OUTPUT

log = logging.getLogger(__name__)

#: ONNX protobufs cannot exceed 2 GiB; bigger towers are saved with their weights in ``<file>.data``.
_EXTERNAL_DATA_THRESHOLD = 1_800_000_000


def graph_inputs(graph) -> list:
    inits = {t.name for t in graph.initializer}
    return [i for i in graph.input if i.name not in inits]


def tensor_dims(vi) -> list[int | str | None]:
    out: list[int | str | None] = []
    for d in vi.type.tensor_type.shape.dim:
        if d.HasField("dim_value"):
            out.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            out.append(d.dim_param)
        else:
            out.append(None)
    return out


def _opset(model) -> int:
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            return int(o.version)
    return 13


def _axes_nodes(helper, opset: int, op: str, x: str, y: str, prefix: str) -> list:
    """``Unsqueeze``/``Squeeze`` on axis 0, as an input (opset >= 13) or an attribute."""
    if opset >= 13:
        axes = f"{prefix}_axes0"
        return [
            helper.make_node("Constant", [], [axes], value=helper.make_tensor(axes, 7, [1], [0])),
            helper.make_node(op, [x, axes], [y]),
        ]
    return [helper.make_node(op, [x], [y], axes=[0])]


def _rename(graph, old: str, new: str) -> None:
    """Rename value ``old`` to ``new`` everywhere in ``graph`` (and the subgraphs that see it)."""
    for node in graph.node:
        for i, n in enumerate(node.input):
            if n == old:
                node.input[i] = new
        for i, n in enumerate(node.output):
            if n == old:
                node.output[i] = new
        for a in node.attribute:
            if a.HasField("g"):
                _rename(a.g, old, new)
            for sub in a.graphs:
                _rename(sub, old, new)
    for vi in list(graph.input) + list(graph.output) + list(graph.value_info):
        if vi.name == old:
            vi.name = new


class _Tower:
    """An upstream tower adapted to our contract, buildable with a dynamic batch or a Scan."""

    def __init__(self, model, kind: str, pad_id: int | None = None):
        import onnx
        from onnx import TensorProto, helper

        self.onnx, self.helper, self.TP = onnx, helper, TensorProto
        self.model = model
        self.kind = kind
        self.opset = _opset(model)
        g = model.graph
        inputs = graph_inputs(g)
        if not g.output:
            raise ValueError("the graph has no output")
        self.orig_out = g.output[0]
        if kind == "image":
            floats = [i for i in inputs if i.type.tensor_type.elem_type in (TensorProto.FLOAT, TensorProto.FLOAT16)]
            if len(inputs) != 1 or len(floats) != 1:
                raise ValueError(f"an image tower takes one float input, this one takes {[i.name for i in inputs]}")
            self.ids_in, self.mask_in = floats[0], None
            shape = tensor_dims(self.ids_in)
            if len(shape) != 4 or shape[1] != 3:
                raise ValueError(f"image input {self.ids_in.name} has shape {shape}, expected [N, 3, S, S]")
            self.in_name, self.out_name = IMAGE_INPUT, IMAGE_OUTPUT
            self.in_type = TensorProto.FLOAT
        else:
            ints = [i for i in inputs if i.type.tensor_type.elem_type in (TensorProto.INT32, TensorProto.INT64)]
            if len(ints) != len(inputs) or not 1 <= len(inputs) <= 2:
                raise ValueError(f"a text tower takes token ids (and an attention mask), this one takes {[i.name for i in inputs]}")
            masks = [i for i in inputs if "mask" in i.name.lower()]
            ids = [i for i in inputs if i not in masks]
            if len(ids) != 1 or len(masks) > 1:
                raise ValueError(f"cannot tell token ids from attention mask among {[i.name for i in inputs]}")
            self.ids_in, self.mask_in = ids[0], (masks[0] if masks else None)
            if self.mask_in is not None and pad_id is None:
                raise ValueError("the text tower wants an attention_mask but the pad token id is unknown")
            shape = tensor_dims(self.ids_in)
            if len(shape) != 2:
                raise ValueError(f"token input {self.ids_in.name} has shape {shape}, expected [N, length]")
            self.in_name, self.out_name = TEXT_INPUT, TEXT_OUTPUT
            self.in_type = TensorProto.INT64
        self.pad_id = pad_id
        self.shape = shape
        # Upstream names may be ours already ("input_ids" in M-CLIP): give them private names.
        for vi in (self.ids_in, self.mask_in, self.orig_out):
            if vi is not None:
                _rename(g, vi.name, f"upstream__{vi.name}")

    @property
    def sample_shape(self) -> list:
        return self.shape[1:]

    def _adapter(self, x: str, y: str) -> tuple[list, list]:
        """Nodes from our input ``x`` to the upstream inputs, and from the upstream output to ``y``."""
        h, TP = self.helper, self.TP
        pre: list = []
        want = self.ids_in.type.tensor_type.elem_type
        if want == self.in_type:
            pre.append(h.make_node("Identity", [x], [self.ids_in.name]))
        else:
            pre.append(h.make_node("Cast", [x], [self.ids_in.name], to=want))
        if self.mask_in is not None:
            pad = f"{y}__pad_id"
            pre += [
                h.make_node("Constant", [], [pad], value=h.make_tensor(pad, TP.INT64, [], [int(self.pad_id)])),
                h.make_node("Equal", [x, pad], [f"{y}__is_pad"]),
                h.make_node("Not", [f"{y}__is_pad"], [f"{y}__not_pad"]),
                h.make_node("Cast", [f"{y}__not_pad"], [self.mask_in.name], to=self.mask_in.type.tensor_type.elem_type),
            ]
        out_type = self.orig_out.type.tensor_type.elem_type
        post = [
            h.make_node("Identity", [self.orig_out.name], [y])
            if out_type == TP.FLOAT
            else h.make_node("Cast", [self.orig_out.name], [y], to=TP.FLOAT)
        ]
        return pre, post

    def _model(self, graph):
        m = self.helper.make_model(graph, opset_imports=list(self.model.opset_import), producer_name="vidsearch.hub")
        m.ir_version = self.model.ir_version
        m.functions.extend(self.model.functions)
        return m

    def build(self, mode: str):
        """``mode``: "dynamic" (the upstream graph with a symbolic batch) or "scan" (one sample at a time)."""
        h, g = self.helper, self.model.graph
        x, y = self.in_name, self.out_name
        sample = [d if isinstance(d, int) else None for d in self.sample_shape]
        x_vi = h.make_tensor_value_info(x, self.in_type, ["batch", *sample])
        y_vi = h.make_tensor_value_info(y, self.TP.FLOAT, ["batch", None])
        if mode == "dynamic":
            pre, post = self._adapter(x, y)
            graph = h.make_graph(pre + list(g.node) + post, "vidsearch_" + self.kind, [x_vi], [y_vi], initializer=list(g.initializer))
            return self._model(graph)
        if mode != "scan":
            raise ValueError(mode)
        xi, yi = f"{x}__sample", f"{y}__sample"
        xb, yb = f"{x}__one", f"{y}__one"
        pre, post = self._adapter(xb, yb)
        body_nodes = (
            _axes_nodes(h, self.opset, "Unsqueeze", xi, xb, f"{x}__u")
            + pre
            + list(g.node)
            + post
            + _axes_nodes(h, self.opset, "Squeeze", yb, yi, f"{y}__s")
        )
        body = h.make_graph(
            body_nodes,
            "vidsearch_" + self.kind + "_one",
            [h.make_tensor_value_info(xi, self.in_type, sample)],
            [h.make_tensor_value_info(yi, self.TP.FLOAT, [None])],
        )
        scan = h.make_node("Scan", [x], [y], body=body, num_scan_inputs=1)
        graph = h.make_graph([scan], "vidsearch_" + self.kind, [x_vi], [y_vi], initializer=list(g.initializer))
        return self._model(graph)


def _save_onnx(model, path: Path) -> list[str]:
    """Save ``model``; weights go to ``<name>.data`` when the protobuf would be too big. Returns extra files."""
    import onnx

    weight_bytes = sum(len(t.raw_data) for t in model.graph.initializer)
    for p in (path, path.with_name(path.name + ".data")):
        if p.exists():
            p.unlink()
    if weight_bytes > _EXTERNAL_DATA_THRESHOLD:
        data = path.name + ".data"
        onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location=data, size_threshold=1024)
        return [data]
    onnx.save_model(model, str(path))
    return []


def _run(path: Path, name: str, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 4  # a failing probe is expected; say nothing
    sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    return np.asarray(sess.run(None, {name: x})[0], dtype=np.float32)


def _batch_ok(path: Path, name: str, x: np.ndarray) -> tuple[bool, np.ndarray | None, str]:
    """Does the tower at ``path`` give, for a batch of two, the same rows as two single runs?"""
    try:
        both = _run(path, name, x)
        ones = np.concatenate([_run(path, name, x[i : i + 1]) for i in range(len(x))])
    except Exception as e:  # onnxruntime raises its own types
        return False, None, first_line(e)
    if both.shape != ones.shape or both.ndim != 2:
        return False, None, f"output shape {both.shape} for a batch of {len(x)}"
    if not np.all(np.isfinite(both)):
        return False, None, "non-finite output"
    n1 = both / np.maximum(np.linalg.norm(both, axis=1, keepdims=True), 1e-12)
    n2 = ones / np.maximum(np.linalg.norm(ones, axis=1, keepdims=True), 1e-12)
    if not np.allclose(n1, n2, rtol=1e-3, atol=2e-4):
        return False, None, f"batched rows differ from single runs by {float(np.abs(n1 - n2).max()):.2g}"
    return True, both, ""


def convert_tower(src: Path, dest: Path, kind: str, sample: np.ndarray, pad_id: int | None) -> tuple[int, str, list[str]]:
    """Convert one upstream tower to ``dest``; returns (embedding dim, batch mode, extra files)."""
    import onnx

    label = f"{src.parent.name}/{src.name}"
    try:
        model = onnx.load(str(src), load_external_data=True)
    except Exception as e:
        raise ModelError(f"{label} is not a loadable ONNX model ({first_line(e)})") from None
    try:
        tower = _Tower(model, kind, pad_id)
    except ValueError as e:
        raise ModelError(f"{label}: {e}; it is not a CLIP {kind} tower in the expected layout") from None
    if kind == "image":
        s = tower.sample_shape
        if isinstance(s[1], int) and isinstance(s[2], int) and (s[1], s[2]) != sample.shape[2:]:
            raise ModelError(f"{label} takes {s[1]}x{s[2]} images but the model config says {sample.shape[2]}")
    else:
        length = tower.sample_shape[0]
        if isinstance(length, int) and length != sample.shape[1]:
            raise ModelError(f"{label} takes {length} tokens but the model config says {sample.shape[1]}")
    name = tower.in_name
    errors = []
    for mode in ("dynamic", "scan"):
        extra = _save_onnx(tower.build(mode), dest)
        ok, out, why = _batch_ok(dest, name, sample)
        if ok and out is not None:
            log.info("%s: converted (%s batch)", label, mode)
            return int(out.shape[1]), mode, extra
        errors.append(f"{mode}: {why}")
        log.info("%s: %s batch does not work (%s)", label, mode, why)
    raise ModelError(f"cannot adapt {label} to batched inference ({'; '.join(errors)})")


def external_locations(onnx_path: Path) -> list[str]:
    """The external weight files ``onnx_path`` names (relative paths; unsafe ones are refused)."""
    import onnx

    try:
        m = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as e:
        raise ModelError(f"{onnx_path.name} is not a loadable ONNX model ({first_line(e)})") from None
    locs: set[str] = set()
    tensors = list(m.graph.initializer)
    for node in m.graph.node:
        for a in node.attribute:
            if a.HasField("t"):
                tensors.append(a.t)
    for t in tensors:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            for kv in t.external_data:
                if kv.key == "location":
                    locs.add(kv.value)
    for loc in locs:
        if loc.startswith(("/", "\\")) or ".." in Path(loc).parts:
            raise ModelError(f"{onnx_path.name} names an unsafe external data path {loc!r}")
    return sorted(locs)
