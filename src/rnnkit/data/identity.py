"""What a model file remembers of the data it was trained on: its identity, never a path to read.

A model file may come from anyone, so nothing in it chooses what rnnkit reads:

- a data set packaged with a registry package (the Rotten Tomatoes reviews, the Seattle weather)
  is remembered by its name (``kind``), found at run time in the installed package, and by the
  sha256 of the package's file, so that a changed package is reported;
- a user's file is remembered by its base name (for messages only: it is never opened) and the
  sha256 of its bytes. It is read only from a path the user types (``--csv``, ``--npz``); when
  that file's sha256 is the remembered one, it is the training data, whose test split can be
  rebuilt, under whatever name it now has.

An identity is a small JSON-able dict: ``{"kind": "weather", "sha256": ...}`` or ``{"kind":
"csv", "file": "x.csv", "sha256": ...}``, plus the columns a task read from a table.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import PurePath

from rnnkit.errors import UserError
from rnnkit.io._schema import Fields
from rnnkit.io.files import regular_file


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def read_user_file(name, option: str, wanted: str, kind: str) -> tuple[bytes, dict]:
    """The bytes of the regular file ``name`` the user gave with ``option``, and its identity
    (``kind``, base name, sha256); one-line errors say what to give (``wanted``) instead."""
    path = regular_file(name, option, wanted)
    content = path.read_bytes()
    return content, {"kind": kind, "file": path.name, "sha256": sha256(content)}


def saved_data(fields: Fields, packaged: tuple[str, ...], users: tuple[str, ...]) -> dict:
    """The identity and split fractions a model saved as its ``data``, checked.

    ``packaged`` names the packaged data sets and ``users`` the kinds of user files the model's
    task reads. Returns ``{"kind", "sha256", "val_fraction", "test_fraction"}`` and, for a user's
    file, its ``"file"`` name. Files of rnnkit before identities hold no sha256 and, for a user's
    file, its ``path``: only the path's base name is kept, to name the file in messages.
    """
    fields.get("data", dict)
    kind = fields.get("data.kind", str, choices=packaged + users)
    identity = {"kind": kind, "sha256": fields.get("data.sha256", str, optional=True)}
    if kind in users:
        name = fields.get("data.file", str, low=1, high=4096, optional=True)
        if name is None:  # an older rnnkit saved the path: its base name names the file
            name = fields.get("data.path", str, low=1, high=4096)
        elif identity["sha256"] is None:
            fields.fail("data.sha256", "is missing")
        identity["file"] = PurePath(name).name
    if identity["sha256"] is not None and not re.fullmatch("[0-9a-f]{64}", identity["sha256"]):
        fields.fail("data.sha256", f"is {identity['sha256'][:20]!r}, not 64 hexadecimal digits")
    val, test = fields.get("data.val_fraction", float), fields.get("data.test_fraction", float)
    if not (val > 0 and test > 0 and val + test < 1):
        fields.fail(
            "data.val_fraction and data.test_fraction",
            f"are {val} and {test}: each must be above 0, and their sum below 1",
        )
    return {**identity, "val_fraction": val, "test_fraction": test}


def same_data(remembered: dict, identity: dict) -> bool:
    """Whether the data just read (its ``identity``) is the data a model ``remembered``: the same
    kind, content and columns, whatever the file's name. A packaged data set remembered without
    a sha256 (by an older rnnkit) is taken to be itself."""
    if remembered["sha256"] is None:
        return "file" not in remembered and remembered["kind"] == identity["kind"]
    return all(remembered.get(key) == value for key, value in identity.items() if key != "file")


def not_read(remembered: dict, option: str) -> UserError:
    """The refusal to look for a user's file named in a model: it must be given with ``option``."""
    digest = "" if remembered["sha256"] is None else f" (sha256 {remembered['sha256'][:8]}...)"
    return UserError(
        f"this model was trained on your file {remembered['file']!r}{digest}; rnnkit never reads "
        f"a path stored in a model file: give it with {option} FILE"
    )


def changed(description: str, remembered: dict, identity: dict, options: str) -> UserError:
    """The refusal to rebuild a test split from a packaged data set whose file has changed."""
    return UserError(
        f"{description} is not the data the model was trained on (sha256 "
        f"{identity['sha256'][:8]}... now, {remembered['sha256'][:8]}... then): its test split "
        f"cannot be rebuilt; install the package version it was trained with, or give data "
        f"with {options}"
    )
