"""A SequenceClassifier as one ONNX graph: inputs, recurrent stack, pooling over the valid steps,
output layer, probabilities.

Inputs: ``tokens`` (T, B) int64 for a text classifier, or ``features`` (T, B, input_size) float32
for a numeric one, and ``lengths`` (B,) int32 in [1, T]. Outputs: ``logits`` (B, num_classes) and
``probabilities`` (their Softmax). Given the ``extra`` saved with the model (``rnnkit train
classify`` writes it), the metadata carries the class names and, for texts, the vocabulary and its
tokenizer level; for numbers the graph takes raw features and standardises them inside, as
``rnnkit predict`` does.
"""

from __future__ import annotations

import numpy as np

from rnnkit.export._graph import Graph, metadata
from rnnkit.export.recurrent import recurrent
from rnnkit.models.classifier import SequenceClassifier
from rnnkit.models.encoder import SequenceEncoder
from rnnkit.nn.linear import Linear

NEGATIVE_INFINITY = np.array(-np.inf, dtype=np.float32)


def linear(graph: Graph, layer: Linear, x: str, hint: str) -> str:
    """``layer(x)`` for ``x`` (..., in_features): (..., out_features)."""
    weight = graph.constant(f"{hint}_weight", layer.params["weight"].T)  # (in, out)
    y = graph.node("MatMul", [x, weight], hint=hint)
    if layer.bias:
        y = graph.node("Add", [y, graph.constant(f"{hint}_bias", layer.params["bias"])], hint=hint)
    return y


def standardised(graph: Graph, x: str, scaling, hint: str) -> str:
    """``(x - mean) / std`` for ``x`` (..., F), with a ``rnnkit.data.scaling.Standardizer``."""
    centred = graph.node("Sub", [x, graph.constant(f"{hint}_mean", scaling.mean)], hint=hint)
    return graph.node("Div", [centred, graph.constant(f"{hint}_std", scaling.std)], hint=hint)


def valid_steps(graph: Graph, output: str, lengths: str) -> str:
    """(T, B, 1) bool: True at the steps of ``output`` (T, B, F) within each sequence's
    ``lengths`` (B,) int32, as ``rnnkit.models.pooling.valid_steps``."""
    shape = graph.node("Shape", [output], hint="output_shape")
    steps = graph.node("Gather", [shape, graph.constant("time_axis", np.array(0))], hint="steps")
    steps = graph.node("Cast", [steps], hint="steps_int32", to=6)  # int32, as lengths
    step = graph.node(
        "Range",
        [graph.constant("zero", np.array(0, np.int32)), steps,
         graph.constant("one", np.array(1, np.int32))],
        hint="step",
    )  # fmt: skip
    step = graph.node("Unsqueeze", [step, graph.constant("axis_1", np.array([1]))], hint="step")
    valid = graph.node("Less", [step, lengths], hint="valid")  # (T, 1) < (B,) -> (T, B)
    return graph.node("Unsqueeze", [valid, graph.constant("axis_2", np.array([2]))], hint="valid")


def encoder_inputs(graph: Graph, encoder: SequenceEncoder) -> tuple[str, str]:
    """The graph inputs ``tokens`` (T, B) int64 through the embedding, or ``features``
    (T, B, input_size) float32, and ``lengths`` (B,) int32: (the recurrent stack's input
    (T, B, I), lengths)."""
    lengths = graph.input("lengths", np.int32, ["batch"])
    if encoder.embedding is None:
        features = graph.input("features", np.float32, ["time", "batch", encoder.rnn.input_size])
        return features, lengths
    tokens = graph.input("tokens", np.int64, ["time", "batch"])
    weight = graph.constant("embedding", encoder.embedding.params["weight"])
    return graph.node("Gather", [weight, tokens], hint="embedded"), lengths  # (T, B, E)


def pooled(graph: Graph, model: SequenceClassifier, output: str, final, lengths: str) -> str:
    """(B, F): ``rnnkit.models.pooling.pool`` of ``output`` (T, B, F, zero past each length) and
    the stack's final state ``final`` (h, or (h, c) for an LSTM) in model.pooling's mode."""
    if model.pooling == "last":
        h = final if isinstance(final, str) else final[0]  # (L*D, B, H)
        rnn = model.encoder.rnn
        top = graph.node(
            "Slice",
            [h, graph.constant("top_start", np.array([-rnn.directions])),
             graph.constant("top_end", np.array([rnn.num_layers * rnn.directions]))],
            hint="top_h",
        )  # fmt: skip
        batch_first = graph.node("Transpose", [top], hint="top_h_batch_first", perm=[1, 0, 2])
        flat = graph.constant("flat_shape", np.array([0, -1]))
        return graph.node("Reshape", [batch_first, flat], hint="pooled")  # (B, D*H)
    if model.pooling == "mean":
        total = graph.node("ReduceSum", [output, graph.constant("axis_0", np.array([0]))],
                           hint="sum", keepdims=0)  # fmt: skip
        counts = graph.node("Cast", [lengths], hint="counts", to=1)  # float32
        counts = graph.node("Unsqueeze", [counts, graph.constant("axis_1", np.array([1]))],
                            hint="counts")  # fmt: skip
        return graph.node("Div", [total, counts], hint="pooled")
    masked = graph.node(
        "Where",
        [valid_steps(graph, output, lengths), output,
         graph.constant("negative_infinity", NEGATIVE_INFINITY)],
        hint="masked",
    )  # fmt: skip  # padding never wins
    return graph.node("ReduceMax", [masked], hint="pooled", axes=[0], keepdims=0)


def build(model: SequenceClassifier, *, extra=None) -> list:
    """The classifier as one graph (see the module's docstring).

    ``extra``: the JSON saved with the model (``rnnkit.io.models.load_with_extra``), for its
    classes, vocabulary or scaling; None: classes are named "0", "1", ... and numeric features go
    in already standardised."""
    from rnnkit.tasks.classification import saved_classifier

    saved = None if extra is None else saved_classifier(model, extra)
    graph = Graph("SequenceClassifier")
    x, lengths = encoder_inputs(graph, model.encoder)
    properties = {"inputs": "tokens or features (time, batch, ...), lengths (batch,) int32"}
    if model.encoder.embedding is not None and saved is not None:
        vocabulary = saved.preprocessing.vocabulary
        properties.update(vocabulary=vocabulary.tokens, tokenizer_level=vocabulary.level)
    if model.encoder.embedding is None:
        properties["scaling"] = "none: features go in standardised, as the model takes them"
        if saved is not None:
            scaling = saved.preprocessing.scaling
            x = standardised(graph, x, scaling, "scaled")
            properties["scaling"] = {
                "applied": "inside the graph: feed raw features",
                **scaling.to_json(),
            }
    output, final = recurrent(graph, model.encoder.rnn, x, lengths)
    logits = linear(graph, model.head, pooled(graph, model, output, final, lengths), "head")
    probabilities = graph.node("Softmax", [logits], hint="softmax", axis=-1)
    classes = [str(index) for index in range(model.num_classes)]
    graph.output(logits, "logits", np.float32, ["batch", model.num_classes])
    graph.output(probabilities, "probabilities", np.float32, ["batch", model.num_classes])
    properties["classes"] = classes if saved is None else saved.classes
    return [("", graph.model(metadata(model, **properties)))]
