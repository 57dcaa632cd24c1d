"""``rnnkit diagnose``: the gradient norms through time of a fresh layer, or of a trained
language model reading a text, and their verdict."""

from __future__ import annotations

import argparse
import json

from rnnkit import cells
from rnnkit._arguments import number, positive_int, seed
from rnnkit._command import Command
from rnnkit.diagnostics.diagnosis import describe, diagnose_fresh, diagnose_language_model
from rnnkit.diagnostics.plot import plot_grad_norms
from rnnkit.errors import UserError


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("model", nargs="?", help="a language model to diagnose (default: a fresh layer)")
    add("--text", metavar="FILE", help="with MODEL: the text it reads (its first --length tokens)")
    add("--cell", choices=cells.names(), default="rnn")
    add("--nonlinearity", choices=("tanh", "relu"), default="tanh", help="RNN only")
    add("--init", choices=("uniform", "xavier_orthogonal", "identity"), default="uniform")
    add("--forget-bias", type=number, default=None, help="LSTM only")
    add("--spectral-radius", type=number, default=None,
        help="rescale the recurrent weights to this spectral radius")  # fmt: skip
    add("--length", type=positive_int, default=100, help="sequence length T")
    add("--hidden", type=positive_int, default=64)
    add("--layers", type=positive_int, default=1)
    add("--seed", type=seed, default=0)
    add("--plot", metavar="PNG", help="draw the norms against the time step (log scale)")
    add("--json", action="store_true", help="print one JSON object")


def _run(args: argparse.Namespace) -> None:
    if args.model is None:
        if args.text:
            raise UserError("--text goes with a MODEL to diagnose; give both or neither")
        result = diagnose_fresh(
            args.cell, args.nonlinearity, args.init, args.length, args.hidden, args.seed,
            args.forget_bias, layers=args.layers, spectral_radius=args.spectral_radius,
            jacobian=args.hidden <= 256,
        )  # fmt: skip
    else:
        # The language-model task (and its data sets) only when a model is diagnosed.
        from rnnkit.tasks.language_modeling import load_language_model, read_text

        if not args.text:
            raise UserError("a model is diagnosed on a text: give --text FILE")
        model, vocabulary = load_language_model(args.model)
        ids = vocabulary.encode(read_text(args.text))[: args.length + 1]
        result = diagnose_language_model(model, ids)
    if args.plot:
        try:
            plot_grad_norms(result, args.plot)
        except ImportError as error:
            raise UserError(str(error)) from None
    print(json.dumps(result) if args.json else describe(result))


DIAGNOSE = Command(
    "diagnose", "gradient norms through time: vanishing, exploding or stable", _add_arguments, _run
)
