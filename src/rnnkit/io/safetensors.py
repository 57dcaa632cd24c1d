"""The safetensors file format, read and written without the ``safetensors`` package.

Layout of a file (https://github.com/huggingface/safetensors, "Format"):

- 8 bytes: ``N``, the header length, an unsigned little-endian 64-bit integer;
- N bytes: the header, a UTF-8 JSON object mapping each tensor name to
  ``{"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}``, plus an optional
  ``"__metadata__"`` object of string -> string;
- the rest: the data buffer. ``[begin, end)`` are byte offsets into it; the tensors' ranges
  tile it exactly (no gaps, no overlaps). Data is C order, little-endian.

The writer orders tensors as the reference implementation does (largest item size first, then
by name, so that each tensor starts at a multiple of its item size) and pads the header with
spaces to a multiple of 8 bytes. It also stores the SHA-256 of the data buffer in the metadata
(``"rnnkit.sha256"``, hex); the reader checks it when present, so a byte changed inside the
weights is refused instead of loading silently (files from elsewhere, without it, still load),
and returns the metadata without it. The reader trusts nothing: every inconsistency is a
one-line ValueError naming the file, and nothing in a file is ever executed. A file whose header
cannot be read is named for what its first bytes say it is (a text, a zip archive, a NumPy
file) rather than called a damaged safetensors file.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
import struct

import numpy as np

from rnnkit.errors import UserError, UserTypeError
from rnnkit.io.files import atomic_write_bytes

DTYPES = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"),
    "U32": np.dtype("<u4"),
    "U16": np.dtype("<u2"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
NAMES = {dtype.newbyteorder("="): name for name, dtype in DTYPES.items()}
METADATA = "__metadata__"
CHECKSUM = "rnnkit.sha256"  # metadata key: the SHA-256 of the data buffer, in hex
FIELDS = {"dtype", "shape", "data_offsets"}
MAX_HEADER = 100_000_000  # bytes; the reference implementation's limit
DAMAGED = "the file is truncated, damaged or not a safetensors file: re-save it"
SIGNATURES = {  # the first bytes of files often given where a safetensors file belongs
    b"PK\x03\x04": "a zip archive (a PyTorch .pt or .pth file is one)",
    b"\x93NUMPY": "a NumPy .npy file",
    b"\x80": "a Python pickle (an older PyTorch file is one)",
    b"\x89HDF": "an HDF5 file (a Keras .h5 file is one)",
}
SNIFFED = 512  # bytes read from the start of a file to tell what it is


def write_safetensors(path, arrays: dict, metadata: dict | None = None) -> None:
    """Write ``arrays`` (name -> NumPy array) and ``metadata`` (str -> str) to ``path`` atomically.

    Any array layout or byte order is accepted; the file holds C-order little-endian data, and
    its metadata also holds the data's checksum (``CHECKSUM``).

    Raises:
        TypeError: a name or metadata entry is not a string, or a dtype has no safetensors code
            (supported: float16/32/64, int8-64, uint8-64, bool).
        ValueError: a tensor is named ``"__metadata__"``, a metadata key is ``CHECKSUM``, or
            ``path`` is a directory.
    """
    tensors = _checked_arrays(arrays)
    metadata = _checked_metadata({} if metadata is None else metadata)
    # The data: largest item size first, then by name, so that every tensor starts aligned.
    order = sorted(tensors, key=lambda name: (-tensors[name].dtype.itemsize, name))
    data = [_little_endian(tensors[name]).tobytes() for name in order]
    checksum = hashlib.sha256()
    for chunk in data:
        checksum.update(chunk)
    header = {METADATA: {**metadata, CHECKSUM: checksum.hexdigest()}}
    entries, offset = {}, 0
    for name in order:
        array = tensors[name]
        entries[name] = {
            "dtype": NAMES[array.dtype],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + array.nbytes],
        }
        offset += array.nbytes
    header.update(sorted(entries.items()))  # the header lists the tensors by name
    header_bytes = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    header_bytes += b" " * (-len(header_bytes) % 8)  # pad so the data buffer starts 8-aligned
    atomic_write_bytes(path, b"".join([struct.pack("<Q", len(header_bytes)), header_bytes, *data]))


def read_safetensors(
    path, wanted: str = "a .safetensors file"
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The arrays (name -> writable NumPy array, names sorted) and metadata ({} if none; without
    the checksum, which is checked when the file has one). ``wanted`` says what to give instead
    of something that is no safetensors file at all (a folder, a text).

    Raises:
        ValueError: the file is not a valid safetensors file, or its data does not match its
            checksum; the message names the problem.
        UserError: the path is a directory, FIFO or device (never read: it may never end).
        OSError: the file cannot be opened (missing, no permission).
    """
    # O_NONBLOCK: opening a FIFO must not wait for a writer; it is then refused as not a file.
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):  # open() would refuse a folder vaguely
        os.close(descriptor)
        raise UserError(f"{path} is not a regular file; give {wanted}")
    with open(descriptor, "rb") as file:
        try:
            header = _read_header(file, path)  # checked before the data is read
        except UserError:
            file.seek(0)
            looks = _looks_like(file.read(SNIFFED))
            if looks is None:  # nothing else: a damaged safetensors file
                raise
            raise UserError(f"{path} is not a safetensors file ({looks}); give {wanted}") from None
        buffer = file.read()
    metadata = _metadata(header.pop(METADATA, {}), path)
    entries = {name: _entry(name, entry, path) for name, entry in header.items()}
    _check_tiling(entries, len(buffer), path)
    checksum = metadata.pop(CHECKSUM, None)
    if checksum is not None and checksum != hashlib.sha256(buffer).hexdigest():
        raise UserError(
            f"{path}: the tensors do not match the checksum stored in the file: it is damaged; "
            "re-save or re-download it"
        )
    arrays = {}
    for name in sorted(entries):
        dtype, shape, (begin, end) = entries[name]
        data = memoryview(buffer)[begin:end]
        if dtype == np.bool_ and np.frombuffer(data, dtype=np.uint8).max(initial=0) > 1:
            raise _damaged(path, f"BOOL tensor {name!r} holds bytes other than 0 and 1")
        try:
            array = np.frombuffer(data, dtype=dtype).reshape(shape)
        except (ValueError, OverflowError) as error:  # a size-0 shape with a huge axis
            raise _damaged(path, f"tensor {name!r} has shape {list(shape)}: {error}") from None
        arrays[name] = array.astype(dtype.newbyteorder("="))  # a writable copy in native order
    return arrays, metadata


