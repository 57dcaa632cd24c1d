"""Export rnnkit models to ONNX: ``export_onnx(model, path, **options)``.

Each exportable class has a builder, ``build(model, **options) -> [(suffix, onnx.ModelProto)]``:
one or more graphs, each written to ``path`` with its suffix put before ".onnx" ("" for the main
graph: out.onnx; ".step": out.step.onnx). ``BUILDERS`` maps each class's full name to its
builder's module, imported only when used (onnx is an optional extra: ``pip install
'rnnkit[onnx]'``); a new model kind is one module here plus one line in the table.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from pathlib import Path

from rnnkit.errors import UserError
from rnnkit.io.files import atomic_write_bytes


def _lazy(module: str) -> Callable:
    """The ``build`` function of ``module``, imported when first called; options it does not
    take are a UserError that lists those it does."""

    def build(model, **options):
        builder = importlib.import_module(module).build
        try:
            inspect.signature(builder).bind(model, **options)
        except TypeError:
            taken = [name for name in inspect.signature(builder).parameters][1:]
            raise UserError(
                f"export_onnx: a {type(model).__name__} takes the options {taken or 'none'}, "
                f"not {sorted(options)}"
            ) from None
        return builder(model, **options)

    return build


def _require_onnx() -> None:
    """A UserError, with the fix, when the onnx package is missing."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise UserError(
            "exporting to ONNX needs the onnx package: pip install 'rnnkit[onnx]'"
        ) from None


def export_onnx(model, path, **options) -> Path:
    """Write ``model`` as ONNX to ``path`` (which must end in ".onnx"), and any further graphs
    its builder makes beside it (out.step.onnx ...); returns ``path``.

    ``options`` are the builder's (see each ``rnnkit.export`` module's ``build``). Each file is
    checked by ``onnx.checker`` (full check) and written atomically.
    """
    write_graphs(model, path, **options)
    return Path(path)


def write_graphs(model, path, **options) -> list[Path]:
    """``export_onnx``'s work; returns every file written, the main graph first."""
    builder = BUILDERS.get(f"{type(model).__module__}.{type(model).__qualname__}")
    if builder is None:
        exportable = ", ".join(sorted(name.rpartition(".")[2] for name in BUILDERS))
        raise UserError(f"cannot export a {type(model).__name__} to ONNX; exportable: {exportable}")
    path = Path(path)
    if path.suffix != ".onnx":
        raise UserError(f"export_onnx: {str(path)!r} does not end in .onnx; name it NAME.onnx")
    _require_onnx()
    written = []
    for suffix, graph in builder(model, **options):
        target = path.with_name(path.stem + suffix + ".onnx")
        atomic_write_bytes(target, graph.SerializeToString())
        written.append(target)
    return written


# Each exportable class, by its full name (so that ``import rnnkit`` imports no model), and the
# module whose ``build`` exports it.
BUILDERS: dict[str, Callable] = {
    "rnnkit.nn.recurrent.RNN": _lazy("rnnkit.export.recurrent"),
    "rnnkit.nn.recurrent.LSTM": _lazy("rnnkit.export.recurrent"),
    "rnnkit.nn.recurrent.GRU": _lazy("rnnkit.export.recurrent"),
    "rnnkit.nn.recurrent.Recurrent": _lazy("rnnkit.export.recurrent"),
    "rnnkit.models.language_model.LanguageModel": _lazy("rnnkit.export.language_model"),
    "rnnkit.models.classifier.SequenceClassifier": _lazy("rnnkit.export.classifier"),
    "rnnkit.models.forecaster.Forecaster": _lazy("rnnkit.export.forecaster"),
    "rnnkit.models.forecaster.ForecastEnsemble": _lazy("rnnkit.export.forecaster"),
    "rnnkit.models.regressor.SequenceRegressor": _lazy("rnnkit.export.regressor"),
    "rnnkit.models.recogniser.SpeechRecogniser": _lazy("rnnkit.export.recogniser"),
    "rnnkit.models.seq2seq.Seq2Seq": _lazy("rnnkit.export.seq2seq"),
}

__all__ = ["BUILDERS", "export_onnx"]
