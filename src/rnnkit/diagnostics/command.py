"""``rnnkit diagnose``: the gradient norms through time of a fresh layer, or of a trained
language model reading a text, and their verdict."""

from __future__ import annotations

import argparse
import json
import sys

from rnnkit import cells
from rnnkit._arguments import number, positive_int, seed
from rnnkit._command import Command
from rnnkit.diagnostics.diagnosis import describe, diagnose_fresh, diagnose_language_model
from rnnkit.diagnostics.plot import plot_grad_norms
from rnnkit.errors import UserError

# The fresh layer diagnosed without a MODEL: its options' defaults (a model has its own).
FRESH = {"cell": "rnn", "nonlinearity": "tanh", "init": "uniform", "forget_bias": None,
         "spectral_radius": None, "hidden": 64, "layers": 1, "seed": 0}  # fmt: skip


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    def fresh(flag: str, help: str, **settings) -> None:
        """A fresh layer's option: None when not given, so that one given with a MODEL shows."""
        default = FRESH[flag[2:].replace("-", "_")]
        shown = "" if default is None else f" (default: {default})"
        parser.add_argument(flag, default=None, help=f"fresh layer: {help}{shown}", **settings)

    add = parser.add_argument
    add("model", nargs="?", help="a language model to diagnose (default: a fresh layer)")
    add("--text", metavar="FILE", help="with MODEL: the text it reads (its first --length tokens)")
    fresh("--cell", "the recurrent cell", choices=cells.names())
    fresh("--nonlinearity", "RNN only", choices=("tanh", "relu"))
    fresh("--init", "initialisation", choices=("uniform", "xavier_orthogonal", "identity"))
    fresh("--forget-bias", "LSTM only", type=number)
    fresh("--spectral-radius", "rescale the recurrent weights to this spectral radius",
          type=number)  # fmt: skip
    add("--length", type=positive_int, default=100, help="sequence length T (default: 100)")
    fresh("--hidden", "hidden size H", type=positive_int)
    fresh("--layers", "stacked layers", type=positive_int)
    fresh("--seed", "random seed of its weights and inputs", type=seed)
    add("--plot", metavar="PNG", help="draw the norms against the time step (log scale)")
    add("--json", action="store_true", help="print one JSON object")


def _run(args: argparse.Namespace) -> None:
    if args.model is None:
        if args.text:
            raise UserError("--text goes with a MODEL to diagnose; give both or neither")
        layer = {name: FRESH[name] if getattr(args, name) is None else getattr(args, name)
                 for name in FRESH}  # fmt: skip
        result = diagnose_fresh(
            layer["cell"], layer["nonlinearity"], layer["init"], args.length, layer["hidden"],
            layer["seed"], layer["forget_bias"], layers=layer["layers"],
            spectral_radius=layer["spectral_radius"], jacobian=layer["hidden"] <= 256,
        )  # fmt: skip
    else:
        given = [name for name in FRESH if getattr(args, name) is not None]
        if given:
            flag = "--" + given[0].replace("_", "-")
            raise UserError(
                f"{flag} sets up the fresh layer diagnosed without a MODEL, and {args.model} "
                f"has its own; leave {flag} out"
            )
        if not args.text:
            raise UserError("a model is diagnosed on a text: give --text FILE")
        result = _diagnose_model(args.model, args.text, args.length)
    if args.plot:
        try:
            plot_grad_norms(result, args.plot)
        except ImportError as error:
            raise UserError(str(error)) from None
    print(json.dumps(result) if args.json else describe(result))


def _diagnose_model(path: str, text_path: str, length: int) -> dict:
    """The diagnosis of the language model at ``path`` reading the first ``length`` + 1 tokens
    of the text at ``text_path``; a note on stderr for the characters left out among them (those
    the model never saw) and for a text too short to give ``length`` steps."""
    # The language-model task (and its data sets) only when a model is diagnosed.
    from rnnkit.tasks import language_modeling as lm

    model, vocabulary = lm.load_language_model(path)
    text = _start_read(lm.read_text(text_path), vocabulary, length + 1)
    kept, unseen = lm.without_unseen(text, vocabulary)
    if unseen:
        _note(lm.skipped_note(len(text) - len(kept), unseen))
    ids = vocabulary.encode(kept)[: length + 1]
    if 3 <= len(ids) <= length:
        _note(
            f"the text has {len(ids)} tokens, so T={len(ids) - 1}, not --length {length}; "
            f"give a text of {length + 1} tokens or more for T={length}"
        )
    return diagnose_language_model(model, ids)


def _start_read(text: str, vocabulary, tokens: int) -> str:
    """The start of ``text`` that gives the first ``tokens`` tokens read: at character level up
    to its ``tokens``-th character the ``vocabulary`` knows (so that only the unseen characters
    among them are counted as skipped); at word level the whole text (its tokens are cut)."""
    if vocabulary.level != "char":
        return text
    known = 0
    for end, char in enumerate(text):
        known += char in vocabulary.ids
        if known == tokens:
            return text[: end + 1]
    return text


def _note(text: str) -> None:
    print(f"rnnkit diagnose: note: {text}", file=sys.stderr)


DIAGNOSE = Command(
    "diagnose", "gradient norms through time: vanishing, exploding or stable", _add_arguments, _run
)