def _checked_arrays(arrays: dict) -> dict[str, np.ndarray]:
    if not isinstance(arrays, dict):
        raise UserTypeError(f"arrays must be a dict of name -> array, got {type(arrays).__name__}")
    tensors = {}
    for name, value in arrays.items():
        if not isinstance(name, str):
            raise UserTypeError(f"tensor names must be strings, got {name!r}; use str(name)")
        if name == METADATA:
            raise UserError(f"{METADATA!r} is reserved for metadata; rename that tensor")
        array = np.asarray(value)
        if array.dtype.newbyteorder("=") not in NAMES:
            raise UserTypeError(
                f"tensor {name!r} has dtype {array.dtype}, which safetensors files cannot hold "
                f"here; convert it to one of {sorted(str(dtype) for dtype in NAMES)}"
            )
        tensors[name] = array.astype(array.dtype.newbyteorder("="), copy=False)
    return tensors


def _checked_metadata(metadata: dict) -> dict[str, str]:
    if not isinstance(metadata, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in metadata.items()
    ):
        raise UserTypeError(
            "metadata must be a dict of str -> str; encode other values, e.g. with json.dumps"
        )
    if CHECKSUM in metadata:
        raise UserError(f"{CHECKSUM!r} is reserved for the data's checksum; rename that key")
    return dict(metadata)


def _little_endian(array: np.ndarray) -> np.ndarray:
    """The array as C-ordered little-endian data (a copy only when needed)."""
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))


def _damaged(path, problem: str, fix: str = DAMAGED) -> UserError:
    return UserError(f"{path} is not a valid safetensors file ({problem}); {fix}")


