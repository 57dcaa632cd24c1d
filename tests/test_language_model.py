"""The language model with tied weights (finite differences, PyTorch parity, files), word-level
vocabularies and samples, bits per character, and the language-model task's option checks."""

import math

import numpy as np
import pytest

from rnnkit.data.vocabulary import UNK, Vocabulary, first_token_end
from rnnkit.io.models import load, save
from rnnkit.models.language_model import LanguageModel
from rnnkit.models.sampling import complete
from rnnkit.tasks import pipeline
from rnnkit.tasks.language_modeling import (
    TASK,
    LanguageModelData,
    LanguageModelOptions,
    LanguageModelTask,
    SampleOnValidation,
    evaluate_text,
    evaluation_line,
    load_language_model,
    prepare_data,
)
from rnnkit.train.losses import cross_entropy
from rnnkit.train.optim import SGD
from rnnkit.train.trainer import Trainer

VOCAB, SIZE, STEPS, BATCH = 7, 5, 6, 2
CELLS = ("rnn", "lstm", "gru")
TEXT = (
    "ROMEO:\nBut soft, what light through yonder window breaks?\n"
    "It is the east, and Juliet is the sun.\n\n"
    "JULIET:\nO Romeo, Romeo, wherefore art thou Romeo?\n"
    "Deny thy father and refuse thy name.\n\n"
) * 8


def tied_model(cell="lstm", layers=2, dtype=np.float64, seed=0) -> LanguageModel:
    return LanguageModel(VOCAB, SIZE, SIZE, layers, cell, tie_weights=True, dtype=dtype, seed=seed)


def random_ids(seed=1) -> tuple[np.ndarray, np.ndarray]:
    ids = np.random.default_rng(seed).integers(0, VOCAB, (STEPS + 1, BATCH))  # (T + 1, B)
    return ids[:-1], ids[1:]


# ------------------------------------------------------------------- tied weights


@pytest.mark.parametrize("cell", CELLS)
def test_tied_model_gradients_match_finite_differences(cell, gradient_check):
    model = tied_model(cell)
    inputs, targets = random_ids()

    def loss() -> float:
        logits, _ = model(inputs)
        return cross_entropy(logits, targets)[0]

    (logits, _), backward = model.forward(inputs)
    backward(cross_entropy(logits, targets)[1])
    gradient_check(loss, {name: (model.params[name], model.grads[name]) for name in model.params})


def test_tied_matrix_is_one_parameter_updated_once():
    model = tied_model(dtype=np.float32)
    untied = LanguageModel(VOCAB, SIZE, SIZE, 2, "lstm", seed=0)
    assert "head.weight" not in model.params and "head.bias" in model.params
    assert len({id(array) for array in model.params.values()}) == len(model.params)
    assert model.head.embedding.params["weight"] is model.params["embedding.weight"]
    count = sum(array.size for array in model.params.values())
    assert count == sum(array.size for array in untied.params.values()) - VOCAB * SIZE

    inputs, targets = random_ids()
    (logits, _), backward = model.forward(inputs)
    backward(cross_entropy(logits, targets)[1])
    before = model.params["embedding.weight"].copy()
    SGD(model, lr=0.5).step()
    step = before - model.params["embedding.weight"]
    np.testing.assert_allclose(step, 0.5 * model.grads["embedding.weight"], rtol=1e-6, atol=1e-7)


def test_tied_model_matches_pytorch(torch):
    model = tied_model("lstm", dtype=np.float32)
    model.params["head.bias"][...] = np.linspace(-1, 1, VOCAB)  # not the init: a real check
    encoder = torch.nn.Embedding(VOCAB, SIZE)
    rnn = torch.nn.LSTM(SIZE, SIZE, 2)
    decoder = torch.nn.Linear(SIZE, VOCAB)
    decoder.weight = encoder.weight  # PyTorch's weight tying
    with torch.no_grad():
        encoder.weight.copy_(torch.from_numpy(model.params["embedding.weight"]))
        decoder.bias.copy_(torch.from_numpy(model.params["head.bias"]))
        for name, value in model.params.items():
            if name.startswith("rnn."):
                getattr(rnn, name[4:]).copy_(torch.from_numpy(value))
    inputs, targets = random_ids()

    torch_logits = decoder(rnn(encoder(torch.from_numpy(inputs)))[0])
    torch.nn.functional.cross_entropy(
        torch_logits.reshape(-1, VOCAB), torch.from_numpy(targets).reshape(-1)
    ).backward()
    (logits, _), backward = model.forward(inputs)
    backward(cross_entropy(logits, targets)[1])

    tolerance = {"rtol": 1e-5, "atol": 1e-6}
    np.testing.assert_allclose(logits, torch_logits.detach().numpy(), **tolerance)
    expected = {"embedding.weight": encoder.weight.grad, "head.bias": decoder.bias.grad}
    expected |= {f"rnn.{name}": value.grad for name, value in rnn.named_parameters()}
    assert expected.keys() == model.grads.keys()
    for name, grad in expected.items():
        np.testing.assert_allclose(model.grads[name], grad.numpy(), **tolerance, err_msg=name)


