"""Files: safetensors reading and writing (checked against the real ``safetensors`` package),
model save/load, damaged files (a one-line ValueError naming the file, never anything else)
and atomic writes (a failed write leaves the old file and no debris)."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import struct
import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import rnnkit
from rnnkit.errors import UserError
from rnnkit.io import models
from rnnkit.io.files import atomic_write_bytes
from rnnkit.io.safetensors import read_safetensors, write_safetensors
from rnnkit.models.language_model import LanguageModel
from rnnkit.train.checkpoints import write_checkpoint

SAFETENSORS_MISSING = "interoperability tests need the safetensors package: pip install safetensors"

# safetensors' dtype codes and the NumPy dtypes they stand for, written out independently.
CODES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U64": np.uint64,
    "U32": np.uint32,
    "U16": np.uint16,
    "U8": np.uint8,
    "BOOL": np.bool_,
}
SHAPES = {"matrix": (3, 4), "vector": (5,), "scalar": (), "empty": (0, 3)}


@pytest.fixture(scope="module")
def safetensors_numpy():
    """``safetensors.numpy``, or a skip with the install command when it is missing."""
    return pytest.importorskip("safetensors.numpy", reason=SAFETENSORS_MISSING)


def sample(dtype, shape: tuple, rng: np.random.Generator) -> np.ndarray:
    """Random values over the dtype's whole range; floats include NaN, -inf and -0.0."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return np.asarray(rng.random(shape) < 0.5)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return np.asarray(rng.integers(info.min, info.max, shape, dtype, endpoint=True))
    values = np.asarray(rng.standard_normal(shape) * 1e3, dtype=dtype)
    flat = values.reshape(-1)  # (size,), a view
    flat[:3] = [np.nan, -np.inf, -0.0][: flat.size]
    return values


