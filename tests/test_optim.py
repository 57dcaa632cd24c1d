"""Optimizers, learning-rate schedules and gradient clipping against PyTorch, in float64.

Each optimizer runs 20 steps on the same parameters with the same sequence of random gradients
as its torch.optim namesake; schedules reproduce torch's learning-rate sequences; a state_dict
saved mid-run (scalars through JSON, as a checkpoint stores them) resumes bit-identically.
"""

import json

import numpy as np
import pytest

import rnnkit
from rnnkit.train.clip import clip_grad_norm, clip_grad_value
from rnnkit.train.optim import SGD, Adagrad, Adam, AdamW, RMSprop
from rnnkit.train.schedules import CosineAnnealingLR, ReduceLROnPlateau, StepLR

SHAPES = {"weight": (3, 4), "bias": (4,), "rnn.weight_hh_l0": (2, 2)}
STEPS = 20


class Toy:
    """The smallest thing an optimizer accepts: ``params``/``grads`` dicts and ``zero_grad``."""

    def __init__(self, seed: int = 0, dtype=np.float64) -> None:
        rng = np.random.default_rng(seed)
        self.params = {name: rng.standard_normal(s).astype(dtype) for name, s in SHAPES.items()}
        self.grads = {name: np.zeros_like(value) for name, value in self.params.items()}

    def zero_grad(self) -> None:
        for grad in self.grads.values():
            grad.fill(0.0)


def gradient_sequence(steps: int = STEPS, seed: int = 1) -> list[dict[str, np.ndarray]]:
    """Random gradients whose scale jumps now and then (so AMSGrad's maximum matters)."""
    rng = np.random.default_rng(seed)
    scales = [3.0 if step % 7 == 0 else 0.5 for step in range(steps)]
    return [
        {name: rng.standard_normal(s) * scale for name, s in SHAPES.items()} for scale in scales
    ]


def run(optimizer, gradients) -> None:
    for step_gradients in gradients:
        optimizer.zero_grad()
        for name, grad in step_gradients.items():
            optimizer.module.grads[name] += grad
        optimizer.step()


