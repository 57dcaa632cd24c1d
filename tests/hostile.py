"""Hostile model files for the fuzz tests and ``benchmarks/fuzz_cli.py``.

``train_seeds(folder)`` trains a tiny model of every kind the command serves (and writes the data
it was trained on); ``variants(path, rng)`` yields edited copies of a model file: a JSON field of
its document set to a wrong type, a huge, negative or empty value, a path to a file it must never
read, removed or joined by an extra key; a tensor's header entry edited; bytes flipped; the file
cut short. ``commands(seed, path)`` lists every command line that loads a model, for one file.
"""

from __future__ import annotations

import csv
import json
import shutil
import struct
from pathlib import Path

import numpy as np

from rnnkit.cli import main

#: The kinds of model file ``train_seeds`` makes (a training checkpoint among them).
KINDS = ("lm", "lm-word", "classify", "classify-npz", "forecast", "seq2seq", "checkpoint")
#: A file no command may read: a model that names it must not get its contents printed.
CANARY = "CANARY-7f3a9c-never-print-me"

TEXT = "ROMEO:\nBut soft, what light through yonder window breaks?\nJULIET:\nO Romeo.\n\n" * 6
VALUES = [
    None, True, False, 0, -1, -5, 1, 7, 10**12, 2**63, 1e308, -1e308, 0.5, float("nan"),
    float("inf"), "", "x", "<unk>", "lstm", [], [1, 2], ["a", "a"], {}, {"a": 1}, [[]] * 3,
    list(range(2000)), "A" * 100_000,
]  # fmt: skip


def train_seeds(folder: Path) -> dict[str, dict]:
    """Tiny trained models of every kind, with the data the commands need: ``{kind: {"model":
    path, "data": [args that give its data], "inputs": [args of predict]}}``."""
    folder.mkdir(parents=True, exist_ok=True)
    text = folder / "play.txt"
    text.write_text(TEXT, encoding="utf-8")
    reviews = folder / "reviews.csv"
    _write_csv(reviews, ("review", "sentiment"), _reviews())
    series = folder / "series.csv"
    _write_csv(series, ("day", "temp", "rain"), _series())
    pairs = folder / "pairs.tsv"
    pairs.write_text("".join(f"{w}\t{' '.join(reversed(w))}\n" for w in _words()), "utf-8")
    npz = folder / "sequences.npz"
    rng = np.random.default_rng(0)
    np.savez(npz, X=rng.standard_normal((40, 5, 2)), lengths=rng.integers(1, 6, 40),
             y=rng.integers(0, 2, 40))  # fmt: skip
    small = ["--hidden", "8", "--steps", "2"]
    runs = {
        "lm": (["train", "--text", text, "--embedding", "4", "--batch", "2", "--seq-len", "8",
                "--validate-every", "1", "--checkpoint-every", "1", *small],
               ["--text", text], []),
        "lm-word": (["train", "--text", text, "--level", "word", "--embedding", "4", "--batch",
                     "2", "--seq-len", "4", "--validate-every", "1", *small], ["--text", text], []),
        "classify": (["train", "classify", "--csv", reviews, "--text-col", "review",
                      "--label-col", "sentiment", "--embedding", "4", "--min-count", "1", *small],
                     ["--csv", reviews, "--text-col", "review", "--label-col", "sentiment"],
                     ["--text", "a good film"]),
        "classify-npz": (["train", "classify", "--npz", npz, *small], ["--npz", npz],
                         ["--npz", npz]),
        "forecast": (["train", "forecast", "--csv", series, "--target", "temp", "--date-col",
                      "day", "--window", "4", "--season", "10", *small], ["--csv", series],
                     ["--csv", series]),
        "seq2seq": (["train", "seq2seq", "--tsv", pairs, "--embedding", "4", "--batch", "4",
                     "--validate-every", "1", "--checkpoint-every", "1", *small],
                    ["--tsv", pairs], ["--input", "abc"]),
    }  # fmt: skip
    seeds = {}
    for kind, (train, data, inputs) in runs.items():
        out = folder / kind
        status = main([str(arg) for arg in [*train, "--out", out]])
        assert status in (0, None), f"training the {kind} seed model failed"
        seeds[kind] = {"model": out / "model.safetensors", "data": data, "inputs": inputs}
    checkpoints = sorted((folder / "lm" / "checkpoints").glob("step-*.safetensors"))
    seeds["checkpoint"] = {"model": checkpoints[-1], "data": ["--text", text], "inputs": [],
                           "train": [str(arg) for arg in runs["lm"][0]]}  # fmt: skip
    return seeds


def commands(seed: dict, path: Path) -> list[list[str]]:
    """Every command line that loads the model at ``path``: with and without data; for a
    checkpoint also ``rnnkit train ... --resume`` from a run folder (``path`` with the suffix
    ``.run``, made afresh here) whose only checkpoint it is."""
    model = str(path)
    data, inputs = [str(arg) for arg in seed["data"]], [str(arg) for arg in seed["inputs"]]
    text = [arg for arg in data if arg.endswith(".txt")] or [str(path)]
    lines = [
        ["generate", model, "--length", "5", "--seed", "0"],
        ["evaluate", model],
        ["evaluate", model, *data],
        ["predict", model],
        ["predict", model, *inputs],
        ["diagnose", model, "--text", text[-1], "--length", "10"],
    ]
    if "train" in seed:
        run = path.with_suffix(".run")
        shutil.rmtree(run, ignore_errors=True)
        (run / "checkpoints").mkdir(parents=True)
        shutil.copyfile(path, run / "checkpoints" / seed["model"].name)
        lines.append([*seed["train"], "--resume", "--out", str(run)])
    return lines


