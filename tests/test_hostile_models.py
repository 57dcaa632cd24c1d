"""Hostile model files: whatever a file's JSON document or bytes say, loading it ends in a model
or a one-line UserError, and sizes in a config are refused before anything is allocated."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rnnkit
from rnnkit.data.vocabulary import Vocabulary
from rnnkit.errors import UserError
from rnnkit.io import models
from rnnkit.io.safetensors import read_safetensors, write_safetensors
from rnnkit.models.classifier import SequenceClassifier
from rnnkit.models.conditional import ConditionalGenerator
from rnnkit.models.forecaster import ForecastEnsemble, Forecaster
from rnnkit.models.language_model import LanguageModel
from rnnkit.models.recogniser import SpeechRecogniser
from rnnkit.models.regressor import SequenceRegressor
from rnnkit.models.seq2seq import Seq2Seq
from rnnkit.nn.attention import Attention
from rnnkit.nn.module import parameter_budget
from rnnkit.tasks import seq2seq as seq2seq_task
from rnnkit.tasks.language_modeling import load_language_model

# A small model of every registered class, with its options off their defaults where they
# change the parameters.
SMALL = {
    "RNN": lambda: rnnkit.RNN(3, 4, 2, nonlinearity="relu", bidirectional=True, seed=1),
    "LSTM": lambda: rnnkit.LSTM(3, 4, bidirectional=True, merge="sum", forget_bias=1.0, seed=2),
    "GRU": lambda: rnnkit.GRU(3, 4, 3, bias=False, dropout=0.5, init="xavier_orthogonal", seed=3),
    "Recurrent": lambda: rnnkit.Recurrent("rnn", 3, 4, 2, nonlinearity="relu", seed=4),
    "RecurrentCell": lambda: rnnkit.RecurrentCell("lstm", 3, 4, forget_bias=1.0, seed=5),
    "RNNCell": lambda: rnnkit.RNNCell(3, 4, nonlinearity="relu", init="identity", seed=4),
    "LSTMCell": lambda: rnnkit.LSTMCell(3, 4, dtype=np.float64, forget_bias=2.0, seed=5),
    "GRUCell": lambda: rnnkit.GRUCell(3, 4, bias=False, seed=6),
    "LanguageModel": lambda: LanguageModel(6, 4, 4, 2, "gru", 0.1, tie_weights=True, seed=7),
    "SequenceClassifier": lambda: SequenceClassifier(
        3, vocab_size=7, embedding_dim=3, hidden_size=4, bidirectional=True, pooling="max", seed=8
    ),
    "SequenceRegressor": lambda: SequenceRegressor(2, input_size=3, hidden_size=4, seed=9),
    "Forecaster": lambda: Forecaster(3, 2, hidden_size=4, num_layers=2, cell="lstm", seed=10),
    "ForecastEnsemble": lambda: ForecastEnsemble(2, 3, members=2, hidden_size=3, seed=11),
    "Seq2Seq": lambda: Seq2Seq(5, 6, 0, 1, 3, 4, cell="lstm", attention="bahdanau", seed=12),
    "ConditionalGenerator": lambda: ConditionalGenerator(3, 6, 0, 1, 3, 4, 2, seed=13),
    "SpeechRecogniser": lambda: SpeechRecogniser(
        4, input_size=3, stack=2, hidden_size=3, num_layers=2, cell="lstm", seed=14
    ),
}
# More layouts whose parameter counts ``reserve`` must work out right.
VARIANTS = {
    **SMALL,
    "LSTM-concat": lambda: rnnkit.LSTM(3, 4, 3, bidirectional=True, bias=False),
    "LanguageModel-untied": lambda: LanguageModel(6, 3, 4, 1, "rnn"),
    "Seq2Seq-luong": lambda: Seq2Seq(5, 6, 0, 1, 3, 4, 2, False, "rnn", "luong"),
    "Seq2Seq-none": lambda: Seq2Seq(5, 6, 0, 1, 3, 4, attention="none"),
    "Attention-dot": lambda: Attention(4, 4, "dot"),
    "Attention-general": lambda: Attention(3, 5, "general"),
    "Attention-bahdanau": lambda: Attention(3, 5, "bahdanau", attention_size=2),
    "Linear-no-bias": lambda: rnnkit.Linear(3, 5, bias=False),
    "Embedding": lambda: rnnkit.Embedding(7, 2),
}


def test_every_registered_class_has_a_small_model():
    assert set(SMALL) == set(models.registered())


@pytest.mark.parametrize("name", VARIANTS)
def test_reserved_counts_are_the_parameters_built(name):
    """Every module reserves, before allocating, exactly the bytes of parameters it then adds."""
    with parameter_budget(10**9) as budget:
        model = VARIANTS[name]()
    assert budget.used == sum(value.nbytes for value in model.params.values())
    with parameter_budget(budget.used - 1), pytest.raises(UserError, match="of tensors the model"):
        VARIANTS[name]()


def saved(name: str, tmp_path, extra=None) -> tuple[dict, dict]:
    """The arrays and JSON document of a saved small model of class ``name``."""
    path = tmp_path / f"{name}.safetensors"
    models.save(SMALL[name](), path, extra=extra)
    arrays, metadata = read_safetensors(path)
    return arrays, json.loads(metadata["rnnkit"])


def write(path, arrays: dict, document) -> None:
    path.unlink(missing_ok=True)
    write_safetensors(path, arrays, {"rnnkit": json.dumps(document)})


def refused(load, path) -> str:
    """The message of the UserError that ``load(path)`` raises: one line, naming the file."""
    with pytest.raises(UserError) as info:
        load(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message, message
    return message


# --- sizes: refused before they are allocated -------------------------------------------------

SIZES = {  # a language model's config key, the value, and how the message names it
    "hidden_size": (8000, "LSTM(4, 8,000, num_layers=1)"),
    "num_layers": (100_000, "num_layers=100,000"),
    "vocab_size": (10_000_000, "Embedding(10,000,000, 4)"),
    "embedding_dim": (10**400, "Embedding(5, about 10^400)"),
}


@pytest.mark.parametrize("key", SIZES)
def test_sizes_beyond_the_tensors_are_refused_with_little_memory(key, tmp_path):
    """A small model's config edited to ask for gigabytes (2-3 GB and 25-30 s before) is
    refused before the layer allocates: the file must hold every parameter."""
    path = tmp_path / "lm.safetensors"
    models.save(LanguageModel(5, 4, 4, 1, seed=0), path)
    arrays, metadata = read_safetensors(path)
    document = json.loads(metadata["rnnkit"])
    value, named = SIZES[key]
    document["config"][key] = value
    write(path, arrays, document)
    tracemalloc.start()
    try:
        message = refused(models.load, path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert named in message and "the 820 bytes of tensors the model file holds" in message
    assert peak < 50 * 2**20


def test_layer_too_large_for_the_machine_says_how_much_it_needs():
    with pytest.raises(UserError, match=r"would need about .*TiB, but this process may use"):
        rnnkit.LSTM(10, 10**6)  # 4e12 parameters


def test_ensemble_members_are_bounded_before_their_seeds_are_drawn():
    with pytest.raises(UserError, match="members must be .* <= 1000, got 1000000000000"):
        ForecastEnsemble(2, members=10**12)


# --- the config: types, keys, values ------------------------------------------------------------

HOSTILE = [None, True, -1, 0, 10**12, 10**400, 1e308, float("nan"), 0.5, "", "x", "lstm",
           "(99999999999,)f8", [], [1], {}, {"a": 1}]  # fmt: skip


@pytest.mark.filterwarnings("ignore:.*dropout acts between layers")
@pytest.mark.parametrize("name", SMALL)
def test_constructors_refuse_hostile_values_with_user_errors(name):
    """Any JSON value in any argument of a registered class builds it or raises UserError: no
    TypeError from a comparison, no MemoryError from "x" * 10**12, no NumPy error."""
    model = SMALL[name]()
    config = model.config()
    for key in [*config, "seed"]:
        for value in HOSTILE:
            try:
                with parameter_budget(10**4):
                    type(model)(**{**config, key: value})
            except UserError:
                pass


def test_a_config_must_come_back_unchanged(tmp_path):
    arrays, document = saved("LanguageModel", tmp_path)
    path = tmp_path / "bad.safetensors"
    cases = {
        "dropout": (lambda config: config.pop("dropout"), "lacks ['dropout']"),
        "seed": (lambda config: config.update(seed=3), "has keys ['seed']"),
        "evil": (lambda config: config.update(evil=1), "unexpected keyword argument 'evil'"),
        "vocab_size": (lambda config: config.pop("vocab_size"), "vocab_size"),
        "dtype": (lambda config: config.update(dtype="f4"), "dtype is 'f4', but a Language"),
        "tie_weights": (lambda config: config.update(tie_weights="no"), "tie_weights must be"),
        "cell": (lambda config: config.update(cell=["gru"]), "cell=a list of 1 items is not"),
    }
    for change, expected in cases.values():
        changed = json.loads(json.dumps(document))
        change(changed["config"])
        write(path, arrays, changed)
        assert expected in refused(models.load, path)


@pytest.mark.parametrize("name", SMALL)
def test_messages_show_at_most_a_little_of_a_value(name, tmp_path):
    arrays, document = saved(name, tmp_path)
    path = tmp_path / "bad.safetensors"
    for key in [*document["config"], "x" * 100_000]:
        changed = json.loads(json.dumps(document))
        changed["config"][key] = "y" * 100_000
        write(path, arrays, changed)
        assert len(refused(models.load, path)) < 1000
    for key in ("class", "version"):
        write(path, arrays, {**document, key: "y" * 100_000})
        assert len(refused(models.load, path)) < 1000


@st.composite
def mutations(draw):
    """(class name, where, how): one field of a saved document changed."""
    name = draw(st.sampled_from(sorted(SMALL)))
    where = draw(st.sampled_from(["config", "document"]))
    value = draw(
        st.none()
        | st.booleans()
        | st.integers(-(10**30), 10**30)
        | st.sampled_from([-1, 0, 1, 2, 10**12, 10**400, -(10**400)])
        | st.floats(allow_nan=True, allow_infinity=True)
        | st.sampled_from(["", "x", "lstm", "gru", "sum", "float64", "f8", "LSTM", "mean"])
        | st.lists(st.integers(0, 3), max_size=3)
        | st.dictionaries(st.sampled_from(["a", "hidden_size"]), st.integers(0, 3), max_size=2)
    )
    action = draw(st.sampled_from(["set", "set", "delete", "add"]))
    return name, where, action, draw(st.integers(0, 100)), value


@pytest.fixture(scope="module")
def documents(tmp_path_factory):
    folder = tmp_path_factory.mktemp("documents")
    return {name: saved(name, folder) for name in SMALL}


@pytest.mark.filterwarnings("ignore:.*dropout acts between layers")
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutation=mutations())
def test_any_changed_field_loads_or_is_refused(mutation, documents, tmp_path_factory):
    """One field of any registered class's saved document set to a wrong type, a huge or
    negative value, deleted, or added: the file loads or is refused with a UserError."""
    name, where, action, index, value = mutation
    arrays, document = documents[name]
    document = json.loads(json.dumps(document))
    target = document["config"] if where == "config" else document
    keys = sorted(target)
    key = keys[index % len(keys)] if action != "add" else "added"
    if action == "delete":
        del target[key]
    else:
        target[key] = value
    path = tmp_path_factory.getbasetemp() / "mutated.safetensors"
    write(path, arrays, document)
    try:
        model = models.load(path)
    except UserError as error:
        assert "\n" not in str(error)
    else:  # what loads is what the file says, not a coerced or defaulted reading of it
        assert json.loads(json.dumps(model.config())) == document["config"]


# --- the extras of language models and seq2seq models -------------------------------------------

VOCABULARY = {"level": "word", "tokens": ["<unk>", "a", "b", "c", "d"]}
BAD_VOCABULARIES = {
    "no-unk": ({"level": "word", "tokens": list("abcde")}, "needs the token '<unk>'"),
    "empty": ({"level": "char", "tokens": []}, "tokens is a list of 0 items"),
    "twice": ({"level": "char", "tokens": list("abcda")}, "no token twice"),
    "not-strings": ({"level": "char", "tokens": ["a", 1, "c", "d", "e"]}, "tokens[1] is 1"),
    "no-level": ({"tokens": list("abcde")}, "level is missing"),
    "level": ({"level": "byte", "tokens": list("abcde")}, "level is 'byte', not one of"),
    "a-list": (["a", "b"], "level is missing (its parent is not an object)"),
    "size": ({"level": "char", "tokens": list("abcdef")}, "has 6 tokens but the model predicts 5"),
}


@pytest.mark.parametrize("case", BAD_VOCABULARIES)
def test_language_model_vocabulary_is_checked_at_load(case, tmp_path):
    model = LanguageModel(5, 4, 4, 1, seed=0)
    path = tmp_path / "lm.safetensors"
    models.save(model, path, extra={"vocabulary": VOCABULARY})
    assert load_language_model(path)[1].tokens == VOCABULARY["tokens"]
    vocabulary, expected = BAD_VOCABULARIES[case]
    models.save(model, path, extra={"vocabulary": vocabulary})
    assert expected in refused(load_language_model, path)


def test_word_vocabulary_needs_unk():
    with pytest.raises(UserError, match="needs the token '<unk>'"):
        Vocabulary(["a", "b"], "word")
    assert Vocabulary.from_json(VOCABULARY).encode("a z").tolist() == [1, 0]


SEQ2SEQ_EXTRA = {
    "source_tokens": list("abcde"),
    "target_tokens": ["<s>", "</s>", "A", "B", "C", "D"],
    "data": {"kind": "tsv", "file": "pairs.tsv", "sha256": "0" * 64, "source_level": "char",
             "target_level": "space", "val_fraction": 0.1, "test_fraction": 0.1,
             "max_words": None, "seed": 0},
}  # fmt: skip
BAD_SEQ2SEQ = {
    "no-target-tokens": (lambda e: e.pop("target_tokens"), "target_tokens is missing"),
    "empty-targets": (lambda e: e.update(target_tokens=[]), "must be at least 6"),
    "short-sources": (lambda e: e["source_tokens"].pop(), "must be at least 5"),
    "twice": (lambda e: e["source_tokens"].__setitem__(0, "b"), "holds a token twice"),
    "start": (lambda e: e["target_tokens"].reverse(), "must start with '<s>' and '</s>'"),
    "not-strings": (lambda e: e["target_tokens"].__setitem__(3, 5), "target_tokens[3] is 5"),
    "no-data": (lambda e: e.pop("data"), "data is missing"),
    "level": (lambda e: e["data"].update(source_level=None), "data.source_level is missing"),
    "fraction": (lambda e: e["data"].update(test_fraction=-1), "each must be above 0"),
    "huge": (lambda e: e["data"].update(val_fraction=10**400), "val_fraction is 1000"),
    "seed": (lambda e: e["data"].update(seed="0"), "data.seed is '0', not a whole number"),
    "file": (lambda e: e["data"].update(file=["/etc/passwd"]), "data.file is a list"),
    "kind": (lambda e: e["data"].update(kind="passwd"), "data.kind is 'passwd', not one of"),
    "sha256": (lambda e: e["data"].update(sha256="x"), "not 64 hexadecimal digits"),
    "legacy-tsv": (lambda e: e.update(data={"tsv": 5}), "data.path is 5, not a string"),
}


@pytest.mark.parametrize("case", BAD_SEQ2SEQ)
def test_seq2seq_extra_is_checked_at_load_and_predict(case, tmp_path):
    model = Seq2Seq(5, 6, 0, 1, 3, 4, seed=0)
    path = tmp_path / "g2p.safetensors"
    models.save(model, path, extra=SEQ2SEQ_EXTRA)
    loaded, extra = seq2seq_task.load_seq2seq(path)
    assert seq2seq_task.predict(loaded, extra, "abc")[0] is not None
    change, expected = BAD_SEQ2SEQ[case]
    extra = json.loads(json.dumps(SEQ2SEQ_EXTRA))
    change(extra)
    models.save(model, path, extra=extra)
    assert expected in refused(seq2seq_task.load_seq2seq, path)
    with pytest.raises(UserError, match=expected.replace("[", r"\[").replace("(", r"\(")):
        seq2seq_task.predict(model, extra, "abc")


def test_seq2seq_evaluate_reads_no_path_from_the_model(tmp_path):
    """A seq2seq model trained on a TSV file remembers its name and sha256; evaluating it needs
    the file given with --tsv, so a model file cannot make rnnkit read (and quote) any file. An
    older file's "tsv" path is refused the same way, its base name kept to name it."""
    secret = tmp_path / "secret.tsv"
    secret.write_text("root:x:0:0\n")
    model = Seq2Seq(5, 6, 0, 1, 3, 4, seed=0)
    path = tmp_path / "g2p.safetensors"
    legacy = {**SEQ2SEQ_EXTRA, "data": {"tsv": str(secret), "source_level": "char",
              "target_level": "space", "val_fraction": 0.1, "test_fraction": 0.1,
              "max_words": None, "seed": 0}}  # fmt: skip
    for extra in (SEQ2SEQ_EXTRA, legacy):
        models.save(model, path, extra=extra)
        with pytest.raises(UserError, match="never reads a path stored in a model file") as info:
            seq2seq_task.evaluate(path)
        assert "root" not in str(info.value) and "give it with --tsv FILE" in str(info.value)
    assert seq2seq_task.load_seq2seq(path)[1]["data"]["file"] == "secret.tsv"
    assert seq2seq_task.predict(model, legacy, "abc")[0] is not None


