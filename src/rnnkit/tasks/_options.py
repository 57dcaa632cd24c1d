"""Declared options: one declaration gives a task's option its default, its check, its
command-line flag and its help.

A task's options are a dataclass deriving from ``Options`` whose fields are made by ``option``
(or by the shared makers below, for the options every training run has). ``Options.check``
checks each field against its declaration, then the rules between fields
(``check_together``); ``add_arguments`` declares the fields on an argparse parser, and
``from_arguments`` reads them back into the dataclass. An option not given on the command line
is missing from the parsed namespace (its argparse default is ``SUPPRESS``), so that
``given_names`` tells the options the user typed from those left at their defaults (a resume takes
those from the run).
"""

from __future__ import annotations

import argparse
import math
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from rnnkit import _arguments
from rnnkit.errors import UserError
from rnnkit.io._schema import _shown


@dataclass(frozen=True)
class Spec:
    """How one option is checked and given on the command line.

    Checks: ``choices`` (a tuple, or a function returning one, read when checked), ``whole``
    (a whole number >= ``low``), or numeric bounds ``low``/``high`` (inclusive) and
    ``above``/``below`` (exclusive), or ``directory`` (a path that may not be a file). None is
    allowed when the default is None. ``example`` ends the error with "; try ...".

    Command line: ``--name`` with dashes, or ``flag``; ``parse`` turns the string into the value
    (derived from the check when not given); ``repeat`` takes the option several times into a
    tuple; a bool is a switch (``negatable``: with ``--no-...``); options sharing an
    ``exclusive`` group are mutually exclusive, and when none of them is given the dataclass
    defaults apply: exactly one of them set, or none where all of them default to None.
    """

    name: str
    default: object
    help: str = ""
    flag: str | None = None
    metavar: str | None = None
    choices: tuple | Callable[[], Sequence] | None = None
    whole: bool = False
    low: float | None = None
    high: float | None = None
    above: float | None = None
    below: float | None = None
    directory: bool = False
    example: str | None = None
    parse: Callable[[str], object] | None = None
    repeat: bool = False
    negatable: bool = False
    exclusive: str | None = None

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    def allowed(self) -> list:
        return list(self.choices() if callable(self.choices) else self.choices)

    def check(self, value) -> None:
        """UserError naming the option when ``value`` breaks its declaration."""
        if value is None and (self.default is None or self.exclusive):
            return  # an exclusive group's rule is checked by Options.check
        if self.choices is not None and value not in self.allowed():
            raise UserError(f"{self.name} must be one of {self.allowed()}, got {value!r}")
        if self.whole:
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= self.low):
                raise UserError(f"{self.name} must be a whole number >= {self.low}, got {value!r}")
        elif self._bounded() and not self._within(value):
            raise UserError(f"{self.name} must be {self._range()}, got {value}{self._try()}")
        if self.directory and Path(value).exists() and not Path(value).is_dir():
            raise UserError(
                f"{self.name} {value} is a file, not a directory; give another {self.cli_flag}"
            )

    def _bounded(self) -> bool:
        return any(bound is not None for bound in (self.low, self.high, self.above, self.below))

    def _within(self, value) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return (
            math.isfinite(value)
            and (self.low is None or value >= self.low)
            and (self.high is None or value <= self.high)
            and (self.above is None or value > self.above)
            and (self.below is None or value < self.below)
        )

    def _range(self) -> str:
        """The allowed values in words: "in [0, 1)" or "a finite number > 0"."""
        lower = self.low if self.low is not None else self.above
        upper = self.high if self.high is not None else self.below
        if upper is None:
            return f"a finite number {'>=' if self.low is not None else '>'} {lower:g}"
        opening = "[" if self.low is not None else "("
        closing = "]" if self.high is not None else ")"
        return f"in {opening}{lower:g}, {upper:g}{closing}"

    def _try(self) -> str:
        return f"; try {self.example}" if self.example else ""

    def argument(self) -> dict:
        """The keyword arguments of argparse's ``add_argument`` for this option; its help ends
        with the default when there is one to show. Not given, it is left out of the parsed
        namespace (the default is the dataclass's, applied by ``from_arguments``)."""
        settings = {"dest": self.name, "help": self._help(), "default": argparse.SUPPRESS}
        if isinstance(self.default, bool):
            action = argparse.BooleanOptionalAction if self.negatable else "store_true"
            return {**settings, "action": action}
        if self.metavar:
            settings["metavar"] = self.metavar
        if self.choices is not None:
            settings["choices"] = self.allowed()
        if self.repeat:
            return {**settings, "action": "append"}
        return {**settings, "type": self.parse or self._parser()}

    def _help(self) -> str | None:
        """The help, ending with the default unless there is none to show (None, an empty
        repeat, a switch that is off)."""
        hidden = self.default is None or self.default is False or self.default == ()
        if hidden:
            return self.help or None
        return f"{self.help} (default: {self.default})".lstrip()

    def _parser(self) -> Callable[[str], object] | None:
        if self.whole:
            return _arguments.positive_int if self.low >= 1 else _arguments.whole_number
        if isinstance(self.default, float) or self._bounded():
            return _arguments.number
        return None


