"""Checkpoints: everything a run needs to go on exactly where it stopped, in one safetensors file.

Tensors: the model's parameters (``model/<name>``), the optimizer's buffers (``optimizer/<key>``)
and the state carried between batches (``carry/<i>``, truncated BPTT). JSON (in the file's
metadata under ``rnnkit``): the step, epoch and batch index, the optimizer's scalars, the
schedule, every random generator's state, the best validation result, the divergence check's
reference and recent losses, the training settings, and the run's ``extra`` (e.g. a vocabulary).
Each checkpoint is a new file written atomically; older ones are removed only after the new one
is safely on disk, so a kill at any moment leaves a loadable checkpoint.

Nothing read back is trusted: ``read_newest`` skips a newest file that cannot be read (truncated,
damaged) for the older one kept beside it, and ``checked_state`` validates every JSON entry
(types, ranges, the step against the epoch and batch index, the carried arrays) with one-line
errors.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from rnnkit.errors import UserError
from rnnkit.io._schema import Fields, _shown
from rnnkit.io.files import leftover_temp_files
from rnnkit.io.safetensors import read_safetensors, write_safetensors

FORMAT = "rnnkit-checkpoint"
_NAME = re.compile(r"^step-(\d+)\.safetensors$")
# The files whose temporary files a kill during a write may leave: in checkpoints/ checkpoints,
# in a run's directory the files a run writes there (model and best weights, logs, pictures).
_CHECKPOINT_NAMES = r"step-\d+\.safetensors"
_OUTPUT_NAMES = r"[\w.-]+\.(?:safetensors|jsonl|png)"
_FIX = "resume from an intact checkpoint, or train afresh into another output directory"


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


def remove_from(directory: Path, step: int) -> list[Path]:
    """Remove the checkpoints of ``step`` and later; returns the paths removed."""
    removed = [path for path in list_checkpoints(directory) if step_of(path) >= step]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def remove_stale_temp_files(out_dir: Path) -> list[Path]:
    """Remove the temporary files a kill during a write left in ``out_dir`` and its
    ``checkpoints/``; returns the paths removed. Only rnnkit's own names are touched."""
    stale = leftover_temp_files(out_dir, _OUTPUT_NAMES)
    stale += leftover_temp_files(out_dir / "checkpoints", _CHECKPOINT_NAMES)
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def read_checkpoint(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """The arrays and JSON state of a checkpoint; UserError if the file is not a readable one.

    The state is as stored: ``checked_state`` validates it for a run."""
    arrays, metadata = read_safetensors(path)
    try:
        state = json.loads((metadata or {}).get("rnnkit", ""))
    except json.JSONDecodeError:
        state = None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"{path} is not an rnnkit checkpoint; give a file from a run's checkpoints")
    return arrays, state


def read_newest(directory: Path, say) -> tuple[Path, dict[str, np.ndarray], dict] | None:
    """``(path, arrays, state)`` of the newest readable checkpoint in ``directory``, None if
    there is none.

    A newer file that cannot be read (truncated or damaged: a disk fault, a copy cut short; or
    not readable by this user) is skipped for the one before it, and ``say`` is told which file
    was bad and which is used. UserError if no checkpoint in ``directory`` can be read.
    """
    found = list_checkpoints(directory)
    bad: list[tuple[Path, Exception]] = []
    for path in reversed(found):
        try:
            arrays, state = read_checkpoint(path)
        except (UserError, OSError) as error:
            bad.append((path, error))
            continue
        for skipped, error in bad:
            problem = str(error).rsplit("; ", 1)[0]  # its fix (re-save the file) does not apply
            say(f"the checkpoint {skipped} cannot be read, so the older {path.name} is used: "
                f"{problem}")  # fmt: skip
        return path, arrays, state
    if bad:
        names = ", ".join(path.name for path, _ in bad)
        raise UserError(
            f"no checkpoint in {directory} can be read ({names}; the newest: {bad[0][1]}); "
            "train afresh into another output directory"
        )
    return None