def mutated(document, path: list, value):
    """A copy of the JSON ``document`` with the value at ``path`` (keys and list indices, taken
    modulo the sizes found) set to ``value``, or deleted when ``value`` is ``DELETE``."""
    document = json.loads(json.dumps(document))
    parent, key = None, None
    node = document
    for step in path:
        if not isinstance(node, dict | list) or not node:
            break
        keys = sorted(node) if isinstance(node, dict) else range(len(node))
        parent, key = node, list(keys)[step % len(keys)]
        node = node[key]
    if parent is None:
        return value
    if value == DELETE:
        del parent[key]
    else:
        parent[key] = value
    return document


DELETE = "<delete>"
VALUES = (
    st.none() | st.booleans() | st.integers(-(10**20), 10**20) | st.floats()  # NaN, inf too
    | st.sampled_from(["", "<unk>", "<s>", "char", "space", "word", DELETE, 10**400])
    | st.lists(st.sampled_from(["a", "<unk>", 1]), max_size=4) | st.just({})
)  # fmt: skip


@pytest.fixture(scope="module")
def task_models(tmp_path_factory):
    """The arrays and documents of a saved language model and seq2seq model, with extras."""
    folder = tmp_path_factory.mktemp("task_models")
    found = {}
    for kind, model, extra in (
        ("lm", LanguageModel(5, 4, 4, 1, seed=0), {"vocabulary": VOCABULARY}),
        ("seq2seq", Seq2Seq(5, 6, 0, 1, 3, 4, seed=0), SEQ2SEQ_EXTRA),
    ):
        models.save(model, folder / kind, extra=extra)
        arrays, metadata = read_safetensors(folder / kind)
        found[kind] = arrays, json.loads(metadata["rnnkit"])
    return found


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(["lm", "seq2seq"]),
    path=st.lists(st.integers(0, 10), min_size=1, max_size=3),
    value=VALUES,
)
def test_any_changed_extra_field_loads_and_predicts_or_is_refused(
    kind, path, value, task_models, tmp_path_factory
):
    """Any field of a language model's or seq2seq model's saved extra changed: loading it (and
    predicting with the seq2seq model) works or raises UserError."""
    arrays, document = task_models[kind]
    file = tmp_path_factory.getbasetemp() / "extra.safetensors"
    write(file, arrays, {**document, "extra": mutated(document["extra"], path, value)})
    try:
        if kind == "lm":
            model, vocabulary = load_language_model(file)
            assert len(vocabulary) == model.vocab_size
        else:
            model, extra = seq2seq_task.load_seq2seq(file)
            seq2seq_task.predict(model, extra, "abc", beam=2)
    except UserError as error:  # also: a source token the changed table lacks
        assert "\n" not in str(error)
