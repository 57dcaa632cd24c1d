"""Checkpoints: everything a run needs to go on exactly where it stopped, in one safetensors file.

Tensors: the model's parameters (``model/<name>``), the optimizer's buffers (``optimizer/<key>``)
and the state carried between batches (``carry/<i>``, truncated BPTT). JSON (in the file's
metadata under ``rnnkit``): the step, epoch and batch index, the optimizer's scalars, the
schedule, every random generator's state, the best validation result, and the run's ``extra``
(e.g. a vocabulary). Each checkpoint is a new file written atomically; older ones are removed
only after the new one is safely on disk, so a kill at any moment leaves a loadable checkpoint.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from rnnkit.errors import UserError
from rnnkit.io.safetensors import read_safetensors, write_safetensors

FORMAT = "rnnkit-checkpoint"
_NAME = re.compile(r"^step-(\d+)\.safetensors$")


def checkpoint_path(directory: Path, step: int) -> Path:
    return directory / f"step-{step:08d}.safetensors"


def list_checkpoints(directory: Path) -> list[Path]:
    """Checkpoint files in ``directory``, oldest step first (names are zero-padded steps)."""
    if not directory.is_dir():
        return []
    return sorted(path for path in directory.iterdir() if _NAME.match(path.name))


def write_checkpoint(directory: Path, step: int, arrays: dict, state: dict, keep: int) -> Path:
    """Write ``arrays`` and the JSON ``state`` as the checkpoint of ``step``; keep the newest
    ``keep`` checkpoints."""
    directory.mkdir(parents=True, exist_ok=True)
    path = checkpoint_path(directory, step)
    document = json.dumps({"format": FORMAT, "version": 1, **state})
    write_safetensors(path, arrays, {"rnnkit": document})
    for old in list_checkpoints(directory)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def read_checkpoint(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """The arrays and JSON state of a checkpoint; ValueError if the file is not one."""
    arrays, metadata = read_safetensors(path)
    try:
        state = json.loads((metadata or {}).get("rnnkit", ""))
    except json.JSONDecodeError:
        state = None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"{path} is not an rnnkit checkpoint; give a file from a run's checkpoints")
    return arrays, state


def split_prefix(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The entries named ``prefix/<key>``, keyed by ``<key>``."""
    start = len(prefix) + 1
    return {name[start:]: value for name, value in arrays.items() if name.startswith(prefix + "/")}
