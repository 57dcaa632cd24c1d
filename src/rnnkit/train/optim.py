"""Optimizers: update a module's parameters in place from its accumulated gradients.

Each optimizer follows the algorithm, arguments and defaults of its ``torch.optim`` namesake
(one parameter group; no ``maximize``, ``foreach`` or sparse gradients). Notation per parameter
``p`` with gradient ``g`` at step ``t`` (counted from 1), learning rate ``lr``:

- SGD:      g += wd*p;  b = g (t=1) or mu*b + (1-dampening)*g;  g = g + mu*b (nesterov) or b;
            p -= lr*g
- Adam:     g += wd*p;  m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2;  v_max = max(v_max, v);
            p -= lr/(1-b1^t) * m / (sqrt(v or v_max)/sqrt(1-b2^t) + eps)
- AdamW:    p *= 1 - lr*wd (decoupled decay), then Adam without the g += wd*p
- RMSprop:  g += wd*p;  v = alpha*v + (1-alpha)*g^2;  a = alpha*a + (1-alpha)*g (centered);
            d = sqrt(v - a^2 (centered) or v) + eps;  b = mu*b + g/d;  p -= lr*b (or lr*g/d)
- Adagrad:  g += wd*p;  s += g^2;  p -= lr/(1+(t-1)*lr_decay) * g/(sqrt(s) + eps)

Parameters are changed in place (composite modules share the array objects); the gradients are
never modified. Per-parameter buffers have the parameters' dtype and shape.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from rnnkit.errors import UserError, UserTypeError


class Optimizer:
    """Base: the learning rate ``lr``, ``step()``, ``zero_grad()`` and checkpoint state.

    A subclass passes its hyperparameters (JSON scalars, ``lr`` among them) to ``__init__``,
    validates them in ``_check``, names its per-parameter buffers in ``_buffer_names`` and
    updates one parameter in ``_update``.
    """

    def __init__(self, module, **hyperparameters) -> None:
        _check_module(module, type(self).__name__)
        hyperparameters = self._check(hyperparameters)
        self.module = module
        self.step_count = 0
        self._hyperparameter_names = tuple(hyperparameters)
        for name, value in hyperparameters.items():
            setattr(self, name, value)
        self.buffers = {
            buffer: {
                name: np.full_like(param, self._initial_value(buffer))
                for name, param in module.params.items()
            }
            for buffer in self._buffer_names(hyperparameters)
        }

    def _check(self, hyperparameters: dict) -> dict:
        """The hyperparameters as plain floats and bools; ValueError/TypeError if invalid."""
        raise NotImplementedError

    @staticmethod
    def _buffer_names(hyperparameters: dict) -> tuple[str, ...]:
        """The per-parameter buffers these hyperparameters need."""
        raise NotImplementedError

    def _initial_value(self, buffer: str) -> float:
        """The value every entry of ``buffer`` starts at."""
        return 0.0

    def _update(self, param: np.ndarray, grad: np.ndarray, state: dict) -> None:
        """Update ``param`` in place; ``state`` maps buffer names to this parameter's buffers."""
        raise NotImplementedError

    def step(self) -> None:
        """Update every parameter in place from ``module.grads`` (one optimizer step)."""
        self.step_count += 1
        for name, param in self.module.params.items():
            state = {buffer: arrays[name] for buffer, arrays in self.buffers.items()}
            self._update(param, self.module.grads[name], state)

    def zero_grad(self) -> None:
        """Set the module's accumulated gradients to zero."""
        self.module.zero_grad()

    def state_dict(self) -> dict:
        """Copies of everything a resumed run needs.

        Arrays: the buffers, keyed ``<buffer>.<parameter name>`` (``exp_avg.rnn.weight_ih_l0``).
        JSON scalars: ``optimizer`` (the class name), ``step`` and every hyperparameter.
        """
        state = {"optimizer": type(self).__name__, "step": self.step_count}
        state.update({name: getattr(self, name) for name in self._hyperparameter_names})
        for buffer, arrays in self.buffers.items():
            state.update({f"{buffer}.{name}": array.copy() for name, array in arrays.items()})
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore a ``state_dict()`` of the same optimizer class over the same parameters.

        The step count, the hyperparameters (``lr`` included) and the buffers all come from
        ``state``; buffers are copied and cast to the parameters' dtype. Nothing changes if a
        check fails.
        """
        owner = type(self).__name__
        if state.get("optimizer") != owner:
            raise UserError(
                f"state_dict has optimizer={state.get('optimizer')!r}, expected {owner!r}; "
                f"load a state saved by {owner}.state_dict()"
            )
        step = state.get("step")
        if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
            raise UserError(f"{owner}: state_dict['step'] must be an int >= 0, got {step!r}")
        missing_scalars = sorted(set(self._hyperparameter_names) - set(state))
        if missing_scalars:
            raise UserError(f"{owner}: state_dict lacks hyperparameters {missing_scalars}")
        hyperparameters = self._check({name: state[name] for name in self._hyperparameter_names})
        buffers = self._checked_buffers(state, self._buffer_names(hyperparameters))
        self.step_count = int(step)
        for name, value in hyperparameters.items():
            setattr(self, name, value)
        self.buffers = buffers

    def _checked_buffers(self, state: dict, buffer_names: tuple[str, ...]) -> dict:
        """Copies of the buffers in ``state`` (``{buffer: {parameter name: array}}``), in the
        parameters' dtype; ValueError for missing, unexpected or misshapen entries."""
        owner = type(self).__name__
        expected = {
            f"{buffer}.{name}": (buffer, name)
            for buffer in buffer_names
            for name in self.module.params
        }
        given = set(state) - {"optimizer", "step", *self._hyperparameter_names}
        missing, unexpected = sorted(set(expected) - given), sorted(given - set(expected))
        if missing or unexpected:
            raise UserError(
                f"{owner}: state_dict buffers do not match the module: missing {missing}, "
                f"unexpected {unexpected}; load a state saved for this model and these options"
            )
        buffers = {buffer: {} for buffer in buffer_names}
        for key, (buffer, name) in expected.items():
            param = self.module.params[name]
            value = np.array(state[key], dtype=param.dtype)  # a copy
            if value.shape != param.shape:
                raise UserError(
                    f"{owner}: state_dict['{key}'] has shape {value.shape}, but the parameter "
                    f"has {param.shape}; load a state saved for a model of the same sizes"
                )
            buffers[buffer][name] = value
        return buffers


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, as torch.optim.SGD."""

    def __init__(
        self,
        module,
        lr: float,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        super().__init__(
            module,
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
        )

    def _check(self, hyperparameters: dict) -> dict:
        checked = _numbers("SGD", hyperparameters, ("lr", "momentum", "dampening", "weight_decay"))
        checked["nesterov"] = _flag("SGD", "nesterov", hyperparameters["nesterov"])
        if checked["nesterov"] and (checked["momentum"] <= 0.0 or checked["dampening"] != 0.0):
            raise UserError(
                f"SGD: nesterov=True needs momentum > 0 and dampening = 0, got momentum="
                f"{checked['momentum']}, dampening={checked['dampening']}; set momentum=0.9 "
                "and dampening=0, or nesterov=False"
            )
        return checked

    @staticmethod
    def _buffer_names(hyperparameters: dict) -> tuple[str, ...]:
        return ("momentum_buffer",) if hyperparameters["momentum"] != 0.0 else ()

    def _update(self, param: np.ndarray, grad: np.ndarray, state: dict) -> None:
        if self.weight_decay != 0.0:
            grad = grad + self.weight_decay * param
        if self.momentum != 0.0:
            buffer = state["momentum_buffer"]
            if self.step_count == 1:
                buffer[...] = grad
            else:
                buffer *= self.momentum
                buffer += (1.0 - self.dampening) * grad
            grad = grad + self.momentum * buffer if self.nesterov else buffer
        param -= self.lr * grad


class Adam(Optimizer):
    """Adam (Kingma & Ba) with optional AMSGrad, as torch.optim.Adam.

    ``weight_decay`` adds ``weight_decay * p`` to the gradient (L2 penalty); see AdamW for the
    decoupled form.
    """

    _decoupled_decay = False

    def __init__(
        self,
        module,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
    ) -> None:
        owner = type(self).__name__
        if not isinstance(betas, tuple | list) or len(betas) != 2:
            raise UserTypeError(f"{owner}: betas must be a pair (beta1, beta2), got {betas!r}")
        super().__init__(
            module,
            lr=lr,
            beta1=betas[0],
            beta2=betas[1],
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
        )

    @property
    def betas(self) -> tuple[float, float]:
        return (self.beta1, self.beta2)

    def _check(self, hyperparameters: dict) -> dict:
        owner = type(self).__name__
        checked = _numbers(owner, hyperparameters, ("lr", "eps", "weight_decay"))
        for index, name in enumerate(("beta1", "beta2")):
            checked[name] = _number(owner, f"betas[{index}]", hyperparameters[name], high=1.0)
        checked["amsgrad"] = _flag(owner, "amsgrad", hyperparameters["amsgrad"])
        return checked

    @staticmethod
    def _buffer_names(hyperparameters: dict) -> tuple[str, ...]:
        amsgrad = ("max_exp_avg_sq",) if hyperparameters["amsgrad"] else ()
        return ("exp_avg", "exp_avg_sq", *amsgrad)

    def _update(self, param: np.ndarray, grad: np.ndarray, state: dict) -> None:
        if self.weight_decay != 0.0:
            if self._decoupled_decay:
                param *= 1.0 - self.lr * self.weight_decay
            else:
                grad = grad + self.weight_decay * param
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg *= self.beta1
        exp_avg += (1.0 - self.beta1) * grad
        exp_avg_sq *= self.beta2
        exp_avg_sq += (1.0 - self.beta2) * grad * grad
        if self.amsgrad:
            np.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
            exp_avg_sq = state["max_exp_avg_sq"]
        bias_correction1 = 1.0 - self.beta1**self.step_count
        bias_correction2 = 1.0 - self.beta2**self.step_count
        denominator = np.sqrt(exp_avg_sq) / math.sqrt(bias_correction2) + self.eps
        param -= (self.lr / bias_correction1) * exp_avg / denominator


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), as torch.optim.AdamW:
    ``p *= 1 - lr * weight_decay`` before the Adam step, the gradient left alone."""

    _decoupled_decay = True

    def __init__(
        self,
        module,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
    ) -> None:
        super().__init__(module, lr, betas, eps, weight_decay, amsgrad)


