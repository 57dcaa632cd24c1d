"""Recurrent layers (``rnnkit.RNN``, ``LSTM``, ``GRU``, ``Recurrent``) as ONNX's standard RNN,
LSTM and GRU operators: one operator per layer, both directions in it, layers chained.

rnnkit's weights are PyTorch's; ONNX orders the gates otherwise, so the blocks of rows move:
LSTM i, f, g, o -> ONNX i, o, f, c; GRU r, z, n -> ONNX z, r, h. ONNX's B is [Wb, Rb]
(bias_ih, bias_hh) per direction. PyTorch's GRU (reset after the recurrent product) is ONNX's
``linear_before_reset=1``; 'gru_reset_before' is ``linear_before_reset=0``.

Ragged batches go through ``sequence_lens``. ONNX Runtime then does what rnnkit does, so the
graph adds nothing: it runs the reverse direction over each sequence within its own length, takes
the final states at each sequence's last valid step and writes zeros to Y past each length
(checked by tests/test_export_recurrent.py, which would catch a runtime that stopped doing so).

The layer-normalised cells (layer_norm_lstm, layer_norm_gru) have no standard operator: each
layer and direction is a Scan over the steps built from basic operators (MatMul,
LayerNormalization, Sigmoid, Tanh, Where), with ReverseSequence for the reverse direction and a
Less(step, length) mask that keeps the state and zeroes the output past each length.
"""

from __future__ import annotations

import numpy as np
import onnx

from rnnkit.cells._layer_norm import EPSILON
from rnnkit.errors import UserError
from rnnkit.export._graph import Graph, metadata
from rnnkit.nn.recurrent import Recurrent

# cell -> (ONNX operator, PyTorch's gate blocks in ONNX's order, extra attributes)
OPERATORS = {
    "rnn": ("RNN", [0], {}),
    "lstm": ("LSTM", [0, 3, 1, 2], {}),
    "gru": ("GRU", [1, 0, 2], {"linear_before_reset": 1}),
    "gru_reset_before": ("GRU", [1, 0, 2], {"linear_before_reset": 0}),
}


def _operator(layer: Recurrent) -> tuple[str, list[int], dict]:
    """The layer's ONNX operator, gate order and attributes; a UserError for what has none."""
    name = layer.cell.name
    if name not in OPERATORS and name not in LAYER_NORM_CELLS:
        raise UserError(
            f"cannot export a {layer._name} with the {name!r} cell to ONNX: it has no standard "
            f"ONNX operator; exportable cells: {', '.join(OPERATORS)}"
        )
    if layer.cell_options.get("proj_size", 0):
        raise UserError(
            f"cannot export an LSTM with proj_size={layer.cell_options['proj_size']} to ONNX: "
            "ONNX's LSTM has no projection; export an LSTM with proj_size=0"
        )
    if name in LAYER_NORM_CELLS:
        return "Scan", [], {}
    operator, blocks, attributes = OPERATORS[name]
    if name == "rnn":
        activation = layer.cell_options["nonlinearity"].capitalize()  # 'Tanh' or 'Relu'
        attributes = {"activations": [activation] * layer.directions}
    return operator, blocks, attributes


def _reordered(array: np.ndarray, blocks: list[int]) -> np.ndarray:
    """``array``'s gate blocks of rows (axis 0, len(blocks) equal blocks) in ``blocks``' order."""
    parts = np.split(array, len(blocks), axis=0)
    return np.concatenate([parts[block] for block in blocks], axis=0)


def _layer_weights(layer: Recurrent, index: int, blocks: list[int]) -> dict[str, np.ndarray]:
    """ONNX's W (D, G*H, I), R (D, G*H, H) and, with biases, B (D, 2*G*H) of layer ``index``."""
    per_direction = [layer._weights(index, direction) for direction in range(layer.directions)]
    weights = {
        "W": np.stack([_reordered(w["weight_ih"], blocks) for w in per_direction]),
        "R": np.stack([_reordered(w["weight_hh"], blocks) for w in per_direction]),
    }
    if layer.bias:
        weights["B"] = np.stack(
            [
                np.concatenate([_reordered(w["bias_ih"], blocks), _reordered(w["bias_hh"], blocks)])
                for w in per_direction
            ]
        )
    return weights


def _layer_slice(graph: Graph, value: str, index: int, directions: int, hint: str) -> str:
    """``value[index*D:(index+1)*D]`` along axis 0: one layer's part of a state stack."""
    starts = graph.constant(f"{hint}_start", np.array([index * directions], np.int64))
    ends = graph.constant(f"{hint}_end", np.array([(index + 1) * directions], np.int64))
    axes = graph.constant(f"{hint}_axes", np.array([0], np.int64))
    return graph.node("Slice", [value, starts, ends, axes], hint=hint)