def samples(dtype, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {name: sample(dtype, shape, rng) for name, shape in SHAPES.items()}


def every_dtype(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Every shape of SHAPES in every dtype of CODES, named like ``F32.matrix``."""
    return {
        f"{code}.{name}": array
        for code, dtype in CODES.items()
        for name, array in samples(dtype, rng).items()
    }


def assert_identical(read: dict, written: dict) -> None:
    """Same names, dtypes, shapes and bytes (so NaN payloads and -0.0 count)."""
    assert sorted(read) == sorted(written)
    for name, array in written.items():
        array = np.asarray(array)
        assert read[name].dtype == array.dtype.newbyteorder("="), name
        assert read[name].shape == array.shape, name
        assert read[name].tobytes() == np.ascontiguousarray(array, read[name].dtype).tobytes()


def header_of(content: bytes) -> tuple[str, int]:
    """The raw header text of a safetensors file and where its data buffer starts."""
    (length,) = struct.unpack("<Q", content[:8])
    return content[8 : 8 + length].decode("utf-8"), 8 + length


def rewrite(path, content: bytes) -> None:
    """Write ``content`` as a new file at ``path``: far faster on ext4 than overwriting, which
    flushes the old blocks to disk first."""
    path.unlink(missing_ok=True)
    path.write_bytes(content)


def assert_rejected(read, path) -> str:
    """``read(path)`` raises exactly UserError (a ValueError), with one line naming the file."""
    with pytest.raises(ValueError) as info:
        read(path)
    message = str(info.value)
    assert type(info.value) is UserError, f"{type(info.value).__name__}: {message}"
    assert "\n" not in message and str(path) in message, message
    return message


# --- the safetensors format -----------------------------------------------------------------


@pytest.mark.parametrize("code", CODES)
def test_every_dtype_round_trips_exactly(code, tmp_path):
    arrays = samples(CODES[code], np.random.default_rng(0))
    metadata = {"note": "héllo", "empty": ""}
    path = tmp_path / "t.safetensors"
    write_safetensors(path, arrays, metadata)
    read, read_metadata = read_safetensors(path)
    assert_identical(read, arrays)
    assert read_metadata == metadata
    assert f'"dtype":"{code}"' in header_of(path.read_bytes())[0]
    for array in read.values():
        array[...] = 0  # writable, and not a view of anything shared
    assert read_safetensors(path)[0]["matrix"].tobytes() == arrays["matrix"].tobytes()


def test_layout_follows_the_format(tmp_path):
    rng = np.random.default_rng(1)
    arrays = {
        "z_half": sample(np.float16, (3,), rng),
        "a_byte": sample(np.uint8, (5,), rng),
        "m_double": sample(np.float64, (2, 2), rng),
        "b_big_endian": np.arange(6, dtype=">i4").reshape(2, 3),  # (2, 3)
        "f_fortran": np.asfortranarray(sample(np.float32, (3, 2), rng)),
        "s_strided": sample(np.int16, (8,), rng)[::3],
    }
    path = tmp_path / "t.safetensors"
    write_safetensors(path, arrays, {"k": "v"})
    content = path.read_bytes()
    text, start = header_of(content)
    assert start % 8 == 0 and text.rstrip(" ").endswith("}") and len(text.rstrip(" ")) > start - 16
    header = json.loads(text)
    assert list(header) == ["__metadata__", *sorted(arrays)]
    for name, array in arrays.items():
        begin, end = header[name]["data_offsets"]
        little = np.ascontiguousarray(array, array.dtype.newbyteorder("<"))
        assert content[start + begin : start + end] == little.tobytes(), name
        assert (start + begin) % array.dtype.itemsize == 0, f"{name} is not aligned"
        assert header[name]["shape"] == list(array.shape)
    assert_identical(read_safetensors(path)[0], arrays)


@pytest.mark.parametrize(
    ("arrays", "metadata", "error"),
    [
        ({1: np.zeros(2)}, None, TypeError),
        ({"__metadata__": np.zeros(2)}, None, ValueError),
        ({"text": np.array(["a"])}, None, TypeError),
        ({"complex": np.zeros(2, np.complex64)}, None, TypeError),
        ({"objects": np.array([None])}, None, TypeError),
        ([np.zeros(2)], None, TypeError),
        ({"x": np.zeros(2)}, {"k": 1}, TypeError),
        ({"x": np.zeros(2)}, {2: "v"}, TypeError),
        ({"x": np.zeros(2)}, {"rnnkit.sha256": "0" * 64}, ValueError),
    ],
    ids=[
        "int-name",
        "reserved-name",
        "str",
        "complex",
        "object",
        "list",
        "value",
        "key",
        "checksum-key",
    ],
)
def test_writer_rejects_what_the_format_cannot_hold(arrays, metadata, error, tmp_path):
    path = tmp_path / "t.safetensors"
    with pytest.raises(error) as info:
        write_safetensors(path, arrays, metadata)
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_real_package_reads_our_files(safetensors_numpy, tmp_path):
    from safetensors import safe_open

    arrays = every_dtype(np.random.default_rng(2))
    metadata = {"rnnkit": '{"x": [1, 2]}', "other": "ünïcode"}
    path = tmp_path / "ours.safetensors"
    write_safetensors(path, arrays, metadata)
    assert_identical(safetensors_numpy.load_file(path), arrays)
    content = path.read_bytes()
    checksum = hashlib.sha256(content[header_of(content)[1] :]).hexdigest()  # of the data buffer
    with safe_open(path, framework="numpy") as file:
        assert file.metadata() == {**metadata, "rnnkit.sha256": checksum}


def test_we_read_real_package_files(safetensors_numpy, tmp_path):
    arrays = every_dtype(np.random.default_rng(3))
    path = tmp_path / "theirs.safetensors"
    safetensors_numpy.save_file(arrays, path, metadata={"format": "np", "ключ": "значение"})
    read, metadata = read_safetensors(path)
    assert_identical(read, arrays)
    assert metadata == {"format": "np", "ключ": "значение"}
    safetensors_numpy.save_file({"x": np.ones(2)}, path)
    assert read_safetensors(path)[1] == {}


NAMES = st.text(st.characters(exclude_categories=("Cs",)), max_size=6).filter(
    lambda name: name != "__metadata__"
)
ARRAYS = st.sampled_from(list(CODES.values())).flatmap(
    lambda dtype: hnp.arrays(dtype, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0))
)
METADATA = st.none() | st.dictionaries(NAMES, st.text(st.characters(exclude_categories=("Cs",))))


@settings(max_examples=60, deadline=None)
@given(arrays=st.dictionaries(NAMES, ARRAYS, max_size=5), metadata=METADATA)
def test_any_arrays_round_trip_exactly(arrays, metadata, tmp_path_factory):
    path = tmp_path_factory.getbasetemp() / "property.safetensors"
    write_safetensors(path, arrays, metadata)
    read, read_metadata = read_safetensors(path)
    assert_identical(read, arrays)
    assert read_metadata == (metadata or {})


@settings(max_examples=60, deadline=None)
@given(arrays=st.dictionaries(NAMES, ARRAYS, max_size=5))
def test_real_package_reads_any_arrays_we_write(arrays, safetensors_numpy, tmp_path_factory):
    path = tmp_path_factory.getbasetemp() / "property-theirs.safetensors"
    write_safetensors(path, arrays)
    assert_identical(safetensors_numpy.load_file(path), arrays)


# --- damaged and foreign safetensors files ----------------------------------------------------


def raw_file(header: str | bytes, data: bytes = b"") -> bytes:
    """A file with this exact header text (not necessarily valid) and data buffer."""
    header = header.encode("utf-8") if isinstance(header, str) else header
    return struct.pack("<Q", len(header)) + header + data


def tensor(dtype: str, shape, offsets) -> dict:
    return {"dtype": dtype, "shape": shape, "data_offsets": offsets}


def two(first: list, second: list) -> str:
    return json.dumps({"a": tensor("F32", [1], first), "b": tensor("F32", [1], second)})


BAD_FILES = {
    "empty": b"",
    "seven-bytes": b"\x01" * 7,
    "zero-header": struct.pack("<Q", 0) + b"{}",
    "header-huge": struct.pack("<Q", 1234567890) + b"{}",
    "header-max": struct.pack("<Q", 2**64 - 1) + b"{}",
    "npy": None,  # filled in below: a NumPy .npy file
    "zip": b"PK\x03\x04" + bytes(range(60)),
    "not-utf8": raw_file(b"\xff\xfe{}"),
    "not-json": raw_file("{'a': 1}"),
    "json-list": raw_file("[]"),
    "deep-nesting": raw_file("[" * 100_000),
    "huge-digits": raw_file('{"a": {"dtype": "U8", "shape": [' + "9" * 5000 + "]}}"),
    "duplicate": raw_file(
        '{"a": '
        + json.dumps(tensor("U8", [1], [0, 1]))
        + ', "a": '
        + json.dumps(tensor("U8", [1], [0, 1]))
        + "}",
        b"\x00",
    ),  # fmt: skip
    "past-buffer": raw_file(json.dumps({"a": tensor("F32", [2], [0, 8])}), b"\x00" * 4),
    "overlap": raw_file(two([0, 4], [2, 6]), b"\x00" * 6),
    "gap": raw_file(two([0, 4], [8, 12]), b"\x00" * 12),
    "trailing": raw_file(json.dumps({"a": tensor("F32", [1], [0, 4])}), b"\x00" * 8),
    "reversed": raw_file(json.dumps({"a": tensor("F32", [1], [4, 0])}), b"\x00" * 4),
    "negative": raw_file(json.dumps({"a": tensor("F32", [1], [-4, 0])}), b"\x00" * 4),
    "float-offsets": raw_file(json.dumps({"a": tensor("F32", [1], [0.0, 4.0])}), b"\x00" * 4),
    "bool-offsets": raw_file(json.dumps({"a": tensor("BOOL", [1], [False, True])}), b"\x01"),
    "three-offsets": raw_file(json.dumps({"a": tensor("U8", [1], [0, 1, 1])}), b"\x01"),
    "byte-count": raw_file(json.dumps({"a": tensor("F32", [3], [0, 8])}), b"\x00" * 8),
    "unknown-dtype": raw_file(json.dumps({"a": tensor("BF16", [1], [0, 2])}), b"\x00" * 2),
    "negative-shape": raw_file(json.dumps({"a": tensor("U8", [-1], [0, 0])})),
    "string-shape": raw_file(json.dumps({"a": tensor("U8", "1", [0, 1])}), b"\x00"),
    "huge-empty-shape": raw_file(json.dumps({"a": tensor("U8", [0, 2**63], [0, 0])})),
    "missing-field": raw_file(json.dumps({"a": {"dtype": "U8", "data_offsets": [0, 1]}}), b"\0"),
    "extra-field": raw_file(json.dumps({"a": {**tensor("U8", [1], [0, 1]), "x": 1}}), b"\0"),
    "entry-not-object": raw_file(json.dumps({"a": 5})),
    "metadata-number": raw_file(json.dumps({"__metadata__": {"k": 1}})),
    "metadata-list": raw_file(json.dumps({"__metadata__": ["k"]})),
    "bool-byte-2": raw_file(json.dumps({"a": tensor("BOOL", [1], [0, 1])}), b"\x02"),
}
_npy = io.BytesIO()
np.save(_npy, np.arange(10))
BAD_FILES["npy"] = _npy.getvalue()


@pytest.mark.parametrize("name", BAD_FILES)
def test_bad_file_gives_one_line_value_error(name, tmp_path):
    path = tmp_path / f"{name}.safetensors"
    path.write_bytes(BAD_FILES[name])
    assert_rejected(read_safetensors, path)
    assert_rejected(models.load, path)


def test_header_length_past_the_end_names_both_sizes(tmp_path):
    path = tmp_path / "t.safetensors"
    path.write_bytes(BAD_FILES["header-huge"])
    message = assert_rejected(read_safetensors, path)
    assert "header length 1234567890 exceeds file size 10" in message
    assert "re-save" in message


@pytest.mark.parametrize(
    ("content", "looks"),
    [
        (b"ROMEO: But soft, what light\n", "it starts like text"),
        (("€" * 200).encode(), "it starts like text"),  # a character cut at the 512th byte
        (b'  {"loss": 1.5}', "it starts like JSON text"),
        (b"", "it is empty"),
        (
            b"PK\x03\x04" + bytes(60),
            "it starts like a zip archive (a PyTorch .pt or .pth file is one)",
        ),
        (BAD_FILES["npy"], "it starts like a NumPy .npy file"),
    ],
    ids=["text", "text-cut", "json", "empty", "zip", "npy"],
)
def test_a_file_that_is_no_safetensors_is_named_for_what_it_starts_like(content, looks, tmp_path):
    path = tmp_path / "play.txt"
    path.write_bytes(content)
    message = assert_rejected(read_safetensors, path)
    assert message == f"{path} is not a safetensors file ({looks}); give a .safetensors file"
    message = assert_rejected(models.load, path)
    assert f"({looks}); give a model file: the model.safetensors that 'rnnkit train'" in message
    assert "re-save" not in message  # nothing was ever saved there


def test_a_damaged_safetensors_file_is_not_taken_for_text(tmp_path):
    path = tmp_path / "model.safetensors"
    rnnkit.save(rnnkit.GRU(3, 4), path)
    path.write_bytes(path.read_bytes()[:-5])  # truncated: its header length has zero bytes
    assert "is not a valid safetensors file" in assert_rejected(models.load, path)


def test_a_folder_given_as_a_model_is_one_line(tmp_path):
    message = assert_rejected(models.load, tmp_path)
    assert message.endswith("is not a regular file; give a model file: the model.safetensors "
                            "that 'rnnkit train' wrote (or its run folder) or a file saved by "
                            "rnnkit.save")  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(header=st.binary(max_size=200), data=st.binary(max_size=16), prefix=st.booleans())
def test_random_bytes_never_raise_anything_but_value_error(header, data, prefix, tmp_path_factory):
    path = tmp_path_factory.getbasetemp() / "random.safetensors"
    rewrite(path, raw_file(header, data) if prefix else header + data)
    try:
        read_safetensors(path)
    except ValueError as error:
        assert type(error) is UserError and "\n" not in str(error)


# --- models ------------------------------------------------------------------------------------

LAYERS = {
    "RNN": lambda: rnnkit.RNN(3, 4, 2, nonlinearity="relu", bidirectional=True, seed=1),
    "LSTM": lambda: rnnkit.LSTM(3, 4, bidirectional=True, merge="sum", forget_bias=1.0, seed=2),
    "LSTM-float64": lambda: rnnkit.LSTM(3, 4, 2, batch_first=True, dtype="float64", seed=3),
    "LSTM-proj": lambda: rnnkit.LSTM(3, 4, 2, bidirectional=True, proj_size=2, seed=8),
    "GRU": lambda: rnnkit.GRU(3, 4, 2, bias=False, dropout=0.5, init="xavier_orthogonal", seed=4),
    "RNNCell": lambda: rnnkit.RNNCell(3, 4, nonlinearity="relu", init="identity", seed=5),
    "LSTMCell": lambda: rnnkit.LSTMCell(3, 4, dtype=np.float64, forget_bias=2.0, seed=6),
    "GRUCell": lambda: rnnkit.GRUCell(3, 4, bias=False, seed=7),
}


def test_every_builtin_layer_is_registered_and_tested():
    built = {type(build()).__name__ for build in LAYERS.values()}
    assert built == {"RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"}
    assert built <= set(models.registered())


def outputs(model, x: np.ndarray):
    """Inference outputs as a flat list of arrays (a cell gets x[0]: one step of (B, I))."""
    if isinstance(model, rnnkit.RNNCell | rnnkit.LSTMCell | rnnkit.GRUCell):
        result = model(x[0])
    else:
        result = model(x, lengths=np.array([5, 2]) if not model.batch_first else None)
    flat = []
    for part in result if isinstance(result, tuple) else (result,):
        flat.extend(part if isinstance(part, tuple) else (part,))
    return flat


@pytest.mark.parametrize("name", LAYERS)
def test_saved_layer_loads_identical(name, tmp_path):
    model = LAYERS[name]()
    path = tmp_path / "model.safetensors"
    models.save(model, path)
    loaded = models.load(path)
    assert type(loaded) is type(model)
    assert loaded.config() == model.config()
    assert_identical(loaded.state_dict(), model.state_dict())
    x = np.random.default_rng(8).standard_normal((5, 2, 3))  # (T, B, I), or (B, T, I)
    for got, expected in zip(outputs(loaded, x), outputs(model, x), strict=True):
        assert got.dtype == expected.dtype and np.array_equal(got, expected)


def test_a_projected_lstm_keeps_proj_size_and_an_lstm_without_saves_no_proj_size(tmp_path):
    """proj_size is in the config when set, and absent otherwise: files saved before LSTM had
    the option (no proj_size key) still load."""
    assert LAYERS["LSTM-proj"]().config()["proj_size"] == 2
    models.save(LAYERS["LSTM-proj"](), tmp_path / "proj.safetensors")
    loaded = models.load(tmp_path / "proj.safetensors")
    assert loaded.proj_size == 2 and loaded.params["weight_hr_l1_reverse"].shape == (2, 4)
    assert "proj_size" not in LAYERS["LSTM"]().config()
    assert "proj_size" not in LAYERS["LSTMCell"]().config()


def test_saved_model_is_read_by_real_package(safetensors_numpy, tmp_path):
    from safetensors import safe_open

    model = LAYERS["LSTM"]()
    path = tmp_path / "model.safetensors"
    models.save(model, path, extra={"vocab": ["a", "é"]})
    assert_identical(safetensors_numpy.load_file(path), model.state_dict())
    with safe_open(path, framework="numpy") as file:
        document = json.loads(file.metadata()["rnnkit"])
    assert document == {
        "format": "rnnkit-model",
        "version": 1,
        "class": "LSTM",
        "config": model.config(),
        "extra": {"vocab": ["a", "é"]},
    }


@pytest.mark.parametrize(
    "extra",
    [None, {"vocab": ["<pad>", "é", "\n"], "scale": [0.5, 2.0], "nested": {"ok": True}}, [1, "a"]],
)
def test_extra_round_trips(extra, tmp_path):
    path = tmp_path / "model.safetensors"
    models.save(LAYERS["GRUCell"](), path, extra=extra)
    model, loaded_extra = models.load_with_extra(path)
    assert isinstance(model, rnnkit.GRUCell)
    assert loaded_extra == extra


def test_save_refuses_what_it_cannot_load_back(tmp_path):
    class Unregistered(rnnkit.LSTM):
        pass

    path = tmp_path / "model.safetensors"
    with pytest.raises(ValueError, match="not a registered model class"):
        models.save(Unregistered(3, 4), path)
    with pytest.raises(TypeError, match="JSON-able"):
        models.save(LAYERS["GRU"](), path, extra={"scale": np.ones(2)})
    with pytest.raises(TypeError, match="JSON-able"):
        models.save(LAYERS["GRU"](), path, extra={"scale": float("nan")})
    with pytest.raises(ValueError, match="is a directory") as info:
        models.save(LAYERS["GRU"](), tmp_path)
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


class Scale(rnnkit.Module):
    """A registered toy module: y = x * weight."""

    def __init__(self, size: int, dtype: str = "float32") -> None:
        super().__init__()
        self._add_param("weight", np.full(size, 2.0, dtype=dtype))

    def config(self) -> dict:
        return {"size": self.params["weight"].size, "dtype": self.dtype.name}


@pytest.fixture
def registry(monkeypatch):
    """A private copy of the registry, so registrations in a test do not leak."""
    monkeypatch.setattr(models, "_registry", dict(models._registry))


def test_registered_class_round_trips(registry, tmp_path):
    assert models.register(Scale) is Scale
    model = Scale(3)
    model.params["weight"][...] = [1.0, -2.5, 3.0]
    models.save(model, tmp_path / "scale.safetensors")
    loaded = models.load(tmp_path / "scale.safetensors")
    assert isinstance(loaded, Scale) and np.array_equal(loaded.params["weight"], [1.0, -2.5, 3.0])


def test_register_rejects_non_modules_and_name_clashes(registry):
    with pytest.raises(TypeError, match="Module subclass"):
        models.register(dict)
    models.register(models.register(Scale))  # the same class again is fine
    clash = type("Scale", (Scale,), {})
    with pytest.raises(ValueError, match="already registered"):
        models.register(clash)


def test_the_built_in_classes_load_without_being_imported_first(tmp_path):
    """Importing rnnkit imports no model class (the built-in ones are a table read on first
    use, not registered by importing them), and a fresh process loads any of them all the same."""
    path = tmp_path / "model.safetensors"
    rnnkit.save(LanguageModel(6, 3, 4, 1, "rnn", seed=0), path)
    code = (
        "import sys, rnnkit\n"
        "print([name for name in sys.modules if name.startswith('rnnkit.models')])\n"
        f"print(type(rnnkit.load({str(path)!r})).__name__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split("\n")[:2] == ["[]", "LanguageModel"]


@pytest.fixture
def saved(tmp_path):
    """A saved bidirectional LSTM: (its arrays, its rnnkit JSON document)."""
    path = tmp_path / "good.safetensors"
    models.save(LAYERS["LSTM"](), path, extra={"k": 1})
    arrays, metadata = read_safetensors(path)
    return arrays, json.loads(metadata["rnnkit"])


def _drop(mapping: dict, key: str) -> None:
    del mapping[key]


# name: (damage(arrays, document) changes them in place or returns the metadata text, message)
BAD_MODELS = {
    "no-metadata": (lambda a, d: None, "is not an rnnkit model"),
    "metadata-not-json": (lambda a, d: "{oops", "not valid JSON"),
    "document-list": (lambda a, d: json.dumps([d]), "format='rnnkit-model'"),
    "wrong-format": (lambda a, d: d.update(format="other"), "format='rnnkit-model'"),
    "newer-version": (lambda a, d: d.update(version=2), "version 2"),
    "no-config": (lambda a, d: _drop(d, "config"), "lacks ['config']"),
    "unregistered": (lambda a, d: d.update({"class": "os.system"}), "known: ["),
    "class-list": (lambda a, d: d.update({"class": ["LSTM"]}), "not registered"),
    "config-list": (lambda a, d: d.update(config=[3, 4]), "not an object"),
    "unknown-argument": (lambda a, d: d["config"].update(evil=1), "does not build a LSTM"),
    "bad-size": (lambda a, d: d["config"].update(hidden_size=-1), "does not build a LSTM"),
    "bad-dtype": (lambda a, d: d["config"].update(dtype="object"), "does not build a LSTM"),
    "missing-tensor": (lambda a, d: _drop(a, "weight_hh_l0"), "of tensors the model file holds"),
    "fewer-tensors": (lambda a, d: d["config"].update(bidirectional=False), "unexpected ['"),
    "extra-tensor": (lambda a, d: a.update(spare=np.zeros(2)), "unexpected ['spare']"),
    "wrong-shape": (lambda a, d: d["config"].update(hidden_size=3), "needs float32 (12, 3)"),
    "wrong-dtype": (lambda a, d: d["config"].update(dtype="float64"), "288 float64 parameters"),
    "nan-weight": (lambda a, d: a["bias_ih_l0"].fill(np.nan), "NaN"),
}


@pytest.mark.parametrize("name", BAD_MODELS)
def test_bad_model_file_gives_one_line_value_error(name, saved, tmp_path):
    arrays, document = saved
    damage, expected = BAD_MODELS[name]
    text = damage(arrays, document) or json.dumps(document)
    metadata = None if name == "no-metadata" else {"rnnkit": text}
    path = tmp_path / "bad.safetensors"
    write_safetensors(path, arrays, metadata)
    assert expected in assert_rejected(models.load, path)


@pytest.fixture
def model_file(tmp_path):
    """The bytes of a saved two-layer GRU."""
    path = tmp_path / "good.safetensors"
    models.save(LAYERS["GRU"](), path)
    return path.read_bytes()


def test_truncated_at_any_byte_is_rejected(model_file, tmp_path):
    path = tmp_path / "cut.safetensors"
    for cut in range(len(model_file)):
        rewrite(path, model_file[:cut])
        assert_rejected(models.load, path)


def test_flipped_header_bytes_are_rejected_or_load(model_file, tmp_path):
    """A flipped bit in the header either breaks the file (ValueError) or still describes a
    consistent model (e.g. dropout 0.5 -> 0.4); nothing else may happen."""
    _, start = header_of(model_file)
    path = tmp_path / "flipped.safetensors"
    rejected = 0
    for position in range(8, start):
        for bit in (0x01, 0x20, 0x80):
            content = bytearray(model_file)
            content[position] ^= bit
            rewrite(path, content)
            try:
                models.load(path)
            except ValueError as error:
                assert type(error) is UserError and "\n" not in str(error), str(error)
                rejected += 1
    assert rejected > 0.9 * 3 * (start - 8)
    flipped = bytearray(model_file)
    flipped[8] ^= 0x01  # '{' -> 'z'
    path.write_bytes(flipped)
    assert "not valid UTF-8 JSON" in assert_rejected(models.load, path)


def without_checksum(content: bytes) -> bytes:
    """The file ``content`` with its header rewritten without the "rnnkit.sha256" entry."""
    header, start = header_of(content)
    header = json.loads(header)
    del header["__metadata__"]["rnnkit.sha256"]
    text = json.dumps(header).encode("utf-8")
    return raw_file(text + b" " * (-len(text) % 8), content[start:])


def test_flipped_data_bytes_are_rejected(model_file, tmp_path):
    """Every byte of the weights is covered by the checksum: a changed one, even one that
    leaves a finite weight, is refused; a file without a checksum (written elsewhere) loads."""
    _, start = header_of(model_file)
    path = tmp_path / "flipped.safetensors"
    for position in range(start, len(model_file)):
        content = bytearray(model_file)
        content[position] ^= 0x01
        rewrite(path, content)
        message = assert_rejected(models.load, path)
        assert "the tensors do not match the checksum stored in the file: it is damaged" in message
    rewrite(path, without_checksum(model_file))
    assert models.load(path).config() == LAYERS["GRU"]().config()


def test_a_checkpoint_given_as_a_model_is_named_as_one(tmp_path):
    arrays = {f"model/{name}": value for name, value in LAYERS["GRU"]().state_dict().items()}
    path = write_checkpoint(tmp_path / "checkpoints", 200, arrays, {"step": 200}, keep=2)
    message = assert_rejected(models.load, path)
    assert "is a training checkpoint, not a model" in message and "--resume" in message


# --- atomic writes ---------------------------------------------------------------------------


def test_atomic_write_replaces_with_ordinary_permissions(tmp_path):
    path = tmp_path / "data.bin"
    atomic_write_bytes(path, b"first")
    atomic_write_bytes(path, bytearray(b"second"))
    assert path.read_bytes() == b"second"
    reference = tmp_path / "reference.bin"
    reference.write_bytes(b"")
    assert path.stat().st_mode == reference.stat().st_mode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.bin", "reference.bin"]


def test_atomic_write_needs_an_existing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="create it first"):
        atomic_write_bytes(tmp_path / "missing" / "data.bin", b"x")


@pytest.mark.parametrize("old", [b"old model", None], ids=["replace", "create"])
def test_failed_rename_leaves_the_old_file_and_no_temp(old, monkeypatch, tmp_path):
    path = tmp_path / "model.safetensors"
    if old is not None:
        path.write_bytes(old)

    def failing_replace(source, target):
        raise OSError(errno.EXDEV, "simulated failure of os.replace")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="simulated"):
        models.save(LAYERS["RNNCell"](), path)
    assert [p.name for p in tmp_path.iterdir()] == ([path.name] if old is not None else [])
    assert old is None or path.read_bytes() == old


@pytest.mark.parametrize(
    "failure",
    [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()],
    ids=["disk-full", "interrupt"],
)
def test_write_failing_midway_leaves_the_old_file_and_no_temp(failure, monkeypatch, tmp_path):
    path = tmp_path / "model.safetensors"
    models.save(LAYERS["RNNCell"](), path)
    old = path.read_bytes()
    real_write = os.write
    written = []

    def write_half_then_fail(fd, data):
        if written:
            raise failure
        written.append(real_write(fd, bytes(data[: len(data) // 2])))
        return written[-1]

    monkeypatch.setattr(os, "write", write_half_then_fail)
    with pytest.raises(type(failure)):
        models.save(LAYERS["LSTM"](), path)
    monkeypatch.undo()
    assert written and written[0] > 0
    assert path.read_bytes() == old
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    assert isinstance(models.load(path), rnnkit.RNNCell)


def test_loading_repeats_no_warning_of_the_constructor(tmp_path):
    with pytest.warns(UserWarning, match="dropout acts between layers"):
        model = rnnkit.LSTM(2, 3, dropout=0.5, seed=0)
    rnnkit.save(model, tmp_path / "lstm.safetensors")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert rnnkit.load(tmp_path / "lstm.safetensors").config() == model.config()


@pytest.mark.parametrize("cell", rnnkit.cells.names())
def test_a_layer_and_a_cell_of_any_registered_cell_save_and_load(cell, tmp_path):
    layer = rnnkit.Recurrent(cell, 3, 4, num_layers=2, bidirectional=True, seed=0)
    step = rnnkit.RecurrentCell(cell, 3, 4, seed=0)
    for module, name in ((layer, "layer"), (step, "cell")):
        rnnkit.save(module, tmp_path / f"{name}.safetensors")
        loaded = rnnkit.load(tmp_path / f"{name}.safetensors")
        assert type(loaded) is type(module) and loaded.config() == module.config()
        assert loaded.config()["cell"] == cell
        for key, value in module.state_dict().items():
            np.testing.assert_array_equal(loaded.state_dict()[key], value)
