"""Saving and loading models: one safetensors file, no pickle, no code from the file ever runs.

The file holds the model's ``state_dict()`` arrays, and its safetensors metadata holds one key,
``"rnnkit"``, whose value is the JSON document::

    {"format": "rnnkit-model", "version": 1, "class": "LSTM", "config": {...}, "extra": ...}

``load`` rebuilds the model as ``cls(**config)``, where ``cls`` is looked up by name among
rnnkit's own model classes (the table ``rnnkit.models.BUILT_IN``) and the classes users
``register`` (never imported by a name the file chose), then copies the arrays in.
``extra`` is any JSON-able value the caller wants kept with the model (a vocabulary, scaling);
whoever reads it checks it (``rnnkit.io._schema.Fields``).

Nothing in a file is trusted. The model is built under a budget of the bytes the file's tensors
hold (``rnnkit.nn.module.parameter_budget``): a config asking for more parameters (a hidden size
of 8000 in the file of a small model) is refused before anything is allocated, so a load takes
a few times the file's size in memory at most. The config must come back unchanged from the
model built from it (no key missing, added or coerced), and the tensors must have exactly the
model's names, shapes and dtypes.
"""

from __future__ import annotations

import functools
import json
import warnings
from pathlib import Path

import numpy as np

from rnnkit.errors import UserError, UserTypeError
from rnnkit.io._schema import _shown
from rnnkit.io.safetensors import read_safetensors, write_safetensors
from rnnkit.nn.module import Module, parameter_budget

FORMAT = "rnnkit-model"
VERSION = 1
KEY = "rnnkit"
FIX = "the file is damaged or was not written by rnnkit.save: re-save the model"
CHECKPOINT_FORMAT = "rnnkit-checkpoint"  # rnnkit.train.checkpoints.FORMAT, under the same key
RUN_MODEL = "model.safetensors"  # the model a run saves in its folder (rnnkit.tasks.pipeline)
WANTED = (  # what to give where a file is no model at all
    f"a model file: the {RUN_MODEL} that 'rnnkit train' wrote (or its run folder) or a file "
    "saved by rnnkit.save"
)

_registry: dict[str, type] = {}  # the classes users registered, by name


def register(cls: type) -> type:
    """Let ``load`` rebuild ``cls`` (a Module subclass) by its class name; usable as a decorator.

    The class must define ``config()`` whose values ``cls(**config)`` accepts back and keeps
    unchanged, and its constructor (or those of the modules it holds) must call
    ``rnnkit.nn.module.reserve`` before adding parameters.
    """
    if not (isinstance(cls, type) and issubclass(cls, Module)):
        raise UserTypeError(f"register takes a Module subclass, got {cls!r}")
    known = _classes().get(cls.__name__)
    if known is not None and known is not cls:
        raise UserError(
            f"another class named {cls.__name__!r} is already registered ({known.__module__}); "
            "rename one of them"
        )
    _registry[cls.__name__] = cls
    return cls


def registered() -> list[str]:
    """The names ``load`` knows, sorted."""
    return sorted(_classes())


@functools.cache
def _built_in() -> dict[str, type]:
    """rnnkit's own model classes by name, imported on first use: importing this module (and so
    ``rnnkit``) loads none of them."""
    from rnnkit.models import BUILT_IN

    return {cls.__name__: cls for cls in BUILT_IN}


def _classes() -> dict[str, type]:
    """Every class ``load`` can rebuild, by name: the built-in ones and the registered ones."""
    return {**_built_in(), **_registry}


