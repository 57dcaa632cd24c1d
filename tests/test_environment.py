"""rnnkit's process settings (rnnkit/_environment.py): made by ``rnnkit.tune_process()`` and the
CLI, never by ``import rnnkit``; each checked in a fresh process."""

import os
import subprocess
import sys

import pytest

from rnnkit import _environment

# Makes and frees eight 3 MB arrays (NumPy asks for huge pages from 4 MB), twice, and counts
# the page faults of the second round; TUNE is replaced by what the process does first.
FAULTS = """
import resource, sys
import rnnkit
TUNE
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


def test_importing_rnnkit_and_its_cli_leaves_the_environment_as_it_was():
    code = "import os; before = dict(os.environ); import rnnkit.cli; print(os.environ == before)"
    assert run(code) == "True"


TIMEOUT = (
    "import os, rnnkit; rnnkit.tune_process(); print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'))"
)


def test_tuning_asks_openblas_to_let_its_threads_sleep_unless_told_otherwise():
    assert run(TIMEOUT) == "4"
    assert run(TIMEOUT, OPENBLAS_THREAD_TIMEOUT="12") == "12"  # the user's own value stays
    assert run(TIMEOUT, RNNKIT_PROCESS_SETTINGS="0") == "None"


OPENBLAS_TIMEOUT = """import numpy as np, rnnkit
from rnnkit._environment import _loaded_openblas
(openblas,) = _loaded_openblas()  # NumPy's, as the test extra installs it
before = openblas.openblas_thread_timeout()
rnnkit.tune_process()
print(before, openblas.openblas_thread_timeout())"""


def test_tuning_reaches_the_openblas_numpy_loaded_before_it():
    """OpenBLAS read its environment when NumPy loaded it; tuning makes it read it again."""
    assert run(OPENBLAS_TIMEOUT) == "0 4"
    assert run(OPENBLAS_TIMEOUT, OPENBLAS_THREAD_TIMEOUT="6") == "6 6"  # the user's own, as read


def test_only_an_openblas_with_both_functions_is_asked_to_read_its_environment_again():
    calls = []

    class OpenBLAS:
        def openblas_read_env(self):
            calls.append("read")

        def blas_thread_shutdown_(self):
            calls.append("stop")

    _environment._threads_reread_timeout([OpenBLAS(), object()])  # object(): another BLAS
    assert calls == ["read", "stop"]


def test_running_a_layer_leaves_the_environment_as_it_was():
    """The compiled back end finds the BLAS through threadpoolctl, whose import sets
    KMP_DUPLICATE_LIB_OK: rnnkit takes it back out (unless the user set it)."""
    code = """import os; before = dict(os.environ)
import numpy as np, rnnkit
rnnkit.LSTM(3, 4)(np.zeros((2, 1, 3), np.float32))
print(os.environ == before)"""
    assert run(code) == "True"
    assert run(code, KMP_DUPLICATE_LIB_OK="FALSE") == "True"


def test_the_cli_tunes_its_process():
    code = """import os, rnnkit.cli
try:
    rnnkit.cli.main(["--help"])
except SystemExit:
    pass
print(os.environ.get("OPENBLAS_THREAD_TIMEOUT"))"""
    assert run(code).splitlines()[-1] == "4"  # after the help text


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux")
def test_freed_arrays_are_kept_for_the_next_ones_after_tuning_only():
    """After ``tune_process()`` new arrays reuse freed ones' pages; after a bare import (or
    with tuning turned off, or with the user's own glibc setting) glibc returns the memory and
    each of the 6,144 pages (8 x 3 MB) faults in afresh."""
    tuned, bare = FAULTS.replace("TUNE", "rnnkit.tune_process()"), FAULTS.replace("TUNE", "")
    assert int(run(tuned)) < 500
    assert int(run(bare)) > 5000
    assert int(run(tuned, RNNKIT_PROCESS_SETTINGS="0")) > 5000
    assert int(run(tuned, MALLOC_TRIM_THRESHOLD_="131072")) > 5000