def test_tied_model_saves_and_loads_still_tied(tmp_path):
    model = tied_model("gru", dtype=np.float32)
    save(model, tmp_path / "tied.safetensors")
    loaded = load(tmp_path / "tied.safetensors")
    assert loaded.config()["tie_weights"] is True and loaded.config() == model.config()
    assert "head.weight" not in loaded.params
    assert loaded.head.embedding.params["weight"] is loaded.params["embedding.weight"]
    inputs, _ = random_ids()
    np.testing.assert_array_equal(loaded(inputs)[0], model(inputs)[0])


def test_untied_config_loads_without_the_tie_weights_key():
    config = LanguageModel(VOCAB, 4, SIZE, 1, "rnn", seed=0).config()
    del config["tie_weights"]  # as written before tie_weights existed
    assert LanguageModel(**config).tie_weights is False


def test_tying_needs_equal_embedding_and_hidden_sizes():
    with pytest.raises(ValueError, match="tie_weights needs embedding_dim == hidden_size"):
        LanguageModel(VOCAB, 4, 6, tie_weights=True)


# ------------------------------------------------------------------- word level, samples, bits


def test_word_vocabulary_maps_unknown_words_to_unk_and_spaces_continuations():
    vocabulary = Vocabulary.from_text("the king is dead.\nlong live the king, long!", "word")
    unk = vocabulary.ids[UNK]
    assert vocabulary.encode("the zebra is")[1] == unk
    ids = vocabulary.encode("live long, king")
    assert vocabulary.decode_after("the king", ids) == " live long, king"
    assert vocabulary.decode_after("the king ", ids) == "live long, king"
    assert vocabulary.decode_after("the king", vocabulary.encode(", long")) == ", long"
    assert vocabulary.decode_after("the king", vocabulary.encode("\nlong")) == "\nlong"
    chars = Vocabulary.from_text("abc ")
    assert chars.decode_after("ab", chars.encode(" c")) == " c"


def test_first_token_end_counts_the_characters_before_the_predicted_ones():
    assert first_token_end("abc", "char") == 1
    assert first_token_end("  Hello, world", "word") == 7
    assert first_token_end(" ", "word") == 0


def test_bits_per_char_is_the_loss_in_bits_for_a_character_model():
    vocabulary = Vocabulary.from_text(TEXT)
    model = LanguageModel(len(vocabulary), 4, 6, 1, "lstm", seed=0)
    scores = evaluate_text(model, vocabulary, TEXT)
    assert scores["tokens"] == len(TEXT) - 1
    assert scores["bits_per_char"] == pytest.approx(scores["loss"] / math.log(2), rel=1e-12)


def test_word_level_bits_per_char_divide_by_the_characters_predicted():
    vocabulary = Vocabulary.from_text(TEXT, "word")
    model = LanguageModel(len(vocabulary), 6, 6, 1, "gru", tie_weights=True, seed=0)
    scores = evaluate_text(model, vocabulary, TEXT)
    predicted = len(TEXT) - len("ROMEO")
    nats = scores["loss"] * scores["tokens"]
    assert scores["tokens"] == len(vocabulary.encode(TEXT)) - 1
    assert scores["bits_per_char"] == pytest.approx(nats / predicted / math.log(2), rel=1e-12)
    assert scores["bits_per_char"] < scores["loss"] / math.log(2)  # words span characters


def test_word_level_evaluation_counts_the_words_read_as_unk():
    vocabulary = Vocabulary.from_text(TEXT, "word")
    model = LanguageModel(len(vocabulary), 6, 6, 1, "gru", tie_weights=True, seed=0)
    known = evaluate_text(model, vocabulary, TEXT)
    assert known["unknown_words"] == 0 and evaluation_line(known).endswith(" tokens")
    scores = evaluate_text(model, vocabulary, "Zounds, the zebra is the sun.\n" + TEXT)
    assert scores["unknown_words"] == 2  # "Zounds" and "zebra"
    assert evaluation_line(scores).endswith(
        "; 2 words outside the model's vocabulary read as <unk>, one easy token each: the "
        "figures flatter the model"
    )
    chars = Vocabulary.from_text(TEXT)  # no <unk> at character level: unseen ones are skipped
    scores = evaluate_text(LanguageModel(len(chars), 4, 6, 1, "gru", seed=0), chars, "Zounds!")
    assert scores["unknown_words"] == 0 and scores["skipped"] == 2


