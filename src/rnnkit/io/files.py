"""Files: only regular files are read, and writes are atomic (a reader sees the old file or the
new one, never a half-written one)."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
from pathlib import Path

from rnnkit.errors import UserError

_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def regular_file(name, option: str, wanted: str) -> Path:
    """``name`` as a Path when it names a regular file (a link to one is fine).

    Anything else is refused before it is opened: reading a FIFO or a device can block forever or
    never end. ``option`` says how the user gave the path ("--csv", "the model"); ``wanted`` what
    to give instead ("a CSV file").

    Raises:
        FileNotFoundError: nothing is at ``name`` (the message names ``option`` and ``wanted``).
        UserError: ``name`` is a directory, FIFO, device or socket.
    """
    path = Path(name)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"{option} {name}: no such file; give {wanted}") from None
    if not stat.S_ISREG(mode):
        kind = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
        raise UserError(f"{option} {name} is {kind}, not a regular file; give {wanted}")
    return path


TEMP_BYTES = 6  # random bytes in a temporary file's name: ".<name>.<12 hex digits>.tmp"


def leftover_temp_files(directory: Path, names: str) -> list[Path]:
    """The temporary files of ``atomic_write_bytes`` in ``directory`` (a kill during a write
    leaves one) whose target's name matches the regular expression ``names``."""
    if not directory.is_dir():
        return []
    pattern = re.compile(rf"^\.(?:{names})\.[0-9a-f]{{{2 * TEMP_BYTES}}}\.tmp$")
    return [path for path in directory.iterdir() if pattern.match(path.name)]


def utf8_text(content: bytes, option: str, name, encoding: str = "utf-8") -> str:
    """``content`` (the file ``name`` the user gave with ``option``) decoded as UTF-8
    (``encoding="utf-8-sig"`` also drops a byte-order mark); UserError naming the first bad byte
    otherwise."""
    try:
        return content.decode(encoding)
    except UnicodeDecodeError as error:
        raise UserError(
            f"{option} {name} is not UTF-8 text (byte {error.start}); convert it with iconv"
        ) from None


def atomic_write_bytes(path, data: bytes) -> None:
    """Replace the file at ``path`` with ``data`` (bytes-like) in one step.

    The data goes to a temporary file in the same directory, is flushed to disk, and is then
    renamed onto ``path``. On any error (or interrupt) the temporary file is removed and the
    old file at ``path``, if any, is untouched.

    Raises:
        ValueError: ``path`` is a directory.
        FileNotFoundError: the directory that should hold ``path`` does not exist.
        OSError: the write itself failed (disk full, no permission, ...); the message names
            ``path``.
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(
            f"cannot write {path}: it is a directory; give a file path inside it, "
            f"e.g. {path / 'model.safetensors'}"
        )
    directory = path.absolute().parent
    if not directory.is_dir():
        raise FileNotFoundError(
            f"cannot write {path}: the directory {directory} does not exist; create it first"
        )
    temp = directory / f".{path.name}.{secrets.token_hex(TEMP_BYTES)}.tmp"
    # Mode 0o666 lets the umask decide the permissions, as for any newly created file.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(temp, flags, 0o666)
    try:
        try:
            remaining = memoryview(data).cast("B")  # bytes, whatever the item size of data
            while remaining:
                remaining = remaining[os.write(fd, remaining) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except OSError as error:  # e.g. a full disk: name the file the user asked for
        with contextlib.suppress(FileNotFoundError):
            os.remove(temp)
        raise OSError(error.errno, f"cannot write {path}: {error.strerror}") from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temp)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: Path) -> None:
    """Flush the directory entry of a rename to disk, where the platform allows it.

    The new file is already in place; this only makes the rename survive a power cut, so
    platforms or file systems that cannot open or sync a directory (Windows) are skipped.
    """
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
