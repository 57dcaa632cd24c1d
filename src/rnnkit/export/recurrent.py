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
"""

from __future__ import annotations

import numpy as np

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
    if name not in OPERATORS:
        raise UserError(
            f"cannot export a {layer._name} with the {name!r} cell to ONNX: it has no standard "
            f"ONNX operator; exportable cells: {', '.join(OPERATORS)}"
        )
    if layer.cell_options.get("proj_size", 0):
        raise UserError(
            f"cannot export an LSTM with proj_size={layer.cell_options['proj_size']} to ONNX: "
            "ONNX's LSTM has no projection; export an LSTM with proj_size=0"
        )
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
