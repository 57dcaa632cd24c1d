"""``Graph``: one ONNX graph built node by node with ONNX's own helpers (``onnx.helper``).

OPSET is 17, on purpose: it has every operator the exporters use (RNN, LSTM and GRU since 7 with
``layout`` since 14, ReduceSum/Squeeze/Unsqueeze with axes as inputs since 13) and
LayerNormalization, new in 17, for layer-normalised cells; ONNX Runtime runs it from 1.14 on, so
old runtimes on phones and servers load the files. The IR version is 8, the one opset 17 came
with, for the same reason (ONNX's helper would write its newest, which older runtimes refuse).
"""

from __future__ import annotations

import json
import re

import numpy as np
import onnx
from onnx import helper, numpy_helper

OPSET = 17
IR_VERSION = 8


def _onnx_type(dtype) -> int:
    """The ONNX element type (``onnx.TensorProto.FLOAT`` ...) of a NumPy dtype."""
    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


class Graph:
    """One ONNX graph being built: initializers, nodes, inputs and outputs, each value under a
    unique name."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self._taken: set[str] = set()

    def _unique(self, hint: str) -> str:
        """``hint`` (made a plain identifier), or with _2, _3 ... appended when taken."""
        base = re.sub(r"[^0-9A-Za-z_.]", "_", hint) or "value"
        name, count = base, 1
        while name in self._taken:
            count += 1
            name = f"{base}_{count}"
        self._taken.add(name)
        return name

    def constant(self, hint: str, array) -> str:
        """An initializer holding ``array`` (floats as float32, integers as given); its name."""
        array = np.asarray(array)
        if np.issubdtype(array.dtype, np.floating):
            array = array.astype(np.float32)
        name = self._unique(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(array, order="C"), name))
        return name

    def node(
        self, op_type: str, inputs: list[str], *, outputs: int = 1, hint: str = "", **attributes
    ) -> str | list[str]:
        """Add an ``op_type`` node reading ``inputs`` ("" for an omitted optional input); the
        name of its output, or the list of names when ``outputs`` > 1."""
        base = hint or op_type.lower()
        names = [self._unique(base if outputs == 1 else f"{base}_{i}") for i in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, names, name=names[0], **attributes))
        return names[0] if outputs == 1 else names

    def input(self, name: str, dtype, shape: list[int | str]) -> str:
        """Declare a graph input (symbolic dimensions as strings: "time", "batch"); its name."""
        if name in self._taken:
            raise ValueError(f"graph {self.name}: the input name {name!r} is taken")
        self._taken.add(name)
        self.inputs.append(helper.make_tensor_value_info(name, _onnx_type(dtype), shape))
        return name

    def output(self, value: str, name: str, dtype, shape: list[int | str]) -> None:
        """Declare ``value`` a graph output called ``name`` (through an Identity if it differs)."""
        if value != name:
            if name in self._taken:
                raise ValueError(f"graph {self.name}: the output name {name!r} is taken")
            self._taken.add(name)
            self.nodes.append(helper.make_node("Identity", [value], [name], name=name))
        self.outputs.append(helper.make_tensor_value_info(name, _onnx_type(dtype), shape))

    def subgraph(self, name: str) -> Graph:
        """An empty graph for a Scan's or Loop's body, sharing this graph's names (a body may
        read this graph's values by name, and must not reuse one)."""
        body = Graph(name)
        body._taken = self._taken
        return body

    def proto(self) -> onnx.GraphProto:
        """The graph as ONNX's GraphProto (a subgraph's, for an attribute)."""
        return helper.make_graph(
            self.nodes, self.name, self.inputs, self.outputs, self.initializers
        )

    def model(self, metadata: dict[str, str]) -> onnx.ModelProto:
        """The model at OPSET with ``metadata`` as its metadata_props, checked in full."""
        import rnnkit

        model = helper.make_model(
            self.proto(),
            opset_imports=[helper.make_opsetid("", OPSET)],
            producer_name="rnnkit",
            producer_version=rnnkit.__version__,
            ir_version=IR_VERSION,
        )
        helper.set_model_props(model, {key: str(value) for key, value in metadata.items()})
        onnx.checker.check_model(model, full_check=True)
        return model


def metadata(model, **extra) -> dict[str, str]:
    """The metadata every exported graph carries: "rnnkit_class", "rnnkit_config" (JSON of
    ``model.config()``), and ``extra`` (structures as JSON, strings as they are)."""
    properties = {
        "rnnkit_class": type(model).__name__,
        "rnnkit_config": json.dumps(model.config(), sort_keys=True),
    }
    for key, value in extra.items():
        properties[key] = value if isinstance(value, str) else json.dumps(value)
    return properties