def recurrent(graph: Graph, layer: Recurrent, x: str, lengths=None, state=None, *, hint="rnn"):
    """Add ``layer`` (inference: dropout off) to ``graph``; ``(output, final_state)``.

    Args:
        x: the name of a float32 (T, B, I) value (time first).
        lengths: the name of an int32 (B,) value of lengths in [1, T], or None (all T).
        state: None (zeros), or names in rnnkit's layout: h (L*D, B, H), or (h, c) for an LSTM.
    Returns:
        output: (T, B, D*H) for merge='concat', (T, B, H) for 'sum'; zero past each length;
        final_state: h (L*D, B, H), or (h, c) for an LSTM, at each sequence's last valid step.
    """
    operator, blocks, attributes = _operator(layer)
    directions = layer.directions
    parts = len(layer.cell.state)
    if state is not None and parts == 1 and isinstance(state, str):
        state = (state,)
    if operator == "Scan":
        output, final = _scan_recurrent(graph, layer, x, lengths, state, hint)
        return output, (final[0] if parts == 1 else tuple(final))
    direction = "bidirectional" if directions == 2 else "forward"
    finals: list[list[str]] = [[] for _ in range(parts)]
    layer_input = x
    for index in range(layer.num_layers):
        name = f"{hint}_l{index}"
        weights = _layer_weights(layer, index, blocks)
        inputs = [layer_input] + [
            graph.constant(f"{name}_{role}", weights[role]) if role in weights else ""
            for role in ("W", "R", "B")
        ]
        inputs.append(lengths or "")
        for part in range(parts):
            start = "" if state is None else state[part]
            if start and layer.num_layers > 1:
                start = _layer_slice(graph, start, index, directions, f"{name}_{part}_0")
            inputs.append(start)
        outputs = graph.node(
            operator,
            inputs,
            outputs=1 + parts,
            hint=name,
            hidden_size=layer.hidden_size,
            direction=direction,
            **attributes,
        )
        for part in range(parts):
            finals[part].append(outputs[1 + part])
        layer_input = _merged(graph, layer, outputs[0], name)
    final = tuple(
        part[0] if len(part) == 1 else graph.node("Concat", part, hint=f"{hint}_state", axis=0)
        for part in finals
    )
    return layer_input, (final[0] if parts == 1 else final)


def _merged(graph: Graph, layer: Recurrent, y: str, hint: str) -> str:
    """ONNX's Y (T, D, B, H) in rnnkit's layout: (T, B, D*H) for concat, (T, B, H) for sum."""
    if layer.directions == 1 or layer.merge == "sum":
        axis = graph.constant(f"{hint}_direction_axis", np.array([1], np.int64))
        if layer.directions == 1:
            return graph.node("Squeeze", [y, axis], hint=f"{hint}_y")
        return graph.node("ReduceSum", [y, axis], hint=f"{hint}_y", keepdims=0)
    y = graph.node("Transpose", [y], hint=f"{hint}_y", perm=[0, 2, 1, 3])  # (T, B, D, H)
    shape = graph.constant(f"{hint}_shape", np.array([0, 0, 2 * layer.hidden_size], np.int64))
    return graph.node("Reshape", [y, shape], hint=f"{hint}_y")


def build(layer: Recurrent, *, lengths: bool = False, state: bool = False) -> list:
    """A bare recurrent layer as one graph.

    Inputs: ``x`` (T, B, I) float32 ((B, T, I) when batch_first); with ``lengths=True``
    ``lengths`` (B,) int32 in [1, T]; with ``state=True`` ``h0`` (L*D, B, H) (and ``c0`` for an
    LSTM). Outputs: ``output`` (T, B, F) ((B, T, F) when batch_first), ``h_n`` (and ``c_n``),
    as ``layer(x, lengths, state)`` returns them.
    """
    for option, value in (("lengths", lengths), ("state", state)):
        if not isinstance(value, bool):
            raise UserError(f"export_onnx: {option}={value!r} is not True or False")
    _operator(layer)
    graph = Graph(type(layer).__name__)
    features, hidden = layer.input_size, layer.hidden_size
    stack = layer.num_layers * layer.directions
    if layer.batch_first:
        x = graph.input("x", np.float32, ["batch", "time", features])
        x = graph.node("Transpose", [x], hint="x_time_first", perm=[1, 0, 2])
    else:
        x = graph.input("x", np.float32, ["time", "batch", features])
    sequence_lengths = graph.input("lengths", np.int32, ["batch"]) if lengths else None
    names = [("h0", "h_n"), ("c0", "c_n")][: len(layer.cell.state)]
    state0 = None
    if state:
        state0 = [graph.input(name, np.float32, [stack, "batch", hidden]) for name, _ in names]
    output, final = recurrent(graph, layer, x, sequence_lengths, state0)
    if layer.batch_first:
        output = graph.node("Transpose", [output], hint="output_batch_first", perm=[1, 0, 2])
        graph.output(output, "output", np.float32, ["batch", "time", layer.output_size])
    else:
        graph.output(output, "output", np.float32, ["time", "batch", layer.output_size])
    finals = (final,) if isinstance(final, str) else final
    for value, (_, name) in zip(finals, names, strict=True):
        graph.output(value, name, np.float32, [stack, "batch", hidden])
    return [("", graph.model(metadata(layer)))]