def test_word_level_training_end_to_end(tmp_path):
    (tmp_path / "play.txt").write_text(TEXT, encoding="utf-8")
    options = LanguageModelOptions(
        texts=(str(tmp_path / "play.txt"),), level="word", tie_weights=True, embedding=12,
        hidden=12, layers=1, batch=2, seq_len=8, steps=30, lr=0.02, val_fraction=0.1,
        out=str(tmp_path / "run"), validate_every=15, checkpoint_every=15,
    )  # fmt: skip
    summary = pipeline.train(TASK, options, say=lambda text: None)
    model, vocabulary = load_language_model(summary["model_path"])
    assert model.tie_weights and vocabulary.level == "word"
    first = evaluate_text(LanguageModel(**model.config(), seed=0), vocabulary, TEXT)["loss"]
    assert evaluate_text(model, vocabulary, TEXT)["loss"] < first - 0.5  # it learned something
    assert summary["val_bits_per_char"] == pytest.approx(
        summary["val_loss"] * len(vocabulary.encode(TEXT[-len(TEXT) // 10 :]))
        / (len(TEXT) // 10) / math.log(2), rel=0.05,
    )  # fmt: skip
    text = complete(model, vocabulary, "But zebra", 12, seed=0)  # 'zebra' is read as <unk>
    assert text.startswith(" ") and len(text.split()) >= 6


def test_sample_callback_prints_a_seeded_sample_after_each_validation(capsys):
    vocabulary = Vocabulary.from_text(TEXT)
    ids = vocabulary.encode(TEXT)
    model = LanguageModel(len(vocabulary), 4, 6, 1, "lstm", seed=0)
    task = LanguageModelTask(ids[:1000], ids[1000:1200], batch_size=2, seq_len=10)
    callback = SampleOnValidation(vocabulary, "\n", chars=30, seed=3)
    trainer = Trainer(
        model, SGD(model, lr=0.1), task, steps=4, validate_every=2, callbacks=[callback],
        progress=False,
    )  # fmt: skip
    trainer.fit()
    printed = capsys.readouterr().err
    assert printed.count("sample at step") == 2 and "sample at step 4:\n" in printed
    expected = complete(model, vocabulary, "\n", 30, temperature=0.8, seed=3)
    assert printed.rstrip("\n").endswith(expected.rstrip("\n"))


# ------------------------------------------------------------------- options and data checks


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"dropout": 1.5}, "dropout must be in"),
        ({"dropout": float("nan")}, "dropout must be in"),
        ({"val_fraction": 0.0}, "val_fraction must be in"),
        ({"lr": 0.0}, "lr must be"),
        ({"lr": float("inf")}, "lr must be"),
        ({"clip": -1.0}, "clip must be"),
        ({"hidden": 0}, "hidden must be"),
        ({"steps": None}, "exactly one of steps or epochs"),
        ({"tie_weights": True}, "set --embedding 256"),
        ({"cell": "transformer"}, "cell must be one of"),
        ({"seed": -1}, "seed must be"),
    ],
)
def test_options_out_of_range_are_refused(change, message):
    with pytest.raises(ValueError, match=message):
        LanguageModelOptions(**change).check()


def test_a_text_too_short_for_the_batch_and_window_is_refused():
    with pytest.raises(ValueError, match=r"too few for --batch 32 x --seq-len 100"):
        prepare_data(TEXT, LanguageModelOptions())
    with pytest.raises(ValueError, match="raise --val-fraction"):
        prepare_data(TEXT, LanguageModelOptions(batch=2, seq_len=10, val_fraction=0.001))


def test_prepared_data_primes_samples_with_a_known_token():
    data = prepare_data("abcabc" * 20, LanguageModelOptions(batch=2, seq_len=5))
    assert isinstance(data, LanguageModelData) and data.prime == "a"  # no newline in the text
    assert data.tokens_per_char() == 1.0


def test_load_language_model_refuses_other_files(tmp_path):
    save(LanguageModel(VOCAB, 4, 4, 1, "rnn", seed=0), tmp_path / "bare.safetensors")
    with pytest.raises(ValueError, match="a language model without its vocabulary"):
        load_language_model(tmp_path / "bare.safetensors")
    with pytest.raises(ValueError, match="is a directory"):
        load_language_model(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_language_model(tmp_path / "missing.safetensors")
