"""Learning-rate schedules writing ``optimizer.lr``, as torch.optim.lr_scheduler.

Call ``step()`` once per epoch after the optimizer's steps (``step(metric)`` for
ReduceLROnPlateau). Building a schedule leaves ``optimizer.lr`` as it is (epoch 0).
``state_dict()`` gives JSON-able dicts; a resumed run restores both the optimizer and the
schedule.
"""

from __future__ import annotations

import math
import numbers

from rnnkit.errors import UserError, UserTypeError
from rnnkit.train.optim import Optimizer

# ReduceLROnPlateau ignores a reduction smaller than this (PyTorch's ``eps``)
_MIN_LR_CHANGE = 1e-8


class _Schedule:
    """Base: the optimizer, the epoch count, ``get_last_lr`` and the state dict."""

    def __init__(self, optimizer: Optimizer) -> None:
        if not isinstance(optimizer, Optimizer):
            raise UserTypeError(
                f"{type(self).__name__} needs an rnnkit optimizer (SGD, Adam, ...), "
                f"got {type(optimizer).__name__}"
            )
        self.optimizer = optimizer
        self.last_lr = optimizer.lr

    def get_last_lr(self) -> float:
        """The learning rate set by the last ``step`` (the optimizer's rate before any)."""
        return self.last_lr

    def state_dict(self) -> dict:
        """Every attribute except the optimizer, as JSON scalars."""
        return {key: value for key, value in vars(self).items() if key != "optimizer"}

    def load_state_dict(self, state: dict) -> None:
        """Restore a ``state_dict()`` of the same schedule class."""
        expected = set(self.state_dict())
        if set(state) != expected:
            raise UserError(
                f"{type(self).__name__}: state_dict keys {sorted(state)} do not match "
                f"{sorted(expected)}; load a state saved by a {type(self).__name__}"
            )
        vars(self).update(state)


class _EpochSchedule(_Schedule):
    """A schedule that sets the rate from the epoch count: subclasses give ``_lr_at(epoch)``."""

    def __init__(self, optimizer: Optimizer) -> None:
        super().__init__(optimizer)
        self.base_lr = optimizer.lr
        self.epoch = 0

    def _lr_at(self, epoch: int) -> float:
        raise NotImplementedError

    def step(self) -> None:
        """Advance one epoch and write its learning rate to the optimizer."""
        self.epoch += 1
        self.optimizer.lr = self._lr_at(self.epoch)
        self.last_lr = self.optimizer.lr


class StepLR(_EpochSchedule):
    """Multiply the rate by ``gamma`` every ``step_size`` epochs, as torch's StepLR.

    Like PyTorch, it scales the optimizer's current rate (so it composes with other changes).
    """

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        super().__init__(optimizer)
        self.step_size = _int_at_least("StepLR", "step_size", step_size)
        self.gamma = _finite("StepLR", "gamma", gamma)

    def _lr_at(self, epoch: int) -> float:
        if epoch % self.step_size == 0:
            return self.optimizer.lr * self.gamma
        return self.optimizer.lr


class CosineAnnealingLR(_EpochSchedule):
    """Cosine from the initial rate down to ``eta_min`` over ``T_max`` epochs, then back up
    (period 2 * T_max), as torch's CosineAnnealingLR:
    ``lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2``.

    The closed form above; PyTorch's recursive form gives the same rates to ~1e-16.
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:
        super().__init__(optimizer)
        self.T_max = _int_at_least("CosineAnnealingLR", "T_max", T_max)
        self.eta_min = _finite("CosineAnnealingLR", "eta_min", eta_min)

    def _lr_at(self, epoch: int) -> float:
        cosine = (1.0 + math.cos(math.pi * epoch / self.T_max)) / 2.0
        return self.eta_min + (self.base_lr - self.eta_min) * cosine


class ReduceLROnPlateau(_Schedule):
    """Multiply the rate by ``factor`` when the metric stops improving, as torch's
    ReduceLROnPlateau.

    A metric improves when it beats the best so far by ``threshold`` (relative: best * (1 -
    threshold) in mode 'min'; absolute: best - threshold). After more than ``patience`` epochs
    without improvement the rate becomes max(lr * factor, min_lr), and for ``cooldown`` epochs
    after that bad epochs are not counted.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float = 0.0,
    ) -> None:
        super().__init__(optimizer)
        if mode not in ("min", "max"):
            raise UserError(f"ReduceLROnPlateau: mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise UserError(
                f"ReduceLROnPlateau: threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}"
            )
        factor = _finite("ReduceLROnPlateau", "factor", factor)
        if not 0.0 <= factor < 1.0:
            raise UserError(f"ReduceLROnPlateau: factor must be in [0, 1), got {factor}")
        self.mode = mode
        self.factor = factor
        self.patience = _int_at_least("ReduceLROnPlateau", "patience", patience, low=0)
        self.threshold = _finite("ReduceLROnPlateau", "threshold", threshold)
        self.threshold_mode = threshold_mode
        self.cooldown = _int_at_least("ReduceLROnPlateau", "cooldown", cooldown, low=0)
        self.min_lr = _finite("ReduceLROnPlateau", "min_lr", min_lr)
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0

    def step(self, metric) -> None:
        """Record one epoch's ``metric`` (a number, e.g. the validation loss)."""
        current = float(metric)
        if self._is_better(current):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            reduced = max(self.optimizer.lr * self.factor, self.min_lr)
            if self.optimizer.lr - reduced > _MIN_LR_CHANGE:
                self.optimizer.lr = reduced
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self.last_lr = self.optimizer.lr

    def _is_better(self, current: float) -> bool:
        if self.mode == "min":
            if self.threshold_mode == "rel":
                return current < self.best * (1.0 - self.threshold)
            return current < self.best - self.threshold
        if self.threshold_mode == "rel":
            return current > self.best * (1.0 + self.threshold)
        return current > self.best + self.threshold


def _int_at_least(owner: str, name: str, value, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise UserTypeError(f"{owner}: {name} must be an int, got {type(value).__name__}")
    if value < low:
        raise UserError(f"{owner}: {name} must be at least {low}, got {value}")
    return int(value)


def _finite(owner: str, name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise UserTypeError(f"{owner}: {name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise UserError(f"{owner}: {name} must be finite, got {value}")
    return float(value)
