"""Checks of JSON read from files (model configs and extras, checkpoint states).

Nothing in a file is trusted: each value is read through ``Fields.get``, which names the field by
its dotted path and the file in a one-line ``UserError`` when it is missing, of the wrong type,
or out of range::

    fields = Fields(extra, f"{path}: its saved extra", "re-train the model")
    horizon = fields.get("layout.horizon", int, low=1, high=10_000)
    classes = fields.get("classes", list, items=str, low=2)  # low/high bound a list's length
"""

from __future__ import annotations

import sys

from rnnkit.errors import UserError

_NAMES = {int: "a whole number", float: "a number", str: "a string", bool: "true or false",
          list: "a list", dict: "an object"}  # fmt: skip


class Fields:
    """Typed, bounded reads from one JSON ``document``.

    Args:
        document: the decoded JSON (any value; a non-object fails at the first ``get``).
        where: names the document in messages, e.g. "model.safetensors: its saved extra".
        fix: what the user can do, e.g. "re-train the model"; ends every message.
    """

    def __init__(self, document, where: str, fix: str) -> None:
        self.document, self.where, self.fix = document, where, fix

    def get(self, path: str, kind: type, *, low=None, high=None, choices=None, items=None,
            optional: bool = False):  # fmt: skip
        """The value at the dotted ``path``, checked.

        ``kind`` is int, float (ints accepted, finite only), str, bool, list or dict; ``low`` and
        ``high`` bound a number, or a list's, dict's or string's length; ``choices`` lists the
        allowed values; ``items`` the kind of every element of a list. A missing value (or
        None) is an error unless ``optional``, when it is returned as None.
        """
        value = self.document
        for part in path.split("."):
            if not isinstance(value, dict):
                return self.fail(path, "is missing (its parent is not an object)")
            value = value.get(part)
        if value is None:
            return None if optional else self.fail(path, "is missing")
        if not _is(value, kind):
            return self.fail(path, f"is {_shown(value)}, not {_NAMES[kind]}")
        if kind is list and items is not None:
            bad = next((index for index, item in enumerate(value) if not _is(item, items)), None)
            if bad is not None:
                return self.fail(f"{path}[{bad}]", f"is {_shown(value[bad])}, not {_NAMES[items]}")
        size = len(value) if kind in (list, dict, str) else value
        what = "its length" if kind in (list, dict, str) else "it"
        if low is not None and size < low:
            return self.fail(path, f"is {_shown(value)}: {what} must be at least {low}")
        if high is not None and size > high:
            return self.fail(path, f"is {_shown(value)}: {what} must be at most {high}")
        if choices is not None and value not in choices:
            return self.fail(path, f"is {_shown(value)}, not one of {list(choices)}")
        return value

    def fail(self, path: str, problem: str):
        """Raise the one-line UserError for the field at ``path``."""
        raise UserError(f"{self.where}: {path} {problem}; {self.fix}")


def _is(value, kind: type) -> bool:
    if isinstance(value, bool):
        return kind is bool
    if kind is float:  # finite and within a float's range: math.isfinite(10**400) raises
        return isinstance(value, int | float) and abs(value) <= sys.float_info.max
    return isinstance(value, kind)


def _shown(value) -> str:
    """A short, safe rendering of a value for a message (never a whole document)."""
    if isinstance(value, list | dict):
        return f"{'a list' if isinstance(value, list) else 'an object'} of {len(value)} items"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