# The layer-normalised cells: no standard operator, so a Scan over the steps, built from basic
# operators (LayerNormalization is opset 17's), one per layer and direction.
LAYER_NORM_CELLS = ("layer_norm_lstm", "layer_norm_gru")


def _constant_int64(graph: Graph, hint: str, values: list[int]) -> str:
    return graph.constant(hint, np.array(values, np.int64))


def _layer_norm(graph: Graph, value: str, gain: str, shift: str, hint: str) -> str:
    """LN over the last axis with rnnkit's EPSILON (``rnnkit.cells._layer_norm``)."""
    return graph.node(
        "LayerNormalization", [value, gain, shift], hint=hint, axis=-1, epsilon=EPSILON
    )


def _scan_cell_step(body: Graph, graph: Graph, cell: str, weights: dict, a: str, state: list):
    """One step of a layer-normalised cell in ``body``: the new state parts (B, H) from the
    input side ``a`` (B, G*H, normalised and biased) and ``state`` (h, or h and c)."""
    h = state[0]
    hidden = weights["weight_hh"].shape[1]
    recurrent_t = graph.constant("ln_weight_hh_t", weights["weight_hh"].T)
    product = body.node("MatMul", [h, recurrent_t], hint="ln_hw")
    gain = graph.constant("ln_hh_gain", weights["ln_hh_gain"])
    shift = graph.constant("ln_hh_shift", weights["ln_hh_shift"])
    hw = _layer_norm(body, product, gain, shift, "ln_hw_norm")
    if "bias_hh" in weights:
        hw = body.node("Add", [hw, graph.constant("ln_bias_hh", weights["bias_hh"])])
    gates = len(weights["weight_hh"]) // hidden
    split = _constant_int64(graph, "ln_split", [hidden] * gates)
    if cell == "layer_norm_gru":
        a_r, a_z, a_n = body.node("Split", [a, split], outputs=3, hint="ln_a", axis=1)
        hw_r, hw_z, hw_n = body.node("Split", [hw, split], outputs=3, hint="ln_hw", axis=1)
        r = body.node("Sigmoid", [body.node("Add", [a_r, hw_r])], hint="ln_r")
        z = body.node("Sigmoid", [body.node("Add", [a_z, hw_z])], hint="ln_z")
        n = body.node("Tanh", [body.node("Add", [a_n, body.node("Mul", [r, hw_n])])])
        one = graph.constant("ln_one", np.array(1.0, np.float32))
        keep = body.node("Mul", [body.node("Sub", [one, z]), n])
        return [body.node("Add", [keep, body.node("Mul", [z, h])], hint="ln_h")]
    z = body.node("Add", [a, hw], hint="ln_z")
    z_i, z_f, z_g, z_o = body.node("Split", [z, split], outputs=4, hint="ln_gate", axis=1)
    i, f, o = (body.node("Sigmoid", [gate]) for gate in (z_i, z_f, z_o))
    g = body.node("Tanh", [z_g])
    c = body.node("Add", [body.node("Mul", [f, state[1]]), body.node("Mul", [i, g])], hint="ln_c")
    gain = graph.constant("ln_cell_gain", weights["ln_cell_gain"])
    shift = graph.constant("ln_cell_shift", weights["ln_cell_shift"])
    c_ln = _layer_norm(body, c, gain, shift, "ln_c_norm")
    return [body.node("Mul", [o, body.node("Tanh", [c_ln])], hint="ln_h"), c]