def _read_header(file, path) -> dict:
    """The decoded JSON header of the open ``file``, which is left at the data buffer."""
    size = os.fstat(file.fileno()).st_size
    prefix = file.read(8)
    if len(prefix) < 8:
        raise _damaged(path, f"it has {size} bytes, fewer than the 8-byte header length")
    (length,) = struct.unpack("<Q", prefix)
    if length > size - 8:
        raise _damaged(path, f"header length {length} exceeds file size {size}")
    if length > MAX_HEADER:
        raise _damaged(path, f"header length {length} exceeds the {MAX_HEADER}-byte limit")
    text = file.read(length)
    try:
        header = json.loads(text.decode("utf-8"), object_pairs_hook=_no_repeats)
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
        raise _damaged(path, f"header is not valid UTF-8 JSON: {error}") from None
    if not isinstance(header, dict):
        raise _damaged(path, f"header is a JSON {type(header).__name__}, not an object")
    return header


def _looks_like(start: bytes) -> str | None:
    """What a file that begins with the bytes ``start`` is ("it starts like text"), or None when
    they do not say. A safetensors file is never taken for text: its header length has zero
    bytes."""
    if not start:
        return "it is empty"
    for signature, kind in SIGNATURES.items():
        if start.startswith(signature):
            return f"it starts like {kind}"
    try:
        text = start.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.reason != "unexpected end of data":  # else a character cut where the bytes end
            return None
        text = start[: error.start].decode("utf-8")
    if not text or not all(char.isprintable() or char in "\t\n\r\f" for char in text):
        return None
    return "it starts like JSON text" if text.lstrip()[:1] in ("{", "[") else "it starts like text"


def _no_repeats(pairs: list) -> dict:
    """A JSON object as a dict; ValueError if a key repeats (the format forbids it)."""
    result = dict(pairs)
    if len(result) != len(pairs):
        raise UserError("a key appears twice in one object")
    return result


def _metadata(metadata, path) -> dict[str, str]:
    if not isinstance(metadata, dict) or not all(
        isinstance(value, str) for value in metadata.values()
    ):
        raise _damaged(path, f"{METADATA!r} must be an object of string values")
    return metadata


def _entry(name: str, entry, path) -> tuple[np.dtype, tuple, tuple[int, int]]:
    """One tensor's checked (dtype, shape, (begin, end))."""
    if not isinstance(entry, dict) or set(entry) != FIELDS:
        raise _damaged(path, f"the entry of tensor {name!r} must have exactly {sorted(FIELDS)}")
    code, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if code not in DTYPES:
        raise _damaged(
            path,
            f"tensor {name!r} has unknown dtype {code!r}; known: {list(DTYPES)}",
            "convert the tensor to one of those dtypes before saving",
        )
    if not _counts(shape):
        raise _damaged(path, f"tensor {name!r} has shape {shape!r}, not a list of sizes >= 0")
    if not _counts(offsets) or len(offsets) != 2 or offsets[0] > offsets[1]:
        raise _damaged(
            path, f"tensor {name!r} has data_offsets {offsets!r}, not [begin, end], begin <= end"
        )
    dtype = DTYPES[code]
    expected = math.prod(shape) * dtype.itemsize
    if offsets[1] - offsets[0] != expected:
        raise _damaged(
            path,
            f"tensor {name!r} of dtype {code} and shape {shape} needs {expected} bytes, "
            f"but its data_offsets {offsets} span {offsets[1] - offsets[0]}",
        )
    return dtype, tuple(shape), (offsets[0], offsets[1])


def _counts(value) -> bool:
    """True for a list of non-negative ints (JSON booleans are not counts)."""
    return isinstance(value, list) and all(
        isinstance(item, int) and not isinstance(item, bool) and item >= 0 for item in value
    )


def _check_tiling(entries: dict, buffer_size: int, path) -> None:
    """ValueError unless the tensors' byte ranges cover the data buffer exactly once."""
    position = 0
    for name, (_, _, (begin, end)) in sorted(entries.items(), key=lambda item: item[1][2]):
        if end > buffer_size:
            raise _damaged(
                path, f"tensor {name!r} ends at data byte {end}, past the buffer's {buffer_size}"
            )
        if begin != position:
            problem = "overlaps the previous tensor" if begin < position else "leaves a gap"
            raise _damaged(path, f"tensor {name!r} starts at data byte {begin} and {problem}")
        position = end
    if position != buffer_size:
        raise _damaged(
            path, f"{buffer_size - position} bytes after the last tensor belong to no tensor"
        )