def under(path: str, named: set[str]) -> bool:
    """Whether the (resolved) ``path`` is one of ``named`` or inside a folder among them."""
    return any(path == name or path.startswith(name.rstrip("/") + "/") for name in named)


def read_parts(path: Path) -> tuple[dict, bytes]:
    """A safetensors file's decoded header and its data buffer."""
    raw = Path(path).read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + length]), raw[8 + length :]


def join_parts(header: dict, data: bytes) -> bytes:
    """A safetensors file from a header (any JSON value) and a data buffer."""
    text = json.dumps(header).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def variants(path: Path, rng: np.random.Generator, secret: Path):
    """Endless ``(description, file bytes)`` edits of the model file at ``path``; ``secret`` is
    a file whose path the edits plant in the document (it holds ``CANARY``)."""
    header, data = read_parts(path)
    raw = Path(path).read_bytes()
    planted = [str(secret), f"{'../' * 12}{str(secret).lstrip('/')}", "/etc/passwd"]
    edits = (_field_edit, _field_edit, _field_edit, _tensor_edit, _byte_edit)
    while True:
        edit = edits[rng.integers(len(edits))]
        yield edit(header, data, raw, rng, planted)


def _field_edit(header, data, raw, rng, planted):
    """A field of the JSON document (config, extra, or the checkpoint's state) set, removed or
    joined by an extra key; a stored path is often pointed at the secret."""
    metadata = dict(header["__metadata__"])
    document = json.loads(metadata["rnnkit"])
    metadata["rnnkit"] = json.dumps(_edited(document, rng, planted))
    return f"field: {_edited.last}", join_parts({**header, "__metadata__": metadata}, data)


def _edited(document, rng, planted):
    """``document`` with one edit; ``_edited.last`` describes it."""
    paths = list(_paths(document))
    named = [path for path in paths if path and "path" in str(path[-1])]
    values = [*VALUES, *planted]
    value = values[rng.integers(len(values))]
    where = paths[rng.integers(len(paths))]
    action = rng.integers(4)
    if named and rng.random() < 0.2:  # a stored data path pointed at the secret
        where, value, action = named[rng.integers(len(named))], planted[0], 3
    if not where:
        _edited.last = "the whole document replaced"
        return value
    parent, target = _at(document, where[:-1]), _at(document, where)
    if action == 0 and isinstance(parent, dict):
        del parent[where[-1]]
        _edited.last = f"removed {_dotted(where)}"
    elif action == 1 and isinstance(target, dict):
        target["unexpected_key"] = value
        _edited.last = f"extra key in {_dotted(where)}"
    elif action == 2 and isinstance(target, int | float):
        parent[where[-1]] = target * [-1, 1000, 10**9, 0][rng.integers(4)]
        _edited.last = f"{_dotted(where)} scaled"
    else:
        parent[where[-1]] = value
        _edited.last = f"{_dotted(where)} = {repr(value)[:30]}"
    return document


def _tensor_edit(header, data, raw, rng, planted):
    """One tensor's header entry edited: its shape, dtype or offsets, or the entry dropped."""
    names = [name for name in header if name != "__metadata__"]
    name = names[rng.integers(len(names))]
    entry = dict(header[name])
    edited = {key: value for key, value in header.items() if key != name}
    action = rng.integers(4)
    if action == 0:
        entry["shape"] = [dim * 2 + 1 for dim in entry["shape"]] or [1]
    elif action == 1:
        entry["shape"] = [10**9, 0]
    elif action == 2:
        entry["dtype"] = ["F64", "F16", "I64", "BOOL", "U8", "Q9"][rng.integers(6)]
    if action != 3:
        edited[name] = entry
    return f"tensor {name}: edit {action}", join_parts(edited, data)


def _byte_edit(header, data, raw, rng, planted):
    """A flipped byte (header or weights), or the file cut short."""
    buffer = bytearray(raw)
    if rng.random() < 0.3:
        cut = int(rng.integers(len(buffer)))
        return f"cut at byte {cut}", bytes(buffer[:cut])
    position = int(rng.integers(len(buffer)))
    buffer[position] ^= 1 << int(rng.integers(8))
    return f"bit flipped at byte {position}", bytes(buffer)


def _paths(value, prefix=()):
    """Every path (tuple of keys and indices) into a JSON value, the root included; long lists
    contribute their first items only."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value[:3]):
            yield from _paths(item, (*prefix, index))


def _at(value, path):
    for part in path:
        value = value[part]
    return value


def _dotted(path) -> str:
    return ".".join(str(part) for part in path)


def _write_csv(path: Path, header, rows) -> None:
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)


def _reviews():
    rng = np.random.default_rng(0)
    words = ["the", "film", "a", "story", "was", "plot", "good", "bad", "great", "dull"]
    return [(" ".join(rng.choice(words, 5)), ["good", "bad"][i % 2]) for i in range(60)]


def _series():
    days = np.datetime64("2020-01-01") + np.arange(120)
    temp = 12 + 8 * np.sin(np.arange(120) / 10)
    return [[str(day), f"{value:.2f}", "0.5"] for day, value in zip(days, temp, strict=True)]


def _words():
    rng = np.random.default_rng(0)
    return sorted({"".join(rng.choice(list("abcde"), rng.integers(2, 5))) for _ in range(80)})
