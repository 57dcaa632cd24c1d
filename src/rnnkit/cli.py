"""The ``rnnkit`` command: thin argument parsing over the library.

    rnnkit train [lm] [options]          train a language model (Shakespeare by default)
    rnnkit generate MODEL --prime TEXT   continue a text with a trained language model
    rnnkit evaluate MODEL --text FILE    loss, perplexity and bits per character on a text

Errors in what the user gave (options, files, models) end the command with one line on stderr
and exit status 2, before anything is written (set RNNKIT_DEBUG=1 to see the traceback instead).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import fields

TRAIN_TASKS = ("lm",)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage block), with exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _add_lm_options(parser: argparse.ArgumentParser) -> None:
    from rnnkit.tasks.language_modeling import LanguageModelOptions

    defaults = {field.name: field.default for field in fields(LanguageModelOptions)}
    add = parser.add_argument
    add("--text", action="append", dest="texts", metavar="FILE",
        help="UTF-8 text to train on (repeatable); default: Shakespeare's plays")  # fmt: skip
    add("--level", choices=("char", "word"), default=defaults["level"])
    add("--cell", choices=("rnn", "lstm", "gru"), default=defaults["cell"])
    add("--embedding", type=_positive_int, default=defaults["embedding"], help="embedding size")
    add("--hidden", type=_positive_int, default=defaults["hidden"], help="hidden units per layer")
    add("--layers", type=_positive_int, default=defaults["layers"])
    add("--dropout", type=_number, default=defaults["dropout"],
        help="probability of zeroing a unit in training, in [0, 1)")  # fmt: skip
    add("--tie-weights", action="store_true",
        help="output weights = the embedding matrix (needs --embedding = --hidden)")  # fmt: skip
    add("--seq-len", type=_positive_int, default=defaults["seq_len"], help="BPTT window (tokens)")
    add("--batch", type=_positive_int, default=defaults["batch"])
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--steps", type=_positive_int, default=None,
                        help=f"optimizer steps (default {defaults['steps']})")  # fmt: skip
    length.add_argument("--epochs", type=_positive_int, default=None)
    add("--lr", type=_number, default=defaults["lr"], help="Adam learning rate")
    add("--clip", type=_number, default=defaults["clip"], help="clip the gradient norm to this")
    add("--val-fraction", type=_number, default=defaults["val_fraction"],
        help="share of the text (its end) held out for validation")  # fmt: skip
    add("--min-count", type=_positive_int, default=defaults["min_count"],
        help="word level: words seen fewer times become <unk>")  # fmt: skip
    add("--seed", type=int, default=defaults["seed"])
    add("--out", default=defaults["out"], help="directory for the model, checkpoints and logs")
    add("--checkpoint-every", type=_positive_int, default=defaults["checkpoint_every"])
    add("--validate-every", type=_positive_int, default=defaults["validate_every"])
    add("--resume", action="store_true", help="go on from the newest checkpoint in --out")


def _add_sampling_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--temperature", type=_number, default=0.8)
    parser.add_argument("--top-k", type=_positive_int, default=None)
    parser.add_argument("--top-p", type=_number, default=None)
    parser.add_argument("--seed", type=int, default=None)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rnnkit", description="Recurrent neural networks with exact BPTT, in NumPy."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser(
        "train",
        help="train a model (default task: lm)",
        epilog="'rnnkit train' is 'rnnkit train lm'; its options: rnnkit train lm --help",
    )
    tasks = train.add_subparsers(dest="task", required=True)
    lm = tasks.add_parser(
        "lm", prog="rnnkit train", help="character- or word-level language model"
    )  # prog: errors read 'rnnkit train: error: ...', as for the command's other errors
    _add_lm_options(lm)

    generate = commands.add_parser("generate", help="continue a text with a language model")
    generate.add_argument("model", help="a model.safetensors written by 'rnnkit train lm'")
    generate.add_argument(
        "--prime", default="\n", help="the text to continue (word level: unknown words are <unk>)"
    )
    generate.add_argument("--length", type=_positive_int, default=500, help="tokens to draw")
    _add_sampling_options(generate)

    evaluate = commands.add_parser("evaluate", help="score a language model on a text")
    evaluate.add_argument("model")
    evaluate.add_argument("--text", required=True, metavar="FILE")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def _train(args) -> None:
    from rnnkit.tasks.language_modeling import LanguageModelOptions, train_language_model
    from rnnkit.train.progress import format_duration

    chosen = {field.name: getattr(args, field.name) for field in fields(LanguageModelOptions)}
    chosen["texts"] = tuple(args.texts or ())
    if chosen["steps"] is None and chosen["epochs"] is None:
        del chosen["steps"], chosen["epochs"]  # the defaults
    summary = train_language_model(LanguageModelOptions(**chosen))
    if summary.get("failed"):
        raise SystemExit(1)
    print(
        f"\ntrained {summary['steps']} steps in {format_duration(summary['seconds'])}; "
        f"validation loss {summary['val_loss']:.3f} nats/token, "
        f"{summary['val_bits_per_char']:.2f} bits/char; model: {summary['model_path']}\n"
    )
    print(summary["sample"])


def _generate(args) -> None:
    from rnnkit.models.sampling import check_sampling, complete
    from rnnkit.tasks.language_modeling import load_language_model

    check_sampling(args.temperature, args.top_k, args.top_p)
    model, vocabulary = load_language_model(args.model)
    text = complete(
        model, vocabulary, args.prime, args.length, temperature=args.temperature,
        top_k=args.top_k, top_p=args.top_p, seed=args.seed,
    )  # fmt: skip
    print(args.prime + text)


def _evaluate(args) -> None:
    from rnnkit.tasks.language_modeling import evaluate_text, load_language_model, read_text

    model, vocabulary = load_language_model(args.model)
    result = evaluate_text(model, vocabulary, read_text(args.text))
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"loss {result['loss']:.4f} nats/token, perplexity {result['perplexity']:.2f}, "
            f"{result['bits_per_char']:.3f} bits/char over {result['tokens']} tokens"
        )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["train"] and (len(argv) == 1 or argv[1] not in (*TRAIN_TASKS, "-h", "--help")):
        argv.insert(1, "lm")  # 'rnnkit train' means 'rnnkit train lm'
    args = build_parser().parse_args(argv)
    run = {"train": _train, "generate": _generate, "evaluate": _evaluate}[args.command]
    try:
        run(args)
    except (ValueError, TypeError, OSError) as error:
        if os.environ.get("RNNKIT_DEBUG"):
            raise
        print(f"rnnkit {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nrnnkit {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
