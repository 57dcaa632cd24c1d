"""The exceptions rnnkit raises for bad input, so that callers can tell them from its own bugs.

``UserError`` (a ``ValueError``) and ``UserTypeError`` (a ``TypeError`` too) mean that something
the caller gave (an argument, a file, a model, data) is wrong; the one-line message names the
problem and the fix. The ``rnnkit`` command turns them into one line on stderr and exit status 2.
Any other exception escaping rnnkit is a bug in rnnkit, and the command says so.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input: the message says what was expected, what came, and how to fix it."""


class UserTypeError(UserError, TypeError):
    """Bad input of the wrong type (also a ``TypeError``)."""