def checked_state(path: Path, state: dict, arrays: dict, batches_per_epoch: int,
                  generator_names, monitor: str) -> dict:  # fmt: skip
    """The JSON ``state`` of the checkpoint at ``path``, every entry checked for a run with
    ``batches_per_epoch`` batches, a model with random generators ``generator_names`` and the
    validation metric ``monitor``; one-line UserError naming the first bad entry.

    Returns the entries the trainer restores (``carry`` the carried arrays, or None).
    """
    fields = Fields(state, f"checkpoint {path}", _FIX)
    step = fields.get("step", int, low=0)
    epoch = fields.get("epoch", int, low=0)
    index = fields.get("index", int, low=0, high=batches_per_epoch - 1)
    if step != epoch * batches_per_epoch + index:
        fields.fail(
            "step",
            f"is {step}, but epoch {epoch} and batch {index} of {batches_per_epoch} per epoch "
            f"make step {epoch * batches_per_epoch + index}",
        )
    if "carry_parts" not in state:
        fields.fail("carry_parts", "is missing")
    parts = fields.get("carry_parts", int, low=1, high=len(arrays), optional=True)
    is_array = fields.get("carry_is_array", bool)
    if is_array and parts != 1:
        fields.fail("carry_is_array", f"is true, but carry_parts is {parts}, not 1")
    carry = None
    if parts is not None:
        missing = [f"carry/{i}" for i in range(parts) if f"carry/{i}" not in arrays]
        if missing:
            fields.fail("carry_parts", f"is {parts}, but the tensors {missing} are missing")
        carry = tuple(arrays[f"carry/{i}"] for i in range(parts))
        carry = carry[0] if is_array else carry
    generators = fields.get("generators", dict)
    if set(generators) != set(generator_names):
        fields.fail(
            "generators",
            f"names {sorted(generators)}, but the model has {sorted(generator_names)}",
        )
    for name, value in generators.items():  # names hold dots: not a Fields path
        if not isinstance(value, dict):
            fields.fail(f"generators[{name!r}]", f"is {_shown(value)}, not an object")
    best = fields.get("best", dict, optional=True)
    if best is not None:
        best = {"step": fields.get("best.step", int, low=0, high=step),
                monitor: fields.get(f"best.{monitor}", float)}  # fmt: skip
    return {
        "step": step,
        "epoch": epoch,
        "index": index,
        "carry": carry,
        "optimizer": fields.get("optimizer", dict),
        "schedule": fields.get("schedule", dict, optional=True),
        "generators": generators,
        "best": best,
        "bad_validations": fields.get("bad_validations", int, low=0),
        "epoch_loss": fields.get("epoch_loss", float, optional=True) or 0.0,
        "settings": _settings(fields) if "settings" in state else None,
        "initial_loss": fields.get("initial_loss", float, optional=True),
        "recent_losses": fields.get("recent_losses", list, items=float, optional=True) or [],
    }


def _settings(fields: Fields) -> dict:
    """The trainer's settings saved in a checkpoint (see ``Trainer._settings``)."""
    fields.get("settings", dict)
    return {
        "lr": fields.get("settings.lr", float, low=0),
        "clip_norm": fields.get("settings.clip_norm", float, low=0, optional=True),
        "total_steps": fields.get("settings.total_steps", int, low=1),
        "validate_every": fields.get("settings.validate_every", int, low=1, optional=True),
        "checkpoint_every": fields.get("settings.checkpoint_every", int, low=1, optional=True),
    }


def saved_extra(path: Path, state: dict) -> dict:
    """The run's ``extra`` in a checkpoint's JSON ``state``; UserError unless it is an object."""
    return Fields(state, f"checkpoint {path}", _FIX).get("extra", dict)


def restore_generators(generators: dict, states: dict, path: Path) -> None:
    """Set each of ``generators`` (name -> numpy Generator) to its saved state in ``states``;
    UserError if a state is not one NumPy accepts as it is."""
    for name, generator in generators.items():
        problem = None
        try:
            generator.bit_generator.state = states[name]
            if generator.bit_generator.state != states[name]:
                problem = "NumPy read it differently"
        except (TypeError, ValueError, KeyError, OverflowError) as error:
            problem = f"{type(error).__name__}: {error}"
        if problem is not None:
            raise UserError(
                f"checkpoint {path}: generators.{name} is not a state of its random generator "
                f"({problem}); {_FIX}"
            )


def split_prefix(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The entries named ``prefix/<key>``, keyed by ``<key>``."""
    start = len(prefix) + 1
    return {name[start:]: value for name, value in arrays.items() if name.startswith(prefix + "/")}


def step_of(path: Path) -> int:
    """The step of the checkpoint file at ``path`` (its name says it)."""
    return int(_NAME.match(path.name).group(1))
