"""The ``rnnkit`` command: its subcommands come from the modules that own them.

    rnnkit train [TASK] [options]        train a model of a registered task (rnnkit train --help)
    rnnkit evaluate MODEL [data]         score a trained model (its test split when it can)
    rnnkit predict MODEL [data]          what a trained model predicts
    rnnkit generate MODEL --prime TEXT   continue a text with a trained language model
    rnnkit diagnose [options]            gradient norms through time of a fresh model
    rnnkit bench [--quick] [--json F]    speed against PyTorch's CPU RNNs, side by side

Errors in what the user gave (options, files, models), a file the system cannot read or write, and
too little memory end the command with one line on stderr and exit status 2, before anything is
written. Anything else is a bug in rnnkit: one line that says so, and exit status 1. ``--debug``
(or RNNKIT_DEBUG=1) shows the traceback instead in both cases.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys

from rnnkit import tasks
from rnnkit._command import Command
from rnnkit._environment import tune_process
from rnnkit.errors import UserError

FIRST_STEPS = """first steps:
  rnnkit train              train a language model on Shakespeare's plays and print a sample
  rnnkit train --help       the applications, one line each; rnnkit train TASK --help: options"""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage block), with exit status 2, and
    whose every (sub)command takes ``--debug``."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS,
            help="show the traceback of an error (or RNNKIT_DEBUG=1)",
        )  # fmt: skip

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _commands() -> list[Command]:
    from rnnkit.bench.command import BENCH
    from rnnkit.diagnostics.command import DIAGNOSE
    from rnnkit.export.command import EXPORT
    from rnnkit.tasks.commands import commands

    return [*commands(), DIAGNOSE, EXPORT, BENCH]


def build_parser(commands: list[Command] | None = None) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rnnkit", description="Recurrent neural networks with exact BPTT, in NumPy.",
        epilog=FIRST_STEPS, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in commands or _commands():
        command.add_arguments(subparsers.add_parser(command.name, help=command.help))
    return parser


def main(argv: list[str] | None = None) -> int:
    tune_process()  # rnnkit's process settings (rnnkit/_environment.py); import makes none
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {command.name: command for command in _commands()}
    parser = build_parser(list(commands.values()))
    if not argv:
        parser.print_help()
        return 2
    if argv[:1] == ["train"] and (
        len(argv) == 1 or argv[1] not in (*tasks.names(), "-h", "--help")
    ):
        if len(argv) > 1 and not argv[1].startswith("-"):
            print(f"rnnkit train: error: {_unknown_task(argv[1])}", file=sys.stderr)
            return 2
        argv.insert(1, tasks.DEFAULT)  # 'rnnkit train' trains the default task
    args = parser.parse_args(argv)
    command = commands[args.command]
    label = command.label(args) if command.label else command.name
    try:
        with _quiet_floating_point():
            command.run(args)
    except BrokenPipeError:  # the reader went away (e.g. '| head'): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt as interrupt:  # its message, if any, says how to go on
        print(f"\nrnnkit {label}: interrupted {interrupt}".rstrip(), file=sys.stderr)
        return 130
    except Exception as error:
        if getattr(args, "debug", False) or os.environ.get("RNNKIT_DEBUG"):
            raise
        message, status = _describe(error)
        print(f"rnnkit {label}: {message}", file=sys.stderr)
        return status
    return 0


def _unknown_task(name: str) -> str:
    """One line for a task name no task has: the near one, if any, and all of them."""
    near = difflib.get_close_matches(name, tasks.names(), n=1)
    guess = f"did you mean '{near[0]}'? " if near else ""
    return f"no task is named {name!r}; {guess}the tasks: {', '.join(tasks.names())}"


def _describe(error: Exception) -> tuple[str, int]:
    """The one line the command prints for ``error`` and its exit status: 2 for what the user or
    the machine can fix (bad input, a file, memory), 1 for a bug in rnnkit."""
    if isinstance(error, UserError):
        return f"error: {error}", 2
    if isinstance(error, OSError):
        return f"error: {_os_error(error)}", 2
    if isinstance(error, MemoryError):
        return (
            f"error: not enough memory ({error or 'an allocation failed'}); use smaller sizes "
            "or a machine with more memory",
            2,
        )
    return (
        f"internal error: {type(error).__name__}: {error}; this is a bug in rnnkit, please "
        "report it with the command you ran (--debug shows the traceback)",
        1,
    )


def _os_error(error: OSError) -> str:
    """An OSError as one line that names the file, e.g. 'cannot read x.txt: permission denied'."""
    reason = (error.strerror or str(error)).rstrip(".")
    reason = reason[:1].lower() + reason[1:]
    if error.filename is None:
        return str(error) or reason
    return f"{error.filename}: {reason}"


def _quiet_floating_point():
    """NumPy's floating-point warnings off: rnnkit checks its numbers itself (a diverging run
    stops with its own message), so the warnings would only print noise before it."""
    import numpy as np

    return np.errstate(all="ignore")


if __name__ == "__main__":
    sys.exit(main())
