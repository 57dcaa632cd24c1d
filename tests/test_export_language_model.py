"""The language model exported to ONNX: window logits and states equal rnnkit's, the step graph
drives greedy generation as rnnkit's does, and ``rnnkit export`` writes both files."""

import json
import runpy
import sys

import numpy as np
import pytest
from tests.cli_helpers import assert_one_line_error, run_cli

from rnnkit import export_onnx
from rnnkit.data.vocabulary import Vocabulary
from rnnkit.models.language_model import LanguageModel
from rnnkit.models.sampling import complete

ort = pytest.importorskip("onnxruntime", reason="ONNX export checks need onnxruntime")
pytest.importorskip("onnx", reason="ONNX export needs onnx")

TEXT = "ROMEO: But soft, what light through yonder window breaks?\nIt is the east.\n" * 8
CHARS = Vocabulary.from_text(TEXT, "char")


def session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def close(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("cell", "layers", "tied", "level"),
    [("lstm", 1, False, "char"), ("lstm", 2, True, "word"), ("gru", 2, False, "char"),
     ("gru", 1, True, "char"), ("rnn", 2, False, "word"), ("rnn", 1, True, "char"),
     ("layer_norm_lstm", 2, False, "char"), ("layer_norm_gru", 1, True, "word")],
)  # fmt: skip
def test_window_logits_and_states_equal_rnnkit(tmp_path, cell, layers, tied, level):
    vocabulary = Vocabulary.from_text(TEXT, level)
    size = len(vocabulary)
    model = LanguageModel(size, 12, 12, layers, cell, tie_weights=tied, seed=1)
    extra = {"vocabulary": vocabulary.to_json()}
    export_onnx(model, tmp_path / "lm.onnx", extra=extra, state=True)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, size, (7, 3))
    state = tuple(rng.standard_normal((layers, 3, 12)).astype(np.float32)
                  for _ in range(2 if cell.endswith("lstm") else 1))  # fmt: skip
    logits, final = model(ids, state if cell.endswith("lstm") else state[0])
    names = ["h0", "c0"][: len(state)]
    feeds = {"tokens": ids, **dict(zip(names, state, strict=True))}
    got = session(tmp_path / "lm.onnx").run(None, feeds)
    close(got[0], logits)
    for value, expected in zip(got[1:], final if cell.endswith("lstm") else (final,), strict=True):
        close(value, expected)
    meta = session(tmp_path / "lm.step.onnx").get_modelmeta().custom_metadata_map
    assert json.loads(meta["vocabulary"]) == vocabulary.tokens
    assert meta["level"] == level and meta["unk"] == ("<unk>" if level == "word" else "")


def test_window_with_lengths_equals_rnnkit_layers(tmp_path):
    model = LanguageModel(len(CHARS), 8, 8, 2, "gru", seed=2)
    export_onnx(model, tmp_path / "lm.onnx", lengths=True)
    ids, lengths = np.random.default_rng(1).integers(0, len(CHARS), (6, 3)), np.array([6, 2, 4])
    output, final = model.rnn(model.embedding(ids), lengths=lengths)
    got = session(tmp_path / "lm.onnx").run(
        None, {"tokens": ids, "lengths": lengths.astype(np.int32)}
    )
    close(got[0], model.head(output))
    close(got[1], final)


def trained_model(capsys, tmp_path, cell="lstm"):
    """A small model trained for a few steps by 'rnnkit train lm'; its run folder."""
    text, out = tmp_path / "play.txt", tmp_path / "run"
    text.write_text(TEXT, encoding="utf-8")
    status, _, err = run_cli(
        capsys, "train", "--text", text, "--steps", 30, "--hidden", 32, "--layers", 2,
        "--embedding", 16, "--cell", cell, "--batch", 4, "--seq-len", 20, "--out", out,
        "--validate-every", 30,
    )  # fmt: skip
    assert status == 0, err
    return out


def greedy_onnx(path, vocabulary, prime, length):
    """``length`` tokens after ``prime``, each the step graph's most likely (argmax)."""
    step = session(path)
    names = [value.name for value in step.get_inputs() if value.name != "token"]
    shapes = [[1 if dim == "batch" else dim for dim in value.shape]
              for value in step.get_inputs() if value.name != "token"]  # fmt: skip
    state = {name: np.zeros(shape, np.float32) for name, shape in zip(names, shapes, strict=True)}
    for token in vocabulary.encode(prime):
        logits, *new = step.run(None, {"token": np.array([token]), **state})
        state = dict(zip(names, new, strict=True))
    drawn = []
    for _ in range(length):
        drawn.append(int(np.argmax(logits[0])))
        logits, *new = step.run(None, {"token": np.array([drawn[-1]]), **state})
        state = dict(zip(names, new, strict=True))
    return vocabulary.decode_after(prime, drawn)


def test_step_graph_generates_as_rnnkit_generate_greedy(tmp_path, capsys):
    from rnnkit.tasks.language_modeling import load_language_model

    out = trained_model(capsys, tmp_path)
    model, vocabulary = load_language_model(out)
    status, _, err = run_cli(capsys, "export", out, "--onnx", tmp_path / "lm.onnx")
    assert status == 0, err
    # rnnkit generate --top-k 1 is greedy: the most likely token at every step.
    expected = complete(model, vocabulary, "ROMEO", 200, top_k=1)
    assert greedy_onnx(tmp_path / "lm.step.onnx", vocabulary, "ROMEO", 200) == expected
    assert len(expected) == 200


def test_export_command_prints_files_and_example_generates(tmp_path, capsys, monkeypatch):
    out = trained_model(capsys, tmp_path, "gru")
    status, printed, err = run_cli(capsys, "export", out / "model.safetensors", "--onnx",
                                   tmp_path / "lm.onnx")  # fmt: skip
    assert status == 0, err
    assert printed.splitlines() == [
        f"wrote {tmp_path / 'lm.onnx'}",
        "  inputs: tokens (time, batch)",
        f"  outputs: logits (time, batch, {len(CHARS)}), h_n (2, batch, 32)",
        f"wrote {tmp_path / 'lm.step.onnx'}",
        "  inputs: token (batch), h0 (2, batch, 32)",
        f"  outputs: logits (batch, {len(CHARS)}), h_n (2, batch, 32)",
    ]
    monkeypatch.setattr(sys, "argv", ["onnx_generate.py", str(tmp_path / "lm.step.onnx")])
    runpy.run_path("examples/onnx_generate.py", run_name="__main__")
    generated = capsys.readouterr().out
    assert len(generated) == 201 and set(generated) <= set(CHARS.tokens)


def test_export_command_bad_inputs_are_one_line(tmp_path, capsys):
    model_file = tmp_path / "lm.safetensors"
    from rnnkit import save

    save(LanguageModel(5, 4, 4, 1, seed=0), model_file)
    for onnx, message in ((tmp_path / "lm.txt", "not a .onnx file name"),
                          (tmp_path / "missing" / "lm.onnx", "does not exist")):  # fmt: skip
        result = run_cli(capsys, "export", model_file, "--onnx", onnx)
        assert_one_line_error(result, "rnnkit export", message)
    result = run_cli(capsys, "export", tmp_path / "none.safetensors", "--onnx", tmp_path / "a.onnx")
    assert_one_line_error(result, "rnnkit export", "none.safetensors")
    assert not (tmp_path / "a.onnx").exists()


def test_export_without_onnx_says_how_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx raises ImportError
    result = run_cli(capsys, "export", tmp_path / "m.safetensors", "--onnx", tmp_path / "m.onnx")
    assert_one_line_error(result, "rnnkit export", "pip install 'rnnkit[onnx]'")