CASES = [
    (SGD, {"lr": 0.1}),
    (SGD, {"lr": 0.1, "weight_decay": 0.05}),
    (SGD, {"lr": 0.1, "momentum": 0.9, "dampening": 0.2, "weight_decay": 0.05}),
    (SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    (SGD, {"lr": 0.1, "momentum": 0.8, "nesterov": True, "weight_decay": 0.05}),
    (Adam, {}),
    (Adam, {"lr": 0.05, "weight_decay": 0.1}),
    (Adam, {"lr": 0.05, "betas": (0.8, 0.95), "eps": 1e-6, "amsgrad": True}),
    (Adam, {"lr": 0.05, "betas": (0.5, 0.9), "weight_decay": 0.1, "amsgrad": True}),
    (AdamW, {}),
    (AdamW, {"lr": 0.05, "weight_decay": 0.3}),
    (AdamW, {"lr": 0.05, "betas": (0.9, 0.9), "weight_decay": 0.3, "amsgrad": True}),
    (RMSprop, {}),
    (RMSprop, {"lr": 0.02, "alpha": 0.9, "weight_decay": 0.1}),
    (RMSprop, {"lr": 0.02, "momentum": 0.9}),
    (RMSprop, {"lr": 0.02, "centered": True}),
    (RMSprop, {"lr": 0.02, "alpha": 0.8, "momentum": 0.5, "centered": True, "weight_decay": 0.1}),
    (Adagrad, {}),
    (Adagrad, {"lr": 0.1, "lr_decay": 0.05, "weight_decay": 0.1, "initial_accumulator_value": 0.5}),
]
CASE_IDS = [f"{cls.__name__}-{'-'.join(map(str, kwargs)) or 'defaults'}" for cls, kwargs in CASES]


@pytest.mark.parametrize(("optimizer_class", "kwargs"), CASES, ids=CASE_IDS)
def test_optimizer_matches_torch(torch, optimizer_class, kwargs):
    model, gradients = Toy(), gradient_sequence()
    torch_params = {n: torch.tensor(v, requires_grad=True) for n, v in model.params.items()}
    torch_optimizer = getattr(torch.optim, optimizer_class.__name__)(
        list(torch_params.values()), **kwargs
    )
    run(optimizer_class(model, **kwargs), gradients)
    for step_gradients in gradients:
        for name, param in torch_params.items():
            param.grad = torch.tensor(step_gradients[name])
        torch_optimizer.step()
    for name, param in torch_params.items():
        expected = param.detach().numpy()
        assert not np.allclose(expected, Toy().params[name])  # the parameters did move
        np.testing.assert_allclose(model.params[name], expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("optimizer_class", "kwargs"), CASES, ids=CASE_IDS)
def test_state_dict_resumes_bit_identically(optimizer_class, kwargs):
    gradients = gradient_sequence()
    uninterrupted = Toy()
    optimizer = optimizer_class(uninterrupted, **kwargs)
    run(optimizer, gradients[:10])
    optimizer.lr *= 0.5  # as a schedule would: the saved state must carry it
    run(optimizer, gradients[10:])

    first = Toy()
    optimizer = optimizer_class(first, **kwargs)
    run(optimizer, gradients[:10])
    optimizer.lr *= 0.5
    saved_params = {name: value.copy() for name, value in first.params.items()}
    saved = optimizer.state_dict()
    run(optimizer, gradients[10:12])  # must not leak into the saved state
    arrays = {key: value for key, value in saved.items() if isinstance(value, np.ndarray)}
    scalars = json.loads(json.dumps({k: v for k, v in saved.items() if k not in arrays}))

    resumed = Toy(seed=5)
    for name, value in saved_params.items():
        resumed.params[name][...] = value
    fresh = optimizer_class(resumed, **kwargs)
    fresh.load_state_dict({**scalars, **arrays})
    run(fresh, gradients[10:])
    for name, value in uninterrupted.params.items():
        assert np.array_equal(resumed.params[name], value), name


@pytest.mark.parametrize(("optimizer_class", "kwargs"), CASES, ids=CASE_IDS)
def test_buffers_follow_the_parameter_dtype(optimizer_class, kwargs):
    double = optimizer_class(Toy(), **kwargs)
    run(double, gradient_sequence(steps=3))
    single = optimizer_class(Toy(dtype=np.float32), **kwargs)
    run(single, gradient_sequence(steps=3))
    restored = optimizer_class(Toy(dtype=np.float32), **kwargs)
    restored.load_state_dict(double.state_dict())  # float64 buffers are cast on the way in
    for optimizer in (single, restored):
        buffers = [v for v in optimizer.state_dict().values() if isinstance(v, np.ndarray)]
        assert buffers or optimizer_class is SGD
        assert all(value.dtype == np.float32 for value in buffers)


def test_updates_are_in_place_through_a_real_lstm():
    class Tagger(rnnkit.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = self._add_child("rnn", rnnkit.LSTM(3, 4, dtype=np.float64, seed=0))

    model = Tagger()
    x = np.random.default_rng(2).standard_normal((5, 2, 3))
    (output, _), backward = model.rnn.forward(x)
    backward(np.ones_like(output))  # loss = output.sum()
    before = {name: value.copy() for name, value in model.rnn.params.items()}
    optimizer = SGD(model, lr=0.5)
    optimizer.step()
    for name, value in model.rnn.params.items():
        expected = before[name] - 0.5 * model.rnn.grads[name]
        np.testing.assert_array_equal(value, expected)  # seen through the child's own dict
        assert value is model.params[f"rnn.{name}"]
    assert "momentum_buffer.rnn.weight_ih_l0" in SGD(model, lr=0.1, momentum=0.9).state_dict()
    assert "exp_avg.rnn.weight_ih_l0" in Adam(model).state_dict()


def test_zero_grad_clears_the_module_gradients():
    model = Toy()
    optimizer = Adam(model)
    run(optimizer, gradient_sequence(steps=1))
    optimizer.zero_grad()
    assert all(not grad.any() for grad in model.grads.values())


def test_load_state_dict_rejects_a_mismatched_state():
    adam = Adam(Toy())
    saved = adam.state_dict()
    with pytest.raises(ValueError, match="AdamW"):
        AdamW(Toy()).load_state_dict(saved)  # same keys, different algorithm
    with pytest.raises(ValueError, match="missing"):
        Adam(Toy(), amsgrad=True).load_state_dict({**saved, "amsgrad": True})
    with pytest.raises(ValueError, match="shape"):
        Adam(Toy()).load_state_dict({**saved, "exp_avg.bias": np.zeros(5)})
    with pytest.raises(ValueError, match="lr"):
        Adam(Toy()).load_state_dict({**saved, "lr": -1.0})
    untouched = Adam(Toy())
    with pytest.raises(ValueError):
        untouched.load_state_dict({**saved, "step": 7, "lr": 0.5, "exp_avg.bias": np.zeros(5)})
    assert (untouched.step_count, untouched.lr) == (0, 1e-3)


BAD_OPTIMIZERS = [
    (SGD, {"lr": -0.1}, ValueError),
    (SGD, {"lr": float("nan")}, ValueError),
    (SGD, {"lr": "0.1"}, TypeError),
    (SGD, {"lr": 0.1, "momentum": -0.5}, ValueError),
    (SGD, {"lr": 0.1, "nesterov": True}, ValueError),
    (SGD, {"lr": 0.1, "momentum": 0.9, "dampening": 0.1, "nesterov": True}, ValueError),
    (Adam, {"betas": (1.0, 0.999)}, ValueError),
    (Adam, {"betas": (0.9, -0.1)}, ValueError),
    (Adam, {"betas": 0.9}, TypeError),
    (Adam, {"eps": -1e-8}, ValueError),
    (Adam, {"amsgrad": "yes"}, TypeError),
    (AdamW, {"weight_decay": -0.01}, ValueError),
    (RMSprop, {"alpha": -0.1}, ValueError),
    (RMSprop, {"momentum": -0.1}, ValueError),
    (Adagrad, {"lr_decay": -0.1}, ValueError),
    (Adagrad, {"initial_accumulator_value": -1.0}, ValueError),
]


@pytest.mark.parametrize(("optimizer_class", "kwargs", "error"), BAD_OPTIMIZERS)
def test_bad_hyperparameters_raise(optimizer_class, kwargs, error):
    with pytest.raises(error) as caught:
        optimizer_class(Toy(), **kwargs)
    assert "\n" not in str(caught.value)


def test_optimizer_rejects_something_that_is_not_a_module():
    with pytest.raises(TypeError, match="params"):
        SGD([np.zeros(3)], lr=0.1)
    empty = Toy()
    empty.params, empty.grads = {}, {}
    with pytest.raises(ValueError, match="no parameters"):
        Adam(empty)


def torch_lr_sequence(torch, make_schedule, metrics=None, epochs: int = 30) -> list[float]:
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    schedule = make_schedule(torch.optim.lr_scheduler, optimizer)
    rates = []
    for epoch in range(epochs):
        optimizer.step()
        schedule.step() if metrics is None else schedule.step(metrics[epoch])
        rates.append(schedule.get_last_lr()[0])
    return rates


def lr_sequence(make_schedule, metrics=None, epochs: int = 30) -> list[float]:
    optimizer = SGD(Toy(), lr=0.1)
    schedule = make_schedule(optimizer)
    rates = []
    for epoch in range(epochs):
        schedule.step() if metrics is None else schedule.step(metrics[epoch])
        assert schedule.get_last_lr() == optimizer.lr
        rates.append(optimizer.lr)
    return rates


# improves, stalls (reductions), improves by less than the threshold, then worsens (cooldown)
PLATEAU_METRICS = [5, 4, 3, 3, 3, 3, 3, 2.9999, 3, 2, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2] + [1.5] * 10
SCHEDULES = {
    "step": lambda module, opt: module.StepLR(opt, step_size=4, gamma=0.5),
    "cosine": lambda module, opt: module.CosineAnnealingLR(opt, T_max=10, eta_min=1e-3),
    "cosine_to_zero": lambda module, opt: module.CosineAnnealingLR(opt, T_max=7),
    "plateau": lambda module, opt: module.ReduceLROnPlateau(
        opt, factor=0.5, patience=2, cooldown=2, min_lr=0.004
    ),
    "plateau_abs": lambda module, opt: module.ReduceLROnPlateau(
        opt, patience=1, threshold=0.5, threshold_mode="abs", cooldown=1
    ),
    "plateau_max": lambda module, opt: module.ReduceLROnPlateau(
        opt, mode="max", factor=0.3, patience=0, threshold=0.1, cooldown=3
    ),
}


class Ours:
    """The schedules module under the names torch.optim.lr_scheduler uses."""

    StepLR, CosineAnnealingLR, ReduceLROnPlateau = StepLR, CosineAnnealingLR, ReduceLROnPlateau


@pytest.mark.parametrize("name", SCHEDULES)
def test_schedule_matches_torch(torch, name):
    metrics = PLATEAU_METRICS if name.startswith("plateau") else None
    if name == "plateau_max":
        metrics = [-m for m in metrics]
    expected = torch_lr_sequence(torch, SCHEDULES[name], metrics)
    rates = lr_sequence(lambda opt: SCHEDULES[name](Ours, opt), metrics)
    assert len(set(rates)) > 3  # the schedule did change the rate, several times
    np.testing.assert_allclose(rates, expected, rtol=0, atol=1e-13)  # 1e-12 of the rate 0.1


def test_schedule_with_optimizer_matches_torch(torch):
    model, gradients = Toy(), gradient_sequence(steps=30)
    optimizer = SGD(model, lr=0.1, momentum=0.9)
    schedule = CosineAnnealingLR(optimizer, T_max=10)
    torch_params = {n: torch.tensor(v, requires_grad=True) for n, v in model.params.items()}
    torch_optimizer = torch.optim.SGD(list(torch_params.values()), lr=0.1, momentum=0.9)
    torch_schedule = torch.optim.lr_scheduler.CosineAnnealingLR(torch_optimizer, T_max=10)
    for epoch in range(10):  # three optimizer steps per epoch
        run(optimizer, gradients[3 * epoch : 3 * epoch + 3])
        schedule.step()
        for step_gradients in gradients[3 * epoch : 3 * epoch + 3]:
            for name, param in torch_params.items():
                param.grad = torch.tensor(step_gradients[name])
            torch_optimizer.step()
        torch_schedule.step()
    for name, param in torch_params.items():
        np.testing.assert_allclose(model.params[name], param.detach().numpy(), rtol=1e-10)


@pytest.mark.parametrize("name", SCHEDULES)
def test_schedule_state_dict_resumes_exactly(name):
    metrics = PLATEAU_METRICS if name.startswith("plateau") else None
    if name == "plateau_max":
        metrics = [-m for m in metrics]
    expected = lr_sequence(lambda opt: SCHEDULES[name](Ours, opt), metrics)

    def step(schedule, epoch):
        schedule.step() if metrics is None else schedule.step(metrics[epoch])

    optimizer = SGD(Toy(), lr=0.1)
    schedule = SCHEDULES[name](Ours, optimizer)
    for epoch in range(12):
        step(schedule, epoch)
    saved_schedule = json.loads(json.dumps(schedule.state_dict()))
    saved_lr = optimizer.lr

    fresh_optimizer = SGD(Toy(), lr=0.1)
    fresh = SCHEDULES[name](Ours, fresh_optimizer)
    fresh_optimizer.lr = saved_lr  # what the optimizer's own load_state_dict restores
    fresh.load_state_dict(saved_schedule)
    rates = []
    for epoch in range(12, 30):
        step(fresh, epoch)
        rates.append(fresh_optimizer.lr)
    assert rates == expected[12:]


BAD_SCHEDULES = [
    (lambda opt: StepLR(opt, step_size=0), ValueError),
    (lambda opt: StepLR(opt, step_size=2.5), TypeError),
    (lambda opt: CosineAnnealingLR(opt, T_max=0), ValueError),
    (lambda opt: ReduceLROnPlateau(opt, mode="average"), ValueError),
    (lambda opt: ReduceLROnPlateau(opt, threshold_mode="relative"), ValueError),
    (lambda opt: ReduceLROnPlateau(opt, factor=1.0), ValueError),
    (lambda opt: ReduceLROnPlateau(opt, patience=-1), ValueError),
    (lambda opt: StepLR(object(), step_size=2), TypeError),
]


@pytest.mark.parametrize(("make", "error"), BAD_SCHEDULES)
def test_bad_schedule_arguments_raise(make, error):
    with pytest.raises(error) as caught:
        make(SGD(Toy(), lr=0.1))
    assert "\n" not in str(caught.value)


def test_schedule_load_rejects_another_schedules_state():
    saved = StepLR(SGD(Toy(), lr=0.1), step_size=3).state_dict()
    with pytest.raises(ValueError, match="CosineAnnealingLR"):
        CosineAnnealingLR(SGD(Toy(), lr=0.1), T_max=5).load_state_dict(saved)


@pytest.mark.parametrize("max_norm", [0.5, 100.0])  # clipped, and left alone
def test_clip_grad_norm_matches_torch(torch, max_norm):
    model, torch_grads = Toy(), []
    for name, grad in gradient_sequence(steps=1)[0].items():
        model.grads[name][...] = grad
        torch_grads.append(torch.zeros(grad.shape, dtype=torch.float64, requires_grad=True))
        torch_grads[-1].grad = torch.tensor(grad)
    before = {name: grad.copy() for name, grad in model.grads.items()}
    expected_norm = torch.nn.utils.clip_grad_norm_(torch_grads, max_norm).item()
    norm = clip_grad_norm(model, max_norm)
    assert norm == pytest.approx(expected_norm, rel=1e-12)
    for grad, torch_param in zip(model.grads.values(), torch_grads, strict=True):
        np.testing.assert_allclose(grad, torch_param.grad.numpy(), rtol=1e-12, atol=0)
    clipped = not np.array_equal(model.grads["weight"], before["weight"])
    assert clipped == (norm > max_norm)


def test_clip_grad_value_matches_torch(torch):
    model, torch_grads = Toy(), []
    for name, grad in gradient_sequence(steps=1)[0].items():
        model.grads[name][...] = grad
        torch_grads.append(torch.zeros(grad.shape, dtype=torch.float64, requires_grad=True))
        torch_grads[-1].grad = torch.tensor(grad)
    norm_before = np.sqrt(sum((g**2).sum() for g in model.grads.values()))
    torch.nn.utils.clip_grad_value_(torch_grads, 0.8)
    assert clip_grad_value(model, 0.8) == pytest.approx(norm_before, rel=1e-12)
    assert max(np.abs(grad).max() for grad in model.grads.values()) == 0.8
    for grad, torch_param in zip(model.grads.values(), torch_grads, strict=True):
        np.testing.assert_array_equal(grad, torch_param.grad.numpy())


@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_clip_returns_a_non_finite_norm_without_raising(bad):
    model = Toy()
    model.grads["bias"][...] = [1.0, bad, -2.0, 0.5]
    before = {name: grad.copy() for name, grad in model.grads.items()}
    norm = clip_grad_norm(model, 1.0)
    assert norm == np.inf if bad == np.inf else np.isnan(norm)
    for name, grad in model.grads.items():
        np.testing.assert_array_equal(grad, before[name])  # left for the caller to handle
    assert np.isnan(clip_grad_value(model, 1.0)) == np.isnan(bad)


@pytest.mark.parametrize("limit", [-1.0, np.nan])
def test_clip_rejects_a_bad_limit(limit):
    for clip in (clip_grad_norm, clip_grad_value):
        with pytest.raises(ValueError, match=">= 0"):
            clip(Toy(), limit)