class RMSprop(Optimizer):
    """RMSprop with optional momentum and centering, as torch.optim.RMSprop."""

    def __init__(
        self,
        module,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
    ) -> None:
        super().__init__(
            module,
            lr=lr,
            alpha=alpha,
            eps=eps,
            weight_decay=weight_decay,
            momentum=momentum,
            centered=centered,
        )

    def _check(self, hyperparameters: dict) -> dict:
        names = ("lr", "alpha", "eps", "weight_decay", "momentum")
        checked = _numbers("RMSprop", hyperparameters, names)
        checked["centered"] = _flag("RMSprop", "centered", hyperparameters["centered"])
        return checked

    @staticmethod
    def _buffer_names(hyperparameters: dict) -> tuple[str, ...]:
        centered = ("grad_avg",) if hyperparameters["centered"] else ()
        momentum = ("momentum_buffer",) if hyperparameters["momentum"] > 0.0 else ()
        return ("square_avg", *centered, *momentum)

    def _update(self, param: np.ndarray, grad: np.ndarray, state: dict) -> None:
        if self.weight_decay != 0.0:
            grad = grad + self.weight_decay * param
        square_avg = state["square_avg"]
        square_avg *= self.alpha
        square_avg += (1.0 - self.alpha) * grad * grad
        if self.centered:
            grad_avg = state["grad_avg"]
            grad_avg *= self.alpha
            grad_avg += (1.0 - self.alpha) * grad
            denominator = np.sqrt(square_avg - grad_avg * grad_avg) + self.eps
        else:
            denominator = np.sqrt(square_avg) + self.eps
        if self.momentum > 0.0:
            buffer = state["momentum_buffer"]
            buffer *= self.momentum
            buffer += grad / denominator
            param -= self.lr * buffer
        else:
            param -= self.lr * grad / denominator


