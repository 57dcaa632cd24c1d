"""How much memory the process may use, and a refusal before an allocation that cannot fit.

A size taken from an option or a file (``--hidden 100000``, a config's ``num_layers``) is checked
here before anything is allocated, so the user gets one line with the estimate and the machine's
memory instead of a MemoryError from deep inside NumPy, or a process killed by the system.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

from rnnkit.errors import UserError


def available_bytes() -> int:
    """The memory this process may use: the machine's physical memory, lowered by a cgroup limit
    (containers) and by an address-space limit (``ulimit -v``) when either is set."""
    limits = [os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")]
    for name in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(name).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            limits.append(int(text))
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        limits.append(soft)
    return min(limits)


def check_fits(nbytes: float, what: str, fix: str) -> None:
    """UserError when ``nbytes`` (an estimate) exceeds the memory this process may use.

    ``what`` names the allocation ("an LSTM of hidden size 100000's parameters"); ``fix`` says
    which option to lower.
    """
    limit = available_bytes()
    if nbytes > limit:
        raise UserError(
            f"{what} would need about {format_bytes(nbytes)}, but this process may use "
            f"{format_bytes(limit)}; {fix}"
        )


def format_bytes(nbytes: float) -> str:
    """``1.5 GiB``, ``300 MiB``, ``12 KiB``; any int, however large (a size read from a file)."""
    nbytes = min(nbytes, 10**300)  # a larger int would overflow the float division
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= size:
            return f"{nbytes / size:.3g} {unit}"
    return f"{int(nbytes)} bytes"
