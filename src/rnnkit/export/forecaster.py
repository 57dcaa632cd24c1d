"""A Forecaster or ForecastEnsemble as one ONNX graph: windows in, the next ``horizon`` values out.

Input: ``windows`` (T, B, input_size) float32, time first, all of equal length T. Output:
``forecast`` (B, horizon); an ensemble's is its members' mean, computed inside the graph.

Scaling: given the ``extra`` saved with the model (``rnnkit train forecast`` writes it), the graph
takes the raw values of the saved input columns (metadata "columns": the target first, then the
features and calendar inputs) and returns the target in its own units (°C for the packaged
weather): the standardisation and its inverse are inside the graph, and the metadata "scaling"
says so beside the means and standard deviations. Without ``extra`` the graph works in the
model's own (standardised) units, and "scaling" says that.
"""

from __future__ import annotations

import numpy as np

from rnnkit.export._graph import Graph, metadata
from rnnkit.export.classifier import linear, standardised
from rnnkit.export.recurrent import recurrent
from rnnkit.models.forecaster import ForecastEnsemble, Forecaster


def _forecast(graph: Graph, model: Forecaster, windows: str, hint: str) -> str:
    """(B, horizon): ``model(windows)``, the head on the top layer's final hidden state."""
    _, final = recurrent(graph, model.encoder.rnn, windows, hint=f"{hint}_rnn")
    h = final if isinstance(final, str) else final[0]  # (L, B, H)
    top = graph.constant(f"{hint}_top", np.array(model.encoder.rnn.num_layers - 1))
    return linear(graph, model.head, graph.node("Gather", [h, top], hint=f"{hint}_top_h"), hint)


def build(model: Forecaster | ForecastEnsemble, *, extra=None) -> list:
    """The forecaster as one graph (see the module's docstring). ``extra``: the JSON saved with
    the model (``rnnkit.io.models.load_with_extra``), for its columns and scaling."""
    from rnnkit.tasks.forecasting import saved_forecaster

    config = model.config()
    graph = Graph(type(model).__name__)
    windows = graph.input("windows", np.float32, ["time", "batch", config["input_size"]])
    properties = {"scaling": "none: windows go in and forecasts come out standardised"}
    if extra is not None:
        saved = saved_forecaster(model, extra)
        windows = standardised(graph, windows, saved.scaling, "scaled")
        properties["columns"] = saved.columns
        properties["target"] = saved.layout.target
        properties["scaling"] = {
            "applied": "inside the graph: feed raw values, get the target in its units",
            **saved.scaling.to_json(),
        }
    members = model.members if isinstance(model, ForecastEnsemble) else [model]
    forecasts = [
        _forecast(graph, member, windows, f"member{index}") for index, member in enumerate(members)
    ]
    forecast = graph.node("Mean", forecasts, hint="mean") if len(forecasts) > 1 else forecasts[0]
    if extra is not None:
        std = graph.constant("target_std", saved.scaling.std[:1])
        mean = graph.constant("target_mean", saved.scaling.mean[:1])
        forecast = graph.node("Add", [graph.node("Mul", [forecast, std]), mean], hint="forecast")
    graph.output(forecast, "forecast", np.float32, ["batch", config["horizon"]])
    return [("", graph.model(metadata(model, **properties)))]
