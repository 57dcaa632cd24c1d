"""ONNX export of ``rnnkit.models.seq2seq.Seq2Seq``: an encoder graph and a decoder-step graph.

The main graph ("", ``out.onnx``) is the encoder; the decoder step is ".decoder"
(``out.decoder.onnx``). A consumer runs the encoder once, then the decoder once per output
token, feeding each step's ``next_*`` outputs back as the next step's inputs. The encoder's
outputs are named as the decoder's inputs, so its result feeds the first step as it is.

Encoder (S source steps, B sequences, H hidden, K = H * directions, A = H):

    inputs   source (S, B) int64 ids, source_lengths (B,) int32 (every one in [1, S])
    outputs  keys (S, B, K) (zero past each length), projected (S, B, A) (bahdanau only),
             state_h (B, H), state_c (B, H) (LSTM only, zeros), feed (B, H) (with attention, zeros)

Decoder step:

    inputs   token (B,) int64 (the previous output; start_id first), state_h, state_c, feed,
             keys, projected, source_lengths (those the model's kind has)
    outputs  logits (B, V), next_state_h, next_state_c, next_feed, weights (B, S) (attention
             weights, exactly zero past each source's length)

The encoder is ONNX's RNN/LSTM/GRU operators (``recurrent``); the decoder's cell step and the
attention are basic operators (MatMul, Sigmoid, Tanh, Softmax over the valid source steps), the
equations of ``rnnkit.models.seq2seq`` and ``rnnkit.nn.attention`` term for term. Greedy decoding
is the argmax of the logits; stop at ``end_id``.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from rnnkit.errors import UserError
from rnnkit.export._graph import Graph, metadata
from rnnkit.export.recurrent import recurrent
from rnnkit.models.seq2seq import Seq2Seq

STEP_CELLS = ("rnn", "lstm", "gru", "gru_reset_before")  # decoder cells written from basic ops


def build(model: Seq2Seq, *, extra: dict | None = None) -> list[tuple[str, onnx.ModelProto]]:
    """``[("", encoder), (".decoder", decoder step)]``, both carrying the model's metadata and,
    given ``extra`` (a model file's, from ``rnnkit train seq2seq``), its token tables."""
    cell = model.decoder.cell.name
    if cell not in STEP_CELLS:
        raise UserError(
            f"cannot export a Seq2Seq with the {cell!r} cell to ONNX; exportable cells: "
            f"{', '.join(STEP_CELLS)}"
        )
    properties = metadata(model, **_consumer_facts(model, extra))
    return [
        ("", _encoder(model).model(properties)),
        (".decoder", _decoder(model).model(properties)),
    ]


def _consumer_facts(model: Seq2Seq, extra) -> dict:
    """What a consumer needs besides the graphs: start/end ids, the attention kind, how to feed
    the decoder, and the token tables when ``extra`` (from ``rnnkit train seq2seq``) has them."""
    facts = {
        "start_id": str(model.start_id),
        "end_id": str(model.end_id),
        "attention": model.attention_kind,
        "decoder_state": _state_names(model),
        "graphs": "out.onnx: the encoder; out.decoder.onnx: one decoder step",
    }
    if isinstance(extra, dict):
        for name in ("source_tokens", "target_tokens"):
            if isinstance(extra.get(name), list):
                facts[name] = extra[name]
    return facts


def _state_names(model: Seq2Seq) -> list[str]:
    """The decoder's carried values, as named in both graphs (``next_`` + name on the way out)."""
    names = ["state_h", "state_c"] if model.state_parts == 2 else ["state_h"]
    return names + ([] if model.attention is None else ["feed"])


def _memory_names(model: Seq2Seq) -> list[str]:
    """The encoder's memory the decoder reads every step."""
    if model.attention is None:
        return []
    projected = ["projected"] if model.attention.kind == "bahdanau" else []
    return ["keys", *projected, "source_lengths"]


# ---------------------------------------------------------------------- encoder


def _encoder(model: Seq2Seq) -> Graph:
    graph = Graph("seq2seq_encoder")
    H = model.hidden_size
    directions = 2 if model.bidirectional else 1
    K = H * directions
    source = graph.input("source", np.int64, ["source_steps", "batch"])
    lengths = graph.input("source_lengths", np.int32, ["batch"])
    table = graph.constant("source_embedding", model.source_embedding.params["weight"])
    vectors = graph.node("Gather", [table, source], hint="source_vectors")  # (S, B, E)
    keys, final = recurrent(graph, model.encoder, vectors, lengths, hint="encoder")
    final_h = final[0] if isinstance(final, tuple) else final  # (L*D, B, H)
    start = graph.constant("last_layer", np.array([-directions], np.int64))
    end = graph.constant("layers_end", np.array([np.iinfo(np.int64).max], np.int64))
    last = graph.node("Slice", [final_h, start, end], hint="last_layer_h")  # (D, B, H)
    last = graph.node("Transpose", [last], perm=[1, 0, 2])  # (B, D, H)
    summary_shape = graph.constant("summary_shape", np.array([0, K], np.int64))
    summary = graph.node("Reshape", [last, summary_shape], hint="summary")  # (B, D*H)
    h0 = graph.node("Tanh", [_linear(graph, model.bridge, summary, "bridge")], hint="h0")
    zeros = graph.node(
        "ConstantOfShape",
        [graph.node("Shape", [h0])],
        value=_float_tensor(0.0),
        hint="zeros",
    )
    values = {"state_h": h0, "state_c": zeros, "feed": zeros}
    graph.output(keys, "keys", np.float32, ["source_steps", "batch", K])
    if model.attention is not None and model.attention.kind == "bahdanau":
        attention = model.attention
        projection = _matmul_transposed(graph, keys, attention.params["weight_key"], "key")
        bias = graph.constant("key_bias", attention.params["bias"])
        projected = graph.node("Add", [projection, bias], hint="projected_keys")
        graph.output(
            projected, "projected", np.float32, ["source_steps", "batch", attention.attention_size]
        )
    for name in _state_names(model):
        graph.output(values[name], name, np.float32, ["batch", H])
    return graph


# ---------------------------------------------------------------------- decoder step


def _decoder(model: Seq2Seq) -> Graph:
    graph = Graph("seq2seq_decoder_step")
    H = model.hidden_size
    K = H * (2 if model.bidirectional else 1)
    token = graph.input("token", np.int64, ["batch"])
    state = {name: graph.input(name, np.float32, ["batch", H]) for name in _state_names(model)}
    memory = {}
    if model.attention is not None:
        memory["keys"] = graph.input("keys", np.float32, ["source_steps", "batch", K])
        if model.attention.kind == "bahdanau":
            A = model.attention.attention_size
            memory["projected"] = graph.input("projected", np.float32, ["source_steps", "batch", A])
        memory["lengths"] = graph.input("source_lengths", np.int32, ["batch"])
    table = graph.constant("target_embedding", model.target_embedding.params["weight"])
    x = graph.node("Gather", [table, token], hint="target_vector")  # (B, E)
    if model.attention is not None:
        x = graph.node("Concat", [x, state["feed"]], axis=1, hint="decoder_input")  # (B, E+H)
    h, c = _cell_step(graph, model.decoder, x, state["state_h"], state.get("state_c"))
    outputs = {"next_state_h": h, "next_state_c": c}
    attentional = h
    if model.attention is not None:
        context, weights = _attend(graph, model.attention, h, memory)
        joined = graph.node("Concat", [h, context], axis=1, hint="h_and_context")  # (B, H+K)
        attentional = graph.node(
            "Tanh", [_linear(graph, model.combine, joined, "combine")], hint="attentional"
        )
        outputs["next_feed"] = attentional
    logits = _linear(graph, model.output, attentional, "output")
    graph.output(logits, "logits", np.float32, ["batch", model.target_vocab])
    for name in _state_names(model):
        graph.output(outputs[f"next_{name}"], f"next_{name}", np.float32, ["batch", H])
    if model.attention is not None:
        graph.output(weights, "weights", np.float32, ["batch", "source_steps"])
    return graph


def _cell_step(graph: Graph, cell, x: str, h: str, c: str | None) -> tuple[str, str | None]:
    """One step of the decoder cell (``rnnkit.cells``' equations): ``(h, c or None)``."""
    params, H = cell.params, cell.hidden_size
    name = cell.cell.name

    def block(role: str, index: int, count: int) -> np.ndarray:
        """Gate ``index`` of ``count``: rows index*H to (index+1)*H of the weight or bias."""
        return params[role][index * H : (index + 1) * H] if count > 1 else params[role]

    def gate(index: int, count: int, source: str, role: str) -> str:
        """source @ W_role[block].T (+ b_role[block] when the cell has biases)."""
        product = _matmul_transposed(graph, source, block(role, index, count), f"{role}_{index}")
        bias_role = role.replace("weight", "bias")
        if bias_role not in params:
            return product
        return graph.node(
            "Add", [product, graph.constant(bias_role, block(bias_role, index, count))]
        )

    def add(*values):
        total = values[0]
        for value in values[1:]:
            total = graph.node("Add", [total, value])
        return total

    if name == "rnn":
        pre = add(gate(0, 1, x, "weight_ih"), gate(0, 1, h, "weight_hh"))
        kind = "Tanh" if cell.cell_options["nonlinearity"] == "tanh" else "Relu"
        return graph.node(kind, [pre], hint="h_next"), None
    if name == "lstm":
        i, f, g, o = (add(gate(k, 4, x, "weight_ih"), gate(k, 4, h, "weight_hh")) for k in range(4))
        i, f, o = (graph.node("Sigmoid", [v]) for v in (i, f, o))
        g = graph.node("Tanh", [g])
        c_next = graph.node(
            "Add", [graph.node("Mul", [f, c]), graph.node("Mul", [i, g])], hint="c_next"
        )
        return graph.node("Mul", [o, graph.node("Tanh", [c_next])], hint="h_next"), c_next
    r = graph.node("Sigmoid", [add(gate(0, 3, x, "weight_ih"), gate(0, 3, h, "weight_hh"))])
    z = graph.node("Sigmoid", [add(gate(1, 3, x, "weight_ih"), gate(1, 3, h, "weight_hh"))])
    if name == "gru":  # n = tanh(a_n + r * (h W_hn.T + b_hn))
        n_pre = add(gate(2, 3, x, "weight_ih"), graph.node("Mul", [r, gate(2, 3, h, "weight_hh")]))
    else:  # gru_reset_before: n = tanh(a_n + (r * h) W_hn.T), b_hn added to a_n
        rh = graph.node("Mul", [r, h])
        n_pre = add(gate(2, 3, x, "weight_ih"), gate(2, 3, rh, "weight_hh"))
    n = graph.node("Tanh", [n_pre])
    # h = (1 - z) * n + z * h_prev
    one = graph.constant("one", np.array(1.0, np.float32))
    keep = graph.node("Mul", [graph.node("Sub", [one, z]), n])
    return graph.node("Add", [keep, graph.node("Mul", [z, h])], hint="h_next"), None


def _attend(graph: Graph, attention, query: str, memory: dict) -> tuple[str, str]:
    """``(context (B, K), weights (B, S))`` of ``rnnkit.nn.attention.Attention.attend``."""
    keys = memory["keys"]
    if attention.kind == "bahdanau":  # v . tanh(W_q q + W_k k_s + b)
        query_part = _matmul_transposed(graph, query, attention.params["weight_query"], "query")
        axis0 = graph.constant("axis0", np.array([0], np.int64))
        query_part = graph.node("Unsqueeze", [query_part, axis0])  # (1, B, A)
        hidden = graph.node("Tanh", [graph.node("Add", [memory["projected"], query_part])])
        v = graph.constant("v", attention.params["v"])
        scores = graph.node("MatMul", [hidden, v], hint="scores")  # (S, B)
    else:  # q . W k_s ("dot": W = identity)
        probe = query
        if attention.kind == "general":
            weight = graph.constant("attention_weight", attention.params["weight"])
            probe = graph.node("MatMul", [query, weight], hint="probe")  # (B, K)
        axis0 = graph.constant("axis0", np.array([0], np.int64))
        products = graph.node("Mul", [keys, graph.node("Unsqueeze", [probe, axis0])])
        axis2 = graph.constant("axis2", np.array([2], np.int64))
        scores = graph.node("ReduceSum", [products, axis2], keepdims=0, hint="scores")  # (S, B)
    valid = _valid(graph, keys, memory["lengths"])  # (S, B) bool
    minus_inf = graph.constant("minus_inf", np.array(-np.inf, np.float32))
    scores = graph.node("Where", [valid, scores, minus_inf], hint="masked_scores")
    scores = graph.node("Transpose", [scores], perm=[1, 0])  # (B, S)
    weights = graph.node("Softmax", [scores], axis=1, hint="attention_weights")  # (B, S)
    columns = graph.node("Transpose", [weights], perm=[1, 0])  # (S, B)
    axis2 = graph.constant("weight_axis", np.array([2], np.int64))
    weighted = graph.node("Mul", [graph.node("Unsqueeze", [columns, axis2]), keys])  # (S, B, K)
    axis0 = graph.constant("steps_axis", np.array([0], np.int64))
    context = graph.node("ReduceSum", [weighted, axis0], keepdims=0, hint="context")  # (B, K)
    return context, weights


def _valid(graph: Graph, keys: str, lengths: str) -> str:
    """(S, B) bool: True at the source steps s < length."""
    shape = graph.node("Shape", [keys], start=0, end=1)  # [S]
    steps = graph.node("Squeeze", [shape, graph.constant("shape_axis", np.array([0], np.int64))])
    zero, one = (graph.constant(f"step_{v}", np.array(v, np.int64)) for v in (0, 1))
    times = graph.node("Range", [zero, steps, one], hint="source_times")  # (S,)
    times = graph.node("Unsqueeze", [times, graph.constant("column", np.array([1], np.int64))])
    wide = graph.node("Cast", [lengths], to=7)  # int64
    return graph.node("Less", [times, wide], hint="valid")  # (S, 1) < (B,) -> (S, B)


# ---------------------------------------------------------------------- helpers


def _matmul_transposed(graph: Graph, x: str, weight: np.ndarray, hint: str) -> str:
    """x @ weight.T, the weight stored transposed."""
    return graph.node("MatMul", [x, graph.constant(hint, np.asarray(weight).T)], hint=f"{hint}_mm")


def _linear(graph: Graph, layer, x: str, hint: str) -> str:
    """``rnnkit.nn.linear.Linear`` on x (B, in): x @ W.T + b."""
    y = _matmul_transposed(graph, x, layer.params["weight"], f"{hint}_weight")
    if "bias" not in layer.params:
        return y
    return graph.node("Add", [y, graph.constant(f"{hint}_bias", layer.params["bias"])], hint=hint)


def _float_tensor(value: float) -> onnx.TensorProto:
    return helper.make_tensor("value", onnx.TensorProto.FLOAT, [1], [value])
