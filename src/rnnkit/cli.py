"""The ``rnnkit`` command: thin argument parsing over the library.

    rnnkit train [lm] [options]          train a language model (Shakespeare by default)
    rnnkit train classify [options]      train a sequence classifier (movie reviews by default)
    rnnkit train forecast [options]      train a forecaster (Seattle's weather by default)
    rnnkit train seq2seq [options]       spelling -> pronunciation (CMU dictionary by default)
    rnnkit generate MODEL --prime TEXT   continue a text with a trained language model
    rnnkit evaluate MODEL [data]         score a trained model (its test split when it can)
    rnnkit predict MODEL [data]          classes, the next values, or a transcription
    rnnkit diagnose [options]            gradient norms through time of a fresh model
    rnnkit bench [--quick] [--json F]    speed against PyTorch's CPU RNNs, side by side

Errors in what the user gave (options, files, models), a file the system cannot read or write, and
too little memory end the command with one line on stderr and exit status 2, before anything is
written. Anything else is a bug in rnnkit: one line that says so, and exit status 1. ``--debug``
(or RNNKIT_DEBUG=1) shows the traceback instead in both cases.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import fields
from pathlib import Path

from rnnkit import cells
from rnnkit._arguments import columns as _columns
from rnnkit._arguments import number as _number
from rnnkit._arguments import positive_int as _positive_int
from rnnkit._arguments import seed as _seed
from rnnkit._environment import tune_process
from rnnkit.bench.command import BENCH
from rnnkit.diagnostics.command import DIAGNOSE
from rnnkit.errors import UserError

TRAIN_TASKS = ("lm", "classify", "forecast", "seq2seq")


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage block), with exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _add_lm_options(parser: argparse.ArgumentParser) -> None:
    from rnnkit.tasks.language_modeling import LanguageModelOptions

    defaults = {field.name: field.default for field in fields(LanguageModelOptions)}
    add = parser.add_argument
    add("--text", action="append", dest="texts", metavar="FILE",
        help="UTF-8 text to train on (repeatable); default: Shakespeare's plays")  # fmt: skip
    add("--level", choices=("char", "word"), default=defaults["level"])
    add("--cell", choices=cells.names(), default=defaults["cell"])
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
    add("--seed", type=_seed, default=defaults["seed"])
    add("--out", default=defaults["out"], help="directory for the model, checkpoints and logs")
    add("--checkpoint-every", type=_positive_int, default=defaults["checkpoint_every"])
    add("--validate-every", type=_positive_int, default=defaults["validate_every"])
    add("--resume", action="store_true", help="go on from the newest checkpoint in --out")


def _add_common_options(parser: argparse.ArgumentParser, defaults: dict) -> None:
    """The recurrent stack, the optimisation, the split and the output of classify and forecast."""
    add = parser.add_argument
    add("--cell", choices=cells.names(), default=defaults["cell"])
    add("--hidden", type=_positive_int, default=defaults["hidden"], help="hidden units per layer")
    add("--layers", type=_positive_int, default=defaults["layers"])
    add("--dropout", type=_number, default=defaults["dropout"], help="in [0, 1)")
    add("--batch", type=_positive_int, default=defaults["batch"])
    length = parser.add_mutually_exclusive_group()
    length.add_argument(
        "--epochs", type=_positive_int, default=None,
        help=f"passes over the training data (default {defaults['epochs']})",
    )  # fmt: skip
    length.add_argument("--steps", type=_positive_int, default=None, help="optimizer steps")
    add("--lr", type=_number, default=defaults["lr"], help="Adam learning rate")
    add("--clip", type=_number, default=defaults["clip"], help="clip the gradient norm to this")
    add("--val-fraction", type=_number, default=defaults["val_fraction"])
    add("--test-fraction", type=_number, default=defaults["test_fraction"])
    add("--seed", type=_seed, default=defaults["seed"])
    add("--out", default=defaults["out"], help="directory for the model, pictures and logs")
    add("--resume", action="store_true", help="go on from the newest checkpoint in --out")


def _add_classify_options(parser: argparse.ArgumentParser) -> None:
    from rnnkit.tasks.classification import ClassifyOptions

    defaults = {field.name: field.default for field in fields(ClassifyOptions)}
    add = parser.add_argument
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--csv", metavar="FILE", help="texts and labels in a CSV; default: Rotten Tomatoes reviews"
    )
    source.add_argument(
        "--npz", metavar="FILE", help="numeric sequences: arrays X (N, T, F), lengths (N,), y (N,)"
    )
    add("--text-col", default=defaults["text_col"], help="the CSV's text column")
    add("--label-col", default=defaults["label_col"], help="the CSV's label column")
    add("--level", choices=("word", "char"), default=defaults["level"], help="text tokens")
    add("--max-vocab", type=_positive_int, default=defaults["max_vocab"],
        help="tokens kept (the most frequent), <unk> included")  # fmt: skip
    add("--min-count", type=_positive_int, default=defaults["min_count"],
        help="training tokens seen fewer times become <unk>")  # fmt: skip
    add("--max-len", type=_positive_int, default=defaults["max_len"],
        help="tokens kept from the start of each text")  # fmt: skip
    add("--embedding", type=_positive_int, default=defaults["embedding"], help="embedding size")
    add("--bidirectional", action=argparse.BooleanOptionalAction,
        default=defaults["bidirectional"])  # fmt: skip
    add("--pooling", choices=("last", "mean", "max"), default=defaults["pooling"],
        help="final state, or mean or max of the outputs over the valid steps")  # fmt: skip
    add("--class-weights", choices=("none", "balanced"), default=defaults["class_weights"],
        help="balanced: weigh each class by N / (classes x its count)")  # fmt: skip
    _add_common_options(parser, defaults)


def _add_forecast_options(parser: argparse.ArgumentParser) -> None:
    from rnnkit.tasks.forecasting import ForecastOptions

    defaults = {field.name: field.default for field in fields(ForecastOptions)}
    add = parser.add_argument
    add("--csv", metavar="FILE", help="one row per time step; default: Seattle's weather")
    add("--target", metavar="COL", help="the column to forecast (default data: temp_max)")
    add("--features", metavar="COLS", type=_columns,
        help="input columns besides the target, comma-separated; default: all numbers")  # fmt: skip
    add("--date-col", metavar="COL", help="dates, increasing (default data: date)")
    add("--calendar", action=argparse.BooleanOptionalAction, default=defaults["calendar"],
        help="add the day of the year (sine, cosine) as inputs, given --date-col")  # fmt: skip
    add("--window", type=_positive_int, default=defaults["window"], help="past steps read")
    add("--horizon", type=_positive_int, default=defaults["horizon"], help="steps forecast")
    add("--season", type=_positive_int, default=defaults["season"],
        help="steps in a season, for the seasonal baseline")  # fmt: skip
    add("--loss", choices=("mse", "mae"), default=defaults["loss"])
    add("--members", type=_positive_int, default=defaults["members"],
        help="networks from different initial weights; the forecast is their mean")  # fmt: skip
    _add_common_options(parser, defaults)


def _add_seq2seq_options(parser: argparse.ArgumentParser) -> None:
    from rnnkit.tasks.seq2seq import ATTENTIONS, Seq2SeqOptions

    defaults = {field.name: field.default for field in fields(Seq2SeqOptions)}
    add = parser.add_argument
    add("--tsv", metavar="FILE", help="source<TAB>target pairs; default: the CMU dictionary")
    add("--source-level", choices=("char", "space"), default=defaults["source_level"],
        help="TSV source tokens: characters or space-separated")  # fmt: skip
    add("--target-level", choices=("char", "space"), default=defaults["target_level"])
    add("--cell", choices=cells.names(), default=defaults["cell"])
    add("--attention", choices=ATTENTIONS, default=defaults["attention"])
    add("--embedding", type=_positive_int, default=defaults["embedding"])
    add("--hidden", type=_positive_int, default=defaults["hidden"])
    add("--layers", type=_positive_int, default=defaults["layers"], help="encoder layers")
    add("--bidirectional", action=argparse.BooleanOptionalAction,
        default=defaults["bidirectional"], help="encoder direction(s)")  # fmt: skip
    add("--teacher-forcing", type=_number, default=defaults["teacher_forcing"],
        help="share of decoder steps fed the true previous token")  # fmt: skip
    add("--batch", type=_positive_int, default=defaults["batch"])
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--steps", type=_positive_int, default=None,
                        help=f"optimizer steps (default {defaults['steps']})")  # fmt: skip
    length.add_argument("--epochs", type=_positive_int, default=None)
    add("--lr", type=_number, default=defaults["lr"], help="Adam learning rate")
    add("--clip", type=_number, default=defaults["clip"])
    add("--val-fraction", type=_number, default=defaults["val_fraction"])
    add("--test-fraction", type=_number, default=defaults["test_fraction"])
    add("--max-words", type=_positive_int, default=None, help="use only this many pairs")
    add("--seed", type=_seed, default=defaults["seed"])
    add("--out", default=defaults["out"])
    add("--checkpoint-every", type=_positive_int, default=defaults["checkpoint_every"])
    add("--validate-every", type=_positive_int, default=defaults["validate_every"])


def _add_sampling_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--temperature", type=_number, default=0.8)
    parser.add_argument("--top-k", type=_positive_int, default=None)
    parser.add_argument("--top-p", type=_number, default=None)
    parser.add_argument("--seed", type=_seed, default=None)


def _add_data_options(parser: argparse.ArgumentParser, labels: bool) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--csv", metavar="FILE", help="classifier: texts (and labels); forecaster: the series"
    )
    source.add_argument("--npz", metavar="FILE", help="classifier: numeric sequences")
    parser.add_argument("--text-col", help="the CSV's text column (default: as in training)")
    if labels:
        parser.add_argument("--label-col", help="the CSV's label column (default: as in training)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rnnkit", description="Recurrent neural networks with exact BPTT, in NumPy."
    )
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of an error (or RNNKIT_DEBUG=1)"
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
    classify = tasks.add_parser(
        "classify", prog="rnnkit train classify", help="many-to-one sequence classifier"
    )
    _add_classify_options(classify)
    forecast = tasks.add_parser(
        "forecast", prog="rnnkit train forecast", help="forecast the next values of a series"
    )
    _add_forecast_options(forecast)
    seq2seq = tasks.add_parser(
        "seq2seq", prog="rnnkit train seq2seq", help="sequence to sequence with attention"
    )
    _add_seq2seq_options(seq2seq)

    generate = commands.add_parser("generate", help="continue a text with a language model")
    generate.add_argument("model", help="a model.safetensors written by 'rnnkit train lm'")
    generate.add_argument(
        "--prime", default="\n", help="the text to continue (word level: unknown words are <unk>)"
    )
    generate.add_argument("--length", type=_positive_int, default=500, help="tokens to draw")
    _add_sampling_options(generate)

    evaluate = commands.add_parser(
        "evaluate",
        help="score a trained model: on its test split of a packaged data set by default, of "
        "your own data when you give the training file again",
    )
    evaluate.add_argument("model")
    evaluate.add_argument("--text", metavar="FILE", help="language model: a UTF-8 text")
    _add_data_options(evaluate, labels=True)
    evaluate.add_argument("--tsv", metavar="FILE", help="seq2seq: source<TAB>target pairs")
    evaluate.add_argument(
        "--beam", type=_positive_int, default=1, help="seq2seq: beam width, 1 (greedy) to 100"
    )
    evaluate.add_argument(
        "--plot", metavar="PNG", help="draw the confusion matrix or the forecast to this file"
    )
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")

    predict = commands.add_parser(
        "predict", help="classes of texts or sequences, or the next values of a series"
    )
    predict.add_argument("model")
    predict.add_argument(
        "--text",
        action="append",
        metavar="TEXT",
        help="classifier: a text to classify (repeatable)",
    )
    _add_data_options(predict, labels=False)
    predict.add_argument("--input", action="append", metavar="TEXT",
                         help="seq2seq: a source to transcribe (repeatable)")  # fmt: skip
    predict.add_argument(
        "--beam", type=_positive_int, default=1, help="seq2seq: beam width, 1 (greedy) to 100"
    )
    predict.add_argument("--attention-png", metavar="PNG",
                         help="seq2seq: draw the attention of the (first) input")  # fmt: skip
    predict.add_argument("--json", action="store_true", help="print JSON")

    diagnose = commands.add_parser(DIAGNOSE.name, help=DIAGNOSE.help)
    DIAGNOSE.add_arguments(diagnose)

    bench = commands.add_parser(BENCH.name, help=BENCH.help)
    BENCH.add_arguments(bench)
    for command in (*tasks.choices.values(), generate, evaluate, predict, diagnose, bench):
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show the traceback of an error")  # fmt: skip
    return parser


def _train(args) -> None:
    run = {"lm": _train_lm, "classify": _train_classify, "forecast": _train_forecast,
           "seq2seq": _train_seq2seq}  # fmt: skip
    run[args.task](args)


def _train_lm(args) -> None:
    from rnnkit.tasks.language_modeling import LanguageModelOptions, train_language_model
    from rnnkit.train.progress import format_duration

    chosen = _chosen(args, LanguageModelOptions)
    chosen["texts"] = tuple(args.texts or ())
    summary = train_language_model(LanguageModelOptions(**chosen))
    if summary.get("failed"):
        raise SystemExit(1)
    print(
        f"\ntrained {summary['steps']} steps in {format_duration(summary['seconds'])}; "
        f"validation loss {summary['val_loss']:.3f} nats/token, "
        f"{summary['val_bits_per_char']:.2f} bits/char; model: {summary['model_path']}\n"
    )
    print(summary["sample"])


def _chosen(args, options_class) -> dict:
    """The options' fields from the parsed arguments; steps/epochs left out when neither was
    given (the defaults)."""
    chosen = {field.name: getattr(args, field.name) for field in fields(options_class)
              if hasattr(args, field.name)}  # fmt: skip
    if chosen.get("steps") is None and chosen.get("epochs") is None:
        for name in ("steps", "epochs"):
            chosen.pop(name, None)
    return chosen


def _train_classify(args) -> None:
    from rnnkit.tasks.classification import ClassifyOptions, train_classifier
    from rnnkit.train.progress import format_duration

    summary = train_classifier(ClassifyOptions(**_chosen(args, ClassifyOptions)))
    if summary.get("failed"):
        raise SystemExit(1)
    test = summary["test"]
    print(
        f"\ntrained {summary['steps']} steps in {format_duration(summary['seconds'])}; test "
        f"accuracy {test['accuracy']:.3f} (majority class {test['majority_accuracy']:.3f}), "
        f"macro F1 {test['f1_macro']:.3f} over {test['examples']} examples; "
        f"model: {summary['model_path']}"
    )
    if summary["confusion_png"]:
        print(f"confusion matrix: {summary['confusion_png']}")


def _train_forecast(args) -> None:
    from rnnkit.tasks.forecasting import ForecastOptions, train_forecaster
    from rnnkit.train.progress import format_duration

    summary = train_forecaster(ForecastOptions(**_chosen(args, ForecastOptions)))
    if summary.get("failed"):
        raise SystemExit(1)
    test = summary["test"]
    print(
        f"\ntrained {summary['steps']} steps in {format_duration(summary['seconds'])}; test MAE "
        f"{test['mae']:.3f} (persistence {test['baseline_mae']:.3f}: "
        f"{1 - test['mae'] / test['baseline_mae']:.1%} lower), RMSE {test['rmse']:.3f} "
        f"over {test['windows']} windows; model: {summary['model_path']}"
    )
    if summary["forecast_png"]:
        print(f"forecast against the actual values: {summary['forecast_png']}")


def _train_seq2seq(args) -> None:
    from rnnkit.tasks.seq2seq import Seq2SeqOptions, train_seq2seq
    from rnnkit.train.progress import format_duration

    summary = train_seq2seq(Seq2SeqOptions(**_chosen(args, Seq2SeqOptions)))
    if summary.get("failed"):
        raise SystemExit(1)
    test = summary["test"]
    print(
        f"\ntrained {summary['steps']} steps in {format_duration(summary['seconds'])}; test "
        f"word accuracy {test['word_accuracy']:.3f}, phoneme error rate "
        f"{test['phoneme_error_rate']:.3f} over {test['words']} held-out words (greedy); "
        f"model: {summary['model_path']}"
    )


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


def _model_kind(path) -> tuple[str, object, object]:
    """``(kind, model, extra)``: kind "lm", "classify" or "forecast", from the saved class."""
    from rnnkit.models.classifier import SequenceClassifier
    from rnnkit.models.forecaster import ForecastEnsemble, Forecaster
    from rnnkit.models.language_model import LanguageModel
    from rnnkit.models.seq2seq import Seq2Seq
    from rnnkit.tasks.saved_models import read_model

    model, extra = read_model(path)
    kinds = {LanguageModel: "lm", SequenceClassifier: "classify", Forecaster: "forecast",
             ForecastEnsemble: "forecast", Seq2Seq: "seq2seq"}  # fmt: skip
    if type(model) not in kinds:
        raise UserError(
            f"{path} holds a {type(model).__name__}, which the rnnkit command does not serve; "
            "give a model written by 'rnnkit train'"
        )
    return kinds[type(model)], model, extra


def _unused(args, kind: str, *options: str) -> None:
    """ValueError if one of ``options`` (such as "--text-col"), which ``kind`` models do not
    read, was given."""
    for option in options:
        if getattr(args, option[2:].replace("-", "_"), None):
            raise UserError(f"{option} is not read by a {kind}; leave it out")


def _evaluate(args) -> None:
    kind, model, extra = _model_kind(args.model)
    if kind != "seq2seq":
        _unused(args, "model of this kind (--tsv and --beam are for seq2seq)", "--tsv")
        if args.beam != 1:
            raise UserError("--beam is for seq2seq models; leave it out")
    if kind == "seq2seq":
        from rnnkit.tasks.seq2seq import evaluate

        _unused(args, "seq2seq model", "--text", "--csv", "--npz", "--text-col", "--label-col",
                "--plot")  # fmt: skip
        result = evaluate(args.model, args.tsv, args.beam)
        print(json.dumps(result) if args.json else (
            f"word accuracy {result['word_accuracy']:.4f}, phoneme error rate "
            f"{result['phoneme_error_rate']:.4f} over {result['words']} words (beam {args.beam})"
        ))  # fmt: skip
        return
    if kind == "lm":
        _unused(args, "language model", "--csv", "--npz", "--text-col", "--label-col", "--plot")
        if args.text is None:
            raise UserError("a language model is scored on a text: give --text FILE")
        _evaluate_lm(args)
        return
    _unused(args, f"{'classifier' if kind == 'classify' else 'forecaster'} (give --csv)", "--text")
    if kind == "classify":
        from rnnkit.tasks.classification import draw_confusion, evaluate_classifier

        result, description = evaluate_classifier(
            model, extra, args.csv, args.text_col, args.label_col, args.npz
        )
        drew = args.plot and draw_confusion(result, Path(args.plot), description)
        shown = (
            f"accuracy {result['accuracy']:.4f} (majority class {result['majority_accuracy']:.4f})"
            f", macro F1 {result['f1_macro']:.4f} over {result['examples']} examples of "
            f"{description}"
        )
    else:
        from rnnkit.tasks.forecasting import evaluate_forecaster

        _unused(args, "forecaster", "--npz", "--text-col", "--label-col")
        result, description, drew = evaluate_forecaster(model, extra, args.csv, args.plot)
        seasonal = result["seasonal_mae"]
        shown = (
            f"MAE {result['mae']:.4f}, RMSE {result['rmse']:.4f}; persistence MAE "
            f"{result['baseline_mae']:.4f}; seasonal MAE "
            f"{'n/a (under a season of history)' if seasonal is None else f'{seasonal:.4f}'}"
            f" over {result['windows']} windows of {description}"
        )
    if args.plot and not drew:
        raise UserError("--plot needs matplotlib: pip install 'rnnkit[plot]'")
    print(json.dumps(result) if args.json else shown)


def _evaluate_lm(args) -> None:
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


def _predict(args) -> None:
    kind, model, extra = _model_kind(args.model)
    if kind == "seq2seq":
        _predict_seq2seq(args, model, extra)
        return
    _unused(args, "model of this kind (--input, --attention-png are for seq2seq)", "--input",
            "--attention-png")  # fmt: skip
    if kind == "lm":
        raise UserError("a language model continues texts: use rnnkit generate MODEL --prime TEXT")
    if kind == "classify":
        from rnnkit.tasks.classification import predict_classes

        results = predict_classes(model, extra, args.text or (), args.csv, args.text_col, args.npz)
        lines = [f"{result['label']}\t{max(result['probabilities'].values()):.3f}"
                 for result in results]  # fmt: skip
    else:
        from rnnkit.tasks.forecasting import predict_next

        _unused(args, "forecaster", "--text", "--npz", "--text-col")
        results = predict_next(model, extra, args.csv)
        lines = [f"{result['date'] or '+' + str(result['step'])}\t{result['value']:.4f}"
                 for result in results]  # fmt: skip
    print(json.dumps(results) if args.json else "\n".join(lines))


def _predict_seq2seq(args, model, extra) -> None:
    from rnnkit.tasks.seq2seq import plot_attention, predict

    _unused(args, "seq2seq model (give --input)", "--text", "--csv", "--npz", "--text-col")
    if not args.input:
        raise UserError("give the source to transcribe with --input TEXT")
    results = []
    for position, text in enumerate(args.input):
        tokens, weights = predict(model, extra, text, args.beam)
        results.append({"input": text, "output": tokens})
        if position == 0 and args.attention_png:
            if weights is None:
                raise UserError("this model has no attention to draw (attention='none')")
            plot_attention(list(text.strip().lower()), tokens, weights, args.attention_png)
    lines = [f"{result['input']}\t{' '.join(result['output'])}" for result in results]
    print(json.dumps(results) if args.json else "\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    tune_process()  # rnnkit's process settings (rnnkit/_environment.py); import makes none
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["train"] and (len(argv) == 1 or argv[1] not in (*TRAIN_TASKS, "-h", "--help")):
        argv.insert(1, "lm")  # 'rnnkit train' means 'rnnkit train lm'
    args = build_parser().parse_args(argv)
    run = {"train": _train, "generate": _generate, "evaluate": _evaluate, "predict": _predict,
           "diagnose": DIAGNOSE.run, "bench": BENCH.run}  # fmt: skip
    command = args.command if getattr(args, "task", "lm") == "lm" else f"train {args.task}"
    try:
        with _quiet_floating_point():
            run[args.command](args)
    except BrokenPipeError:  # the reader went away (e.g. '| head'): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(f"\nrnnkit {command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if args.debug or os.environ.get("RNNKIT_DEBUG"):
            raise
        message, status = _describe(error)
        print(f"rnnkit {command}: {message}", file=sys.stderr)
        return status
    return 0


def _describe(error: Exception) -> tuple[str, int]:
    """The one line the command prints for ``error`` and its exit status: 2 for what the user or
    the machine can fix (bad input, a file, memory), 1 for a bug in rnnkit."""
    from rnnkit.errors import UserError

    if isinstance(error, UserError):
        return f"error: {error}", 2
    if isinstance(error, OSError):
        return f"error: {_os_error(error)}", 2
    if isinstance(error, MemoryError):
        return (
            f"error: not enough memory ({error or 'an allocation failed'}); use smaller sizes "
            "or a machine with more memory",
            2,
        )
    return (
        f"internal error: {type(error).__name__}: {error}; this is a bug in rnnkit, please "
        "report it with the command you ran (--debug shows the traceback)",
        1,
    )


def _os_error(error: OSError) -> str:
    """An OSError as one line that names the file, e.g. 'cannot read x.txt: permission denied'."""
    reason = (error.strerror or str(error)).rstrip(".")
    reason = reason[:1].lower() + reason[1:]
    if error.filename is None:
        return str(error) or reason
    return f"{error.filename}: {reason}"


def _quiet_floating_point():
    """NumPy's floating-point warnings off: rnnkit checks its numbers itself (a diverging run
    stops with its own message), so the warnings would only print noise before it."""
    import numpy as np

    return np.errstate(all="ignore")


if __name__ == "__main__":
    sys.exit(main())
