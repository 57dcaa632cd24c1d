"""What a subcommand of ``rnnkit`` is: its name, one line of help, its arguments and its run.

``rnnkit.cli`` builds its parser from a list of these and knows nothing else about them.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    """One subcommand: ``rnnkit <name> ...``.

    ``add_arguments(parser)`` declares its arguments on the subparser the CLI made for it;
    ``run(args)`` does the work from the parsed namespace, raising ``UserError`` for bad input
    (the CLI prints it as one line). ``label(args)`` names the command in error lines (default:
    the name).
    """

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], None]
    label: Callable[[argparse.Namespace], str] | None = None