class Adagrad(Optimizer):
    """Adagrad with learning-rate decay, as torch.optim.Adagrad."""

    def __init__(
        self,
        module,
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
    ) -> None:
        super().__init__(
            module,
            lr=lr,
            lr_decay=lr_decay,
            weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value,
            eps=eps,
        )

    def _check(self, hyperparameters: dict) -> dict:
        return _numbers("Adagrad", hyperparameters, tuple(hyperparameters))

    @staticmethod
    def _buffer_names(hyperparameters: dict) -> tuple[str, ...]:
        return ("sum",)

    def _initial_value(self, buffer: str) -> float:
        return self.initial_accumulator_value

    def _update(self, param: np.ndarray, grad: np.ndarray, state: dict) -> None:
        if self.weight_decay != 0.0:
            grad = grad + self.weight_decay * param
        decayed_lr = self.lr / (1.0 + (self.step_count - 1) * self.lr_decay)
        square_sum = state["sum"]
        square_sum += grad * grad
        param -= decayed_lr * grad / (np.sqrt(square_sum) + self.eps)


def _number(owner: str, name: str, value, high: float | None = None) -> float:
    """``value`` as a float in [0, high) (or [0, inf) without ``high``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise UserTypeError(f"{owner}: {name} must be a number, got {type(value).__name__}")
    value = float(value)
    inside = 0.0 <= value < high if high is not None else 0.0 <= value < math.inf
    if not inside:
        bounds = f"in [0, {high})" if high is not None else "a finite number >= 0"
        raise UserError(f"{owner}: {name} must be {bounds}, got {value}")
    return value


def _numbers(owner: str, hyperparameters: dict, names: tuple[str, ...]) -> dict:
    return {name: _number(owner, name, hyperparameters[name]) for name in names}


def _flag(owner: str, name: str, value) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise UserTypeError(f"{owner}: {name} must be True or False, got {value!r}")
    return bool(value)


def _check_module(module, owner: str) -> None:
    """TypeError/ValueError unless ``module`` has matching float ``params`` and ``grads``."""
    params, grads = getattr(module, "params", None), getattr(module, "grads", None)
    if not isinstance(params, dict) or not isinstance(grads, dict):
        raise UserTypeError(
            f"{owner} needs a module with `params` and `grads` dicts (an rnnkit Module), "
            f"got {type(module).__name__}"
        )
    if not params:
        raise UserError(f"{owner}: the module has no parameters to optimize")
    if set(params) != set(grads):
        raise UserError(
            f"{owner}: the module's params and grads have different keys: "
            f"{sorted(set(params) ^ set(grads))}"
        )
    for name, param in params.items():
        if not isinstance(param, np.ndarray) or param.dtype.kind != "f":
            raise UserTypeError(f"{owner}: params['{name}'] must be a float NumPy array")
        if np.shape(grads[name]) != param.shape:
            raise UserError(
                f"{owner}: grads['{name}'] has shape {np.shape(grads[name])}, but the "
                f"parameter has {param.shape}"
            )