def _scan_direction(graph, layer, index, direction, x, lengths, valid, start, hint):
    """One direction of one layer-normalised layer as a Scan: (y (T, B, H), [final parts
    (1, B, H)]), y zero past each length and the reverse direction run within each length."""
    weights = layer._weights(index, direction)
    cell = layer.cell.name
    if direction == 1:
        x = graph.node("ReverseSequence", [x, lengths], hint=f"{hint}_x", batch_axis=1, time_axis=0)
    product = graph.node("MatMul", [x, graph.constant(f"{hint}_wih_t", weights["weight_ih"].T)])
    gain = graph.constant(f"{hint}_ln_ih_gain", weights["ln_ih_gain"])
    shift = graph.constant(f"{hint}_ln_ih_shift", weights["ln_ih_shift"])
    a = _layer_norm(graph, product, gain, shift, f"{hint}_a")
    if "bias_ih" in weights:  # bias_hh: added to the hidden side in the step
        a = graph.node("Add", [a, graph.constant(f"{hint}_bias_ih", weights["bias_ih"])])
    body = graph.subgraph(f"{hint}_step")
    hidden = layer.hidden_size
    previous = [body.input(f"{hint}_{part}_prev", np.float32, ["batch", hidden]) for part in
                layer.cell.state]  # fmt: skip
    a_t = body.input(
        f"{hint}_a_t",
        np.float32,
        ["batch", 4 * hidden if cell == "layer_norm_lstm" else 3 * hidden],
    )
    valid_t = body.input(f"{hint}_valid_t", np.bool_, ["batch", 1])
    new = _scan_cell_step(body, graph, cell, weights, a_t, previous)
    zero = graph.constant(f"{hint}_zero", np.array(0.0, np.float32))
    for part, (value, old) in enumerate(zip(new, previous, strict=True)):
        kept = body.node("Where", [valid_t, value, old], hint=f"{hint}_{part}_next")
        body.output(kept, f"{hint}_{part}_out", np.float32, ["batch", hidden])
    y_t = body.node("Where", [valid_t, new[0], zero], hint=f"{hint}_y_t")
    body.output(y_t, f"{hint}_y_out", np.float32, ["batch", hidden])
    outputs = graph.node(
        "Scan",
        [*start, a, valid],
        outputs=len(previous) + 1,
        hint=hint,
        body=body.proto(),
        num_scan_inputs=2,
    )
    y = outputs[-1]
    if direction == 1:
        y = graph.node("ReverseSequence", [y, lengths], hint=f"{hint}_y", batch_axis=1, time_axis=0)
    first = _constant_int64(graph, f"{hint}_axis0", [0])
    return y, [graph.node("Unsqueeze", [part, first]) for part in outputs[:-1]]


def _scan_recurrent(graph: Graph, layer: Recurrent, x: str, lengths, state, hint: str):
    """``recurrent`` for the layer-normalised cells: Scans (see ``_scan_direction``)."""
    shape = graph.node("Shape", [x], hint=f"{hint}_shape")
    steps = graph.node("Gather", [shape, graph.constant(f"{hint}_t", np.array(0, np.int64))])
    batch = graph.node("Slice", [shape, *(_constant_int64(graph, hint, [k]) for k in (1, 2))])
    if lengths is None:
        lengths = graph.node("Expand", [steps, batch], hint=f"{hint}_lengths")
    else:
        lengths = graph.node("Cast", [lengths], hint=f"{hint}_lengths", to=7)  # int64
    zero, one = (graph.constant(f"{hint}_k", np.array(k, np.int64)) for k in (0, 1))
    times = graph.node("Range", [zero, steps, one], hint=f"{hint}_times")  # (T,)
    times = graph.node("Unsqueeze", [times, _constant_int64(graph, hint, [1])])  # (T, 1)
    valid = graph.node("Less", [times, lengths], hint=f"{hint}_valid")  # (T, B)
    valid = graph.node("Unsqueeze", [valid, _constant_int64(graph, hint, [2])])  # (T, B, 1)
    width = _constant_int64(graph, f"{hint}_width", [layer.hidden_size])
    zeros = graph.node(
        "ConstantOfShape",
        [graph.node("Concat", [batch, width], axis=0)],
        hint=f"{hint}_zeros",
        value=onnx.helper.make_tensor("zero", onnx.TensorProto.FLOAT, [1], [0.0]),
    )
    first = _constant_int64(graph, f"{hint}_axis0", [0])
    finals: list[list[str]] = [[] for _ in layer.cell.state]
    layer_input = x
    for index in range(layer.num_layers):
        outputs = []
        for direction in range(layer.directions):
            name = f"{hint}_l{index}" + ("_reverse" if direction else "")
            row = index * layer.directions + direction
            start = [zeros] * len(finals)
            if state is not None:
                begin, end = (_constant_int64(graph, name, [k]) for k in (row, row + 1))
                start = [
                    graph.node("Squeeze", [graph.node("Slice", [part, begin, end, first]), first])
                    for part in state
                ]
            y, final = _scan_direction(
                graph, layer, index, direction, layer_input, lengths, valid, start, name
            )
            outputs.append(y)
            for part, value in zip(finals, final, strict=True):
                part.append(value)
        if len(outputs) == 1:
            layer_input = outputs[0]
        elif layer.merge == "sum":
            layer_input = graph.node("Add", outputs, hint=f"{hint}_l{index}_y")
        else:
            layer_input = graph.node("Concat", outputs, hint=f"{hint}_l{index}_y", axis=2)
    return layer_input, [graph.node("Concat", part, axis=0) for part in finals]
