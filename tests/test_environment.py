"""rnnkit's process settings (rnnkit/_environment.py), each checked in a fresh process."""

import os
import subprocess
import sys

import pytest

# Makes and frees eight 3 MB arrays (NumPy asks for huge pages from 4 MB), twice, and counts
# the page faults of the second round.
FAULTS = """
import resource, sys
import rnnkit  # first: its settings come before NumPy's allocations
import numpy as np
def faults_of_new_arrays():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    arrays = [np.ones(3 * 2**18, np.float32) for _ in range(8)]  # written
    del arrays
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
faults_of_new_arrays()
print(faults_of_new_arrays())
"""


def run(code: str, **environment) -> str:
    """stdout of ``code`` in a fresh interpreter, with ``environment`` added."""
    for name in ("OPENBLAS_THREAD_TIMEOUT", "RNNKIT_PROCESS_SETTINGS", "MALLOC_TRIM_THRESHOLD_"):
        environment.setdefault(name, None)
    env = {**os.environ, **environment}
    env = {name: value for name, value in env.items() if value is not None}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    return result.stdout.strip()


TIMEOUT = "import os, rnnkit; print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'))"


def test_importing_rnnkit_asks_openblas_to_let_its_threads_sleep_unless_told_otherwise():
    assert run(TIMEOUT) == "4"
    assert run(TIMEOUT, OPENBLAS_THREAD_TIMEOUT="12") == "12"  # the user's own value stays
    assert run(TIMEOUT, RNNKIT_PROCESS_SETTINGS="0") == "None"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux")
def test_freed_arrays_are_kept_for_the_next_ones_unless_told_otherwise():
    """With rnnkit's settings new arrays reuse freed ones' pages; without them (or with the
    user's own glibc setting) glibc returns the memory and each of the 6,144 pages (8 x 3 MB)
    faults in afresh."""
    assert int(run(FAULTS)) < 500
    assert int(run(FAULTS, RNNKIT_PROCESS_SETTINGS="0")) > 5000
    assert int(run(FAULTS, MALLOC_TRIM_THRESHOLD_="131072")) > 5000
