"""A ``LanguageModel`` as two ONNX graphs: the window graph and the step graph.

The window graph ("" suffix) reads token ids ``tokens`` (T, B) int64, time first as the model
does, and returns ``logits`` (T, B, V) and the final state. The step graph (".step") reads one
token per sequence, ``token`` (B,) int64, and the state, and returns ``logits`` (B, V) and the
new state: text is generated outside Python by feeding each drawn token back with the state.

Both carry, beside "rnnkit_class" and "rnnkit_config", what a consumer needs to turn ids into
text when the model's vocabulary is given (``extra``, the saved extra of a model file written by
``rnnkit train lm``): "vocabulary" (JSON list, index = id), "level" ("char" or "word"), "unk"
(the token an unknown word becomes, word level), "join" (how tokens make text) and "prime" (a
token to start generation from: a newline where the vocabulary has one).
"""

from __future__ import annotations

import numpy as np

from rnnkit.data.vocabulary import _CLOSING, UNK, Vocabulary
from rnnkit.errors import UserError
from rnnkit.export._graph import Graph, metadata
from rnnkit.export.recurrent import recurrent
from rnnkit.models.language_model import LanguageModel, TiedOutput

JOIN = {
    "char": "concatenate the tokens",
    "word": f"tokens joined by one space, none around a newline or before any of {_CLOSING}",
}


def _text_metadata(model: LanguageModel, extra) -> dict:
    """The vocabulary's metadata from a model file's ``extra``; {} without a vocabulary."""
    if extra is None or (isinstance(extra, dict) and "vocabulary" not in extra):
        return {}
    if not isinstance(extra, dict):
        raise UserError(f"export_onnx: extra must be a dict (a model file's extra), got {extra!r}")
    vocabulary = Vocabulary.from_json(extra["vocabulary"], "export_onnx: extra['vocabulary']")
    if len(vocabulary) != model.vocab_size:
        raise UserError(
            f"export_onnx: the vocabulary has {len(vocabulary)} tokens but the model predicts "
            f"{model.vocab_size}; give the vocabulary the model was trained with"
        )
    prime = "\n" if "\n" in vocabulary.ids else vocabulary.tokens[0]
    text = {
        "vocabulary": vocabulary.tokens,
        "level": vocabulary.level,
        "join": JOIN[vocabulary.level],
    }
    return {**text, "unk": UNK if vocabulary.level == "word" else "", "prime": prime}


def _logits(graph: Graph, model: LanguageModel, hidden: str, matrix: str) -> str:
    """The output layer on ``hidden`` (..., H): logits (..., V); ``matrix`` is the embedding
    matrix's name (V, E), the weight of a tied output layer."""
    if isinstance(model.head, TiedOutput):
        weight = graph.node("Transpose", [matrix], hint="head_weight", perm=[1, 0])
    else:
        weight = graph.constant("head_weight", model.head.params["weight"].T)  # (H, V)
    product = graph.node("MatMul", [hidden, weight], hint="head_product")
    if "bias" not in model.head.params:
        return product
    return graph.node("Add", [product, graph.constant("head_bias", model.head.params["bias"])])


def _body(graph: Graph, model: LanguageModel, tokens: str, lengths, state) -> tuple:
    """Embedding, recurrent stack and output layer on ``tokens`` (T, B) int64: the logits
    (T, B, V) and the final state."""
    matrix = graph.constant("embedding", model.embedding.params["weight"])  # (V, E)
    vectors = graph.node("Gather", [matrix, tokens], hint="embedded", axis=0)  # (T, B, E)
    hidden, final = recurrent(graph, model.rnn, vectors, lengths, state)
    return _logits(graph, model, hidden, matrix), (final,) if isinstance(final, str) else final


def _state_names(model: LanguageModel) -> tuple[list[str], list[str], list]:
    """The state's input names ("h0", "c0"), output names ("h_n", "c_n") and shape."""
    parts = len(model.rnn.cell.state)
    shape = [model.rnn.num_layers * model.rnn.directions, "batch", model.hidden_size]
    return ["h0", "c0"][:parts], ["h_n", "c_n"][:parts], shape


def _window(model: LanguageModel, text: dict, lengths: bool, state: bool):
    graph = Graph("LanguageModel")
    tokens = graph.input("tokens", np.int64, ["time", "batch"])
    sequence_lengths = graph.input("lengths", np.int32, ["batch"]) if lengths else None
    inputs, outputs, shape = _state_names(model)
    state0 = [graph.input(name, np.float32, shape) for name in inputs] if state else None
    logits, final = _body(graph, model, tokens, sequence_lengths, state0)
    graph.output(logits, "logits", np.float32, ["time", "batch", model.vocab_size])
    for value, name in zip(final, outputs, strict=True):
        graph.output(value, name, np.float32, shape)
    return graph.model(metadata(model, **text))


def _step(model: LanguageModel, text: dict):
    graph = Graph("LanguageModelStep")
    token = graph.input("token", np.int64, ["batch"])
    axis = graph.constant("time_axis", np.array([0], np.int64))
    tokens = graph.node("Unsqueeze", [token, axis], hint="tokens")  # (1, B)
    inputs, outputs, shape = _state_names(model)
    state0 = [graph.input(name, np.float32, shape) for name in inputs]
    logits, final = _body(graph, model, tokens, None, state0)
    logits = graph.node("Squeeze", [logits, axis], hint="step_logits")  # (B, V)
    graph.output(logits, "logits", np.float32, ["batch", model.vocab_size])
    for value, name in zip(final, outputs, strict=True):
        graph.output(value, name, np.float32, shape)
    return graph.model(metadata(model, **text))


def build(
    model: LanguageModel, *, extra: dict | None = None, lengths: bool = False, state: bool = False
) -> list:
    """The window graph ("") and the step graph (".step") of ``model``.

    ``extra``: the saved extra of the model's file (``{"vocabulary": vocabulary.to_json()}`` as
    ``rnnkit train lm`` writes it), whose vocabulary goes into the metadata; None: none.
    ``lengths=True``: the window graph takes ``lengths`` (B,) int32 in [1, T] (logits past a
    length are the output layer's bias, as rnnkit's layers give zeros there); ``state=True``: it
    takes the initial state ``h0`` (L, B, H) (and ``c0`` for an LSTM). The step graph always
    takes and returns the state.
    """
    for option, value in (("lengths", lengths), ("state", state)):
        if not isinstance(value, bool):
            raise UserError(f"export_onnx: {option}={value!r} is not True or False")
    text = _text_metadata(model, extra)
    return [("", _window(model, text, lengths, state)), (".step", _step(model, text))]