def save(model: Module, path, extra=None) -> None:
    """Write ``model`` (its class, config and parameters) and ``extra`` to ``path`` atomically.

    Args:
        model: an instance of a registered class.
        path: the file to write (conventionally ``*.safetensors``); its directory must exist.
        extra: None or a JSON-able value (dicts with str keys, lists, str, finite numbers, bool).
            Tuples come back as lists.
    Raises:
        ValueError: the model's class is not registered, or ``path`` is a directory.
        TypeError: ``extra`` or the model's config is not JSON-able.
    """
    name = type(model).__name__
    if _classes().get(name) is not type(model):
        raise UserError(
            f"{name} is not a registered model class, so load could not rebuild it; "
            "register it with rnnkit.io.models.register"
        )
    document = {
        "format": FORMAT,
        "version": VERSION,
        "class": name,
        "config": model.config(),
        "extra": extra,
    }
    try:
        text = json.dumps(document, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as error:
        raise UserTypeError(
            f"the model's config and extra must be JSON-able (str keys, lists, str, finite "
            f"numbers, bool, None): {error}; convert arrays with .tolist()"
        ) from None
    write_safetensors(path, model.state_dict(), {KEY: text})


def load(path) -> Module:
    """The model saved at ``path`` by ``save``; see ``load_with_extra`` for the errors."""
    model, _ = load_with_extra(path)
    return model


def load_with_extra(path) -> tuple[Module, object]:
    """The model saved at ``path`` and the ``extra`` value saved with it.

    Raises:
        ValueError: the file is not a valid rnnkit model file (damaged, not safetensors, written
            by something else, an unknown class, tensors that do not match the config).
        OSError: the file cannot be opened.
    """
    arrays, metadata = read_safetensors(path, WANTED)
    document = _document(metadata, path)
    name, config = document["class"], document["config"]
    budget = parameter_budget(sum(array.nbytes for array in arrays.values()))
    # The constructors' warnings (dropout with one layer) spoke when the model was made.
    with budget, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        try:
            model = _classes()[name](**config)
        except (TypeError, ValueError, MemoryError) as error:  # TypeError: an unknown key
            problem = str(error)[:300]  # a key named in it may be as long as the file
            raise UserError(
                f"{path}: its config does not build a {name} ({problem}); {FIX}"
            ) from None
    _check_config(model, config, path)
    _check_tensors(model, arrays, path)
    try:
        model.load_state_dict(arrays)
    except ValueError as error:
        raise UserError(f"{path}: {error}") from None
    return model, document["extra"]


def _document(metadata: dict, path) -> dict:
    """The checked rnnkit JSON document from a file's safetensors metadata."""
    if KEY not in metadata:
        raise UserError(
            f"{path} is not an rnnkit model (its metadata has no {KEY!r} entry); save models "
            "with rnnkit.save, or read plain tensors with rnnkit.io.safetensors.read_safetensors"
        )
    try:
        document = json.loads(metadata[KEY])
    except (ValueError, RecursionError) as error:
        problem = f"the {KEY!r} metadata is not valid JSON ({error})"
        raise UserError(f"{path}: {problem}; {FIX}") from None
    if isinstance(document, dict) and document.get("format") == CHECKPOINT_FORMAT:
        raise UserError(_checkpoint_given(Path(path)))
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise UserError(f"{path}: the {KEY!r} metadata lacks the tag format={FORMAT!r}; {FIX}")
    version = document.get("version")
    if version != VERSION:
        raise UserError(
            f"{path} has model format version {_shown(version)}, but this rnnkit reads version "
            f"{VERSION}; load it with the rnnkit version that saved it"
        )
    missing = sorted({"class", "config", "extra"} - set(document))
    if missing:
        raise UserError(f"{path}: the {KEY!r} metadata lacks {missing}; {FIX}")
    name, config = document["class"], document["config"]
    if not isinstance(name, str) or name not in _classes():
        raise UserError(
            f"{path} holds a model of class {_shown(name)}, which is not registered (known: "
            f"{registered()}); import the module that registers it before loading"
        )
    if not isinstance(config, dict):
        raise UserError(f"{path}: the saved config is a {type(config).__name__}, not an object")
    return document


def _checkpoint_given(path: Path) -> str:
    """The refusal of the training checkpoint at ``path`` given as a model: it names the model
    its run saved when the checkpoint lies in a run's ``checkpoints/`` beside one (a run writes
    ``RUN/checkpoints/step-*.safetensors`` and, at its end, ``RUN/model.safetensors``)."""
    refusal = f"{path} is a training checkpoint, not a model file"
    run = path.parent.parent
    if path.parent.name != "checkpoints":
        return (
            f"{refusal}; give the {RUN_MODEL} its run saved (or the run folder), or go on "
            "training from the checkpoint with 'rnnkit train ... --out RUN --resume'"
        )
    if (run / RUN_MODEL).is_file():
        return f"{refusal}; give {run / RUN_MODEL} (or the run folder {run})"
    return (
        f"{refusal}, and its run {run} has no {RUN_MODEL} yet (the run has not finished); "
        f"if it stopped, finish it with 'rnnkit train ... --out {run} --resume'"
    )


def _check_config(model: Module, config: dict, path) -> None:
    """UserError unless the model built from ``config`` gives it back unchanged: a key missing
    (the constructor filled in its default), one it does not keep, or a value it coerced
    (``"no"`` taken as true) means that the file was not written by ``save``."""
    built = json.loads(json.dumps(model.config()))  # tuples as lists, as the file holds them
    if built == config:
        return
    name = type(model).__name__
    missing, unknown = sorted(set(built) - set(config)), sorted(set(config) - set(built))
    if missing or unknown:
        problem = f"lacks {_names(missing)}" if missing else f"has keys {_names(unknown)}"
        raise UserError(f"{path}: its config {problem}, which a {name} does not have; {FIX}")
    key = next(key for key in built if built[key] != config[key])
    raise UserError(
        f"{path}: its config's {key} is {_shown(config[key])}, but a {name} built from it has "
        f"{_shown(built[key])}; {FIX}"
    )


def _check_tensors(model: Module, arrays: dict[str, np.ndarray], path) -> None:
    """ValueError unless the file's tensors have exactly the model's names, shapes and dtypes."""
    missing = sorted(set(model.params) - set(arrays))
    unexpected = sorted(set(arrays) - set(model.params))
    if missing or unexpected:
        raise UserError(
            f"{path}: the tensors do not match the saved {type(model).__name__} config "
            f"(missing {_names(missing)}, unexpected {_names(unexpected)}); {FIX}"
        )
    for name, param in model.params.items():
        array = arrays[name]
        if array.shape != param.shape or array.dtype != param.dtype:
            raise UserError(
                f"{path}: tensor {name!r} is {array.dtype} {array.shape}, but the saved config "
                f"needs {param.dtype} {param.shape}; {FIX}"
            )


def _names(names: list[str]) -> str:
    """A list of names for a message: all of a few, the first five of many."""
    if len(names) <= 5:
        return str(names)
    return f"{names[:5]} and {len(names) - 5} more"