def option(default, help: str = "", **declaration):
    """A dataclass field whose ``Spec`` (see there for ``declaration``) is kept in its metadata."""
    return field(default=default, metadata={"spec": (help, declaration)})


def specs(options_class) -> list[Spec]:
    """The declared options of an ``Options`` dataclass, in field order."""
    declared = []
    for item in fields(options_class):
        help, declaration = item.metadata["spec"]
        declared.append(Spec(item.name, item.default, help, **declaration))
    return declared


class Options:
    """Base of a task's options dataclass: ``check`` reads and writes nothing."""

    def check(self) -> None:
        """UserError naming the first option out of its range, then the first broken rule
        between options."""
        groups: dict[str, list[Spec]] = {}
        for spec in specs(type(self)):
            spec.check(getattr(self, spec.name))
            if spec.exclusive:
                groups.setdefault(spec.exclusive, []).append(spec)
        for group, members in groups.items():
            given = [spec for spec in members if getattr(self, spec.name) is not None]
            optional = all(spec.default is None for spec in members)  # none given: the defaults
            if len(given) > 1 or not (given or optional):
                names = " or ".join(spec.name for spec in members)
                values = " and ".join(f"{spec.name}={getattr(self, spec.name)}" for spec in members)
                needed = "at most" if optional else "exactly"
                raise UserError(
                    f"give {group} as {needed} one of {names}, got {values}; set the other to None"
                )
        self.check_together()

    def check_together(self) -> None:
        """The rules between options (none here; a task's options may add some)."""

    def resumed(self, saved: dict, given=None) -> Options:
        """These options for a resume of the run whose options were ``saved`` (as JSON): each
        option not in ``given`` (the names the user set; None: those that differ from their
        defaults) takes the run's value, but ``out`` and ``resume``. Setting one member of an
        exclusive group sets the group (``steps`` leaves ``epochs`` out). Names these options
        lack are left to the Trainer's comparison of the runs."""
        declared = specs(type(self))
        if given is None:
            given = {spec.name for spec in declared if getattr(self, spec.name) != spec.default}
        groups = {spec.exclusive for spec in declared if spec.name in given and spec.exclusive}
        kept = {*given, "out", "resume"}
        hints = typing.get_type_hints(type(self))
        taken = {}
        for spec in declared:
            if spec.name in saved and spec.name not in kept and spec.exclusive not in groups:
                value = _from_json(saved[spec.name])
                hint = hints[spec.name]
                if not _fits(value, hint):
                    wanted = hint.__name__ if isinstance(hint, type) else hint
                    raise UserError(f"{spec.name} is {_shown(value)}, not of type {wanted}")
                taken[spec.name] = value
        return replace(self, **taken)


def add_arguments(parser: argparse.ArgumentParser, declared: list[Spec]) -> None:
    """Declare ``declared`` on ``parser``, the members of an exclusive group in one group."""
    groups: dict[str, argparse._MutuallyExclusiveGroup] = {}
    for spec in declared:
        target = parser
        if spec.exclusive:
            if spec.exclusive not in groups:
                groups[spec.exclusive] = parser.add_mutually_exclusive_group()
            target = groups[spec.exclusive]
        target.add_argument(spec.cli_flag, **spec.argument())


def given_names(args: argparse.Namespace, options_class) -> set[str]:
    """The names of the options of ``options_class`` given in the parsed ``args``."""
    return {spec.name for spec in specs(options_class) if spec.name in args}


def from_arguments(args: argparse.Namespace, options_class):
    """The ``options_class`` instance the parsed ``args`` give: an option not given is its
    default, but a member of an exclusive group is None when another member is given."""
    declared = specs(options_class)
    named = given_names(args, options_class)
    groups = {spec.exclusive for spec in declared if spec.name in named and spec.exclusive}
    chosen = {}
    for spec in declared:
        if spec.name in named or spec.exclusive in groups:
            value = getattr(args, spec.name, None)
            chosen[spec.name] = tuple(value) if spec.repeat and value is not None else value
    return options_class(**chosen)


def _fits(value, hint) -> bool:
    """Whether ``value`` is of the annotated type ``hint``: bool, int (not a bool), float (an int
    too), str, ``tuple[X, ...]`` and unions such as ``int | None``."""
    if typing.get_origin(hint) is types.UnionType:
        return any(_fits(value, arm) for arm in typing.get_args(hint))
    if typing.get_origin(hint) is tuple:
        item = typing.get_args(hint)[0]
        return isinstance(value, tuple) and all(_fits(element, item) for element in value)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _from_json(value):
    """An option's value read back from JSON: a list was a tuple."""
    return tuple(value) if isinstance(value, list) else value
