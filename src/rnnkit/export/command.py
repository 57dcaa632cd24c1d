"""``rnnkit export MODEL --onnx OUT.onnx``: a model file (or run folder) as ONNX graphs."""

from __future__ import annotations

import argparse
from pathlib import Path

from rnnkit._command import Command
from rnnkit.errors import UserError


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("model", help="a model.safetensors, or a run folder of 'rnnkit train'")
    add("--onnx", metavar="OUT.onnx", required=True,
        help="the file to write (a step graph, if any, beside it: OUT.step.onnx)")  # fmt: skip


def _run(args: argparse.Namespace) -> None:
    from rnnkit.export import _require_onnx, write_graphs
    from rnnkit.models.regressor import SequenceRegressor
    from rnnkit.nn import Recurrent
    from rnnkit.tasks.pipeline import read_model

    _require_onnx()
    import onnx

    path = Path(args.onnx)
    if path.suffix != ".onnx":
        raise UserError(f"--onnx {args.onnx}: not a .onnx file name; give OUT.onnx")
    if not path.parent.is_dir():
        raise UserError(f"--onnx {args.onnx}: the folder {path.parent} does not exist; create it")
    model, extra = read_model(args.model)
    # A model kind's builder reads what it needs (vocabulary, classes, scaling) from the file's
    # extra; a bare recurrent layer and a regressor (inputs and outputs as they are) read none.
    options = {} if isinstance(model, Recurrent | SequenceRegressor) else {"extra": extra}
    for written in write_graphs(model, path, **options):
        print(f"wrote {written}")
        graph = onnx.load(str(written)).graph
        for role, values in (("inputs", graph.input), ("outputs", graph.output)):
            print(f"  {role}: " + ", ".join(f"{value.name} {_shape(value)}" for value in values))


def _shape(value) -> str:
    """``(time, batch, 65)``: a graph value's shape, symbolic dimensions by name."""
    dims = value.type.tensor_type.shape.dim
    return "(" + ", ".join(dim.dim_param or str(dim.dim_value) for dim in dims) + ")"


EXPORT = Command("export", "write a trained model as ONNX graphs (needs rnnkit[onnx])",
                 _add_arguments, _run)  # fmt: skip
