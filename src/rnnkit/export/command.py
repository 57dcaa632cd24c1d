"""``rnnkit export MODEL --onnx OUT.onnx``: a model file (or run folder) as ONNX graphs."""

from __future__ import annotations

import argparse
import glob
from pathlib import Path

from rnnkit._command import Command
from rnnkit.errors import UserError


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("model", help="a model.safetensors, or a run folder of 'rnnkit train'")
    add("--onnx", metavar="OUT.onnx", required=True,
        help="the file to write (a step graph, if any, beside it: OUT.step.onnx)")  # fmt: skip


def _run(args: argparse.Namespace) -> None:
    from rnnkit.export import _require_onnx, export_onnx
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
    # extra; a bare recurrent layer has none.
    options = {} if isinstance(model, Recurrent) else {"extra": extra}
    before = _files(path)
    export_onnx(model, path, **options)
    for written in sorted(name for name, file in _files(path).items() if before.get(name) != file):
        print(f"wrote {written}")
        graph = onnx.load(str(written)).graph
        for role, values in (("inputs", graph.input), ("outputs", graph.output)):
            print(f"  {role}: " + ", ".join(f"{value.name} {_shape(value)}" for value in values))


def _files(path: Path) -> dict[Path, tuple[int, int]]:
    """``path`` and its sibling graphs (NAME.*.onnx), each with its inode and modification time:
    export writes each file anew (atomically: a new inode), so those that changed are written."""
    siblings = [path, *path.parent.glob(glob.escape(path.stem) + ".*.onnx")]
    stats = {name: name.stat() for name in siblings if name.is_file()}
    return {name: (stat.st_ino, stat.st_mtime_ns) for name, stat in stats.items()}


def _shape(value) -> str:
    """``(time, batch, 65)``: a graph value's shape, symbolic dimensions by name."""
    dims = value.type.tensor_type.shape.dim
    return "(" + ", ".join(dim.dim_param or str(dim.dim_value) for dim in dims) + ")"


EXPORT = Command("export", "write a trained model as ONNX graphs (needs rnnkit[onnx])",
                 _add_arguments, _run)  # fmt: skip
