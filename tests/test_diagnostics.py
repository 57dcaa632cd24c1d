"""Gradient diagnostics: dL/dh_t recorded by the one BPTT pass (against finite differences), the
verdicts on fresh layers, the step Jacobian, the plot, and the GradientMonitor callback."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

import rnnkit
from conftest import numeric_gradient, relative_error
from rnnkit.diagnostics import (
    describe,
    diagnose_fresh,
    diagnose_language_model,
    gradient_flow,
    plot_grad_norms,
    recording_hidden_gradients,
    recurrent_layers,
    step_jacobian_norms,
)
from rnnkit.models.language_model import LanguageModel
from rnnkit.nn.module import Module
from rnnkit.train import checkpoints
from rnnkit.train.callbacks import GradientMonitor
from rnnkit.train.losses import mse
from rnnkit.train.optim import SGD
from rnnkit.train.trainer import Trainer

INPUTS, HIDDEN, BATCH, STEPS = 3, 4, 2, 5
RAGGED = np.array([5, 2, 4])
LAYERS = {
    "rnn_tanh": (rnnkit.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (rnnkit.RNN, {"nonlinearity": "relu"}),
    "lstm": (rnnkit.LSTM, {}),
    "gru": (rnnkit.GRU, {}),
}


def make_layer(kind: str, inputs: int = INPUTS, **options):
    layer_class, kind_options = LAYERS[kind]
    return layer_class(inputs, HIDDEN, dtype=np.float64, seed=0, **kind_options, **options)


def parts(state) -> tuple:
    return state if isinstance(state, tuple) else (state,)


def public(state_parts):
    return state_parts[0] if len(state_parts) == 1 else tuple(state_parts)


def run_backward(layer, backward, *args):
    """``backward(*args)`` while recording: (its (L*D, T, B, H) record, d_x)."""
    with recording_hidden_gradients(layer) as records:
        d_x, _ = backward(*args)
    (record,) = records[type(layer).__name__]
    return record, d_x


# ------------------------------------------------------------------- dL/dh_t itself


@pytest.mark.parametrize("kind", LAYERS)
def test_recorded_dh_and_its_norms_match_finite_differences(kind):
    """dL/dh_t = d loss / d v_t, v_t added to h[t] (the state after step t and the output at
    step t) by running the sequence one step at a time with the state in between; float64."""
    layer = make_layer(kind)
    state_parts = 2 if kind == "lstm" else 1
    rng = np.random.default_rng(1)
    x = rng.standard_normal((STEPS, BATCH, INPUTS))
    state0 = public(
        tuple(0.5 * rng.standard_normal((1, BATCH, HIDDEN)) for _ in range(state_parts))
    )
    R_y = rng.standard_normal((STEPS, BATCH, HIDDEN))  # loss = sum(y * R_y) + sum(final * R_s)
    R_s = tuple(rng.standard_normal((1, BATCH, HIDDEN)) for _ in range(state_parts))

    def backprop(model) -> float:
        (output, final), backward = model.forward(x, state=state0)
        backward(R_y, public(R_s))
        return float(np.sum(output * R_y))

    with recording_hidden_gradients(layer) as records:
        backprop(layer)
    record = records[type(layer).__name__][0][0]  # (T, B, H)
    offsets = np.zeros((STEPS, BATCH, HIDDEN))  # v_t, nudged by the finite differences

    def loss() -> float:
        state, total = state0, 0.0
        for t in range(STEPS):
            y, state = layer(x[t : t + 1], state=state)
            h, *rest = parts(state)
            state = public((h + offsets[t], *rest))
            total += np.sum((y[0] + offsets[t]) * R_y[t])
        return total + sum(np.sum(s * r) for s, r in zip(parts(state), R_s, strict=True))

    numeric = numeric_gradient(loss, offsets)
    assert relative_error(record, numeric) <= 1e-6
    flow = gradient_flow(layer, backprop)
    norms = flow["hidden_grad_norms"][type(layer).__name__]["layer 0"]
    np.testing.assert_allclose(norms, np.linalg.norm(numeric, axis=(1, 2)), rtol=1e-6)


def one_direction(layer, kind: str, layer_index: int, direction: int):
    """A one-layer, one-direction layer with ``layer``'s weights of (layer_index, direction)."""
    single = make_layer(kind, inputs=INPUTS if layer_index == 0 else 2 * HIDDEN)
    suffix = f"_l{layer_index}" + ("_reverse" if direction else "")
    single.load_state_dict({name: layer.params[name[:-3] + suffix] for name in single.params})
    return single


@pytest.mark.parametrize("kind", ["rnn_tanh", "lstm", "gru"])
def test_stacked_bidirectional_record_holds_each_directions_own(kind):
    """Entry 2k+d is what layer k, direction d records when run alone on its own input and
    output gradient; the reverse direction's entries are put back in input order."""
    layer = make_layer(kind, num_layers=2, bidirectional=True)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((STEPS, BATCH, INPUTS))
    (output, _), backward = layer.forward(x)
    d_output = rng.standard_normal(output.shape)
    record, _ = run_backward(layer, backward, d_output)

    inputs, backwards = x, []
    for k in range(2):
        forward_dir, reverse_dir = (
            one_direction(layer, kind, k, 0),
            one_direction(layer, kind, k, 1),
        )
        (y_forward, _), back_forward = forward_dir.forward(inputs)
        (y_reverse, _), back_reverse = reverse_dir.forward(inputs[::-1])
        backwards.append(((forward_dir, back_forward), (reverse_dir, back_reverse)))
        inputs = np.concatenate([y_forward, y_reverse[::-1]], axis=2)  # (T, B, 2H)
    np.testing.assert_allclose(inputs, output, rtol=1e-12, atol=1e-12)
    d_inputs = d_output
    for k in reversed(range(2)):
        (forward_dir, back_forward), (reverse_dir, back_reverse) = backwards[k]
        alone_forward, dx_forward = run_backward(forward_dir, back_forward, d_inputs[:, :, :HIDDEN])
        alone_reverse, dx_reverse = run_backward(
            reverse_dir, back_reverse, d_inputs[::-1, :, HIDDEN:]
        )
        np.testing.assert_allclose(record[2 * k], alone_forward[0], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(
            record[2 * k + 1], alone_reverse[0][::-1], rtol=1e-12, atol=1e-14
        )
        d_inputs = dx_forward + dx_reverse[::-1]


@pytest.mark.parametrize("kind", LAYERS)
def test_ragged_record_is_each_sequences_own_and_zero_past_its_length(kind):
    layer = make_layer(kind, num_layers=2, bidirectional=True)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((STEPS, len(RAGGED), INPUTS))
    (output, final), backward = layer.forward(x, RAGGED)
    d_output = rng.standard_normal(output.shape)  # nonzero in the padding: it must not count
    d_final = tuple(rng.standard_normal(part.shape) for part in parts(final))
    record, _ = run_backward(layer, backward, d_output, public(d_final))
    for b, length in enumerate(RAGGED):
        assert np.all(record[:, length:, b] == 0.0)
        (_, _), alone_backward = layer.forward(x[:length, b : b + 1])
        alone, _ = run_backward(
            layer, alone_backward, d_output[:length, b : b + 1],
            public(tuple(part[:, b : b + 1] for part in d_final)),
        )  # fmt: skip
        np.testing.assert_allclose(record[:, :length, b], alone[:, :, 0], rtol=1e-12, atol=1e-14)


def test_recording_is_off_outside_the_context_and_names_follow_the_parameters():
    class Model(Module):
        def __init__(self):
            super().__init__()
            self.encoder = self._add_child("encoder", make_layer("gru"))
            self.chain = self._add_child("chain", rnnkit.Sequential(make_layer("lstm")))

    model = Model()
    layers = recurrent_layers(model)
    assert list(layers) == ["encoder", "chain.0"]
    with recording_hidden_gradients(model) as records:
        assert all(layer.dh_records is records[name] for name, layer in layers.items())
    assert all(layer.dh_records is None for layer in layers.values())
    (output, _), backward = model.encoder.forward(np.ones((STEPS, 1, INPUTS)))
    backward(np.ones_like(output))
    assert records == {"encoder": [], "chain.0": []}  # nothing recorded after the context

    def twice(model) -> float:
        for _ in range(2):
            (output, _), backward = model.encoder.forward(np.ones((STEPS, 1, INPUTS)))
            backward(np.ones_like(output))
        return 0.0

    with pytest.raises(ValueError, match="'encoder' ran backward 2 times"):
        gradient_flow(model, twice)


# ------------------------------------------------------------------- fresh layers: verdicts


def test_tanh_rnn_vanishes_and_an_lstm_with_forget_bias_1_keeps_far_more():
    tanh = diagnose_fresh("rnn", "tanh", length=100, hidden=64, seed=0)
    lstm = diagnose_fresh("lstm", length=100, hidden=64, seed=0, forget_bias=1.0, jacobian=False)
    assert tanh["ratio_first_to_last"] < 1e-3 and tanh["verdict"] == "vanishing"
    assert lstm["ratio_first_to_last"] >= 100 * tanh["ratio_first_to_last"]
    assert len(tanh["grad_norms"]) == 100
    assert tanh["ratio_first_to_last"] == tanh["grad_norms"][0] / tanh["grad_norms"][-1]
    line = describe(tanh)
    assert line.startswith("tanh RNN (uniform init), T=100, H=64: the gradient at step 0 is ")
    assert line.endswith(" of the gradient at step 99: vanishing")
    assert lstm["jacobian_norms"] is None and len(tanh["jacobian_norms"]) == 100
    assert json.loads(json.dumps(tanh)) == tanh  # JSON-able, for the CLI


def test_relu_rnn_at_spectral_radius_1_5_explodes():
    result = diagnose_fresh("rnn", "relu", init="identity", length=100, spectral_radius=1.5)
    assert result["verdict"] == "exploding" and result["ratio_first_to_last"] > 1e2
    np.testing.assert_allclose(result["jacobian_norms"], 1.5, rtol=1e-12)  # W_hh = 1.5 I
    assert "spectral radius 1.5" in describe(result)


def test_stable_and_stacked_layers():
    result = diagnose_fresh("rnn", "relu", init="identity", length=20, hidden=8, layers=2)
    assert result["verdict"] == "stable"  # the IRNN passes gradients on unchanged
    assert list(result["grad_norms_by_layer"]) == ["layer 0", "layer 1"]
    assert result["grad_norms"] == result["grad_norms_by_layer"]["layer 0"]
    assert describe(result).startswith(  # the ratio is the first layer's, named as in the plot
        "relu RNN (identity init), T=20, H=8: in layer 0 (the first of 2) the gradient at step 0 "
        "is "
    )


@pytest.mark.parametrize("layers", [1, 2])
def test_a_language_models_diagnosis_names_its_layer_when_it_has_several(layers):
    model = LanguageModel(6, 4, 5, layers, "gru", seed=0)
    result = diagnose_language_model(model, np.arange(8) % 6)
    where = "in layer 0 (the first of 2) the" if layers == 2 else "the"
    assert describe(result).startswith(
        f"GRU language model, {layers} layer(s), T=7, H=5: {where} gradient at step 0 is "
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cell": "lstmm"}, "cell='lstmm' is not one of"),
        ({"cell": "gru", "nonlinearity": "relu"}, "for cell='rnn' only"),
        ({"cell": "rnn", "length": 0}, "length must be an int >= 1"),
        ({"cell": "rnn", "spectral_radius": -1.0}, "spectral_radius must be > 0"),
        ({"cell": "rnn", "forget_bias": 1.0}, "forget_bias"),
    ],
)
def test_bad_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        diagnose_fresh(**options)


# ------------------------------------------------------------------- the step Jacobian


def test_jacobian_of_an_irnn_with_positive_preactivations_is_the_identity():
    layer = rnnkit.RNN(2, 8, nonlinearity="relu", init="identity", dtype=np.float64, seed=0)
    layer.params["weight_ih_l0"][...] = np.abs(layer.params["weight_ih_l0"])
    x = np.random.default_rng(0).uniform(0.5, 1.0, (6, 3, 2))  # a[t] > 0 at every step
    np.testing.assert_allclose(step_jacobian_norms(layer, x), 1.0, rtol=1e-12)


def test_jacobian_of_a_tanh_rnn_with_tiny_weights_is_about_the_norm_of_w_hh():
    layer = rnnkit.RNN(3, 6, dtype=np.float64, seed=0)
    for value in layer.params.values():
        value *= 1e-4  # h stays near 0, where tanh' = 1
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    w_hh_norm = np.linalg.norm(layer.params["weight_hh_l0"], 2)
    np.testing.assert_allclose(step_jacobian_norms(layer, x), w_hh_norm, rtol=1e-6)


@pytest.mark.parametrize("kind", LAYERS)
def test_jacobian_norms_match_finite_differences(kind):
    """The spectral norm of d state[t] / d state[t-1], the state (h, c) for an LSTM."""
    layer = make_layer(kind)
    state_parts = 2 if kind == "lstm" else 1
    x = np.random.default_rng(4).standard_normal((STEPS, BATCH, INPUTS))
    norms = step_jacobian_norms(layer, x)
    for t in (0, 3):
        for b in range(BATCH):
            before = np.zeros((state_parts, 1, HIDDEN))  # (parts, 1, H): the state before t
            if t > 0:
                before = np.stack([part[0] for part in parts(layer(x[:t, b : b + 1])[1])])

            def after(state, t=t, b=b) -> np.ndarray:
                _, new = layer(x[t : t + 1, b : b + 1], state=public(tuple(state[:, None])))
                return np.stack([part[0] for part in parts(new)]).ravel()  # (S,)

            jacobian = np.stack(
                [
                    numeric_gradient(lambda i=i, state=before: after(state)[i], before).ravel()
                    for i in range(before.size)
                ]
            )  # (S, S): row i = d new[i] / d state, both flattened part by part
            assert norms[t, b] == pytest.approx(np.linalg.norm(jacobian, 2), rel=1e-6)


# ------------------------------------------------------------------- the plot


def test_plot_draws_a_png(tmp_path):
    pytest.importorskip(
        "matplotlib", reason="the plot needs matplotlib: pip install 'rnnkit[plot]'"
    )
    result = diagnose_fresh("gru", length=10, hidden=4, layers=2)
    path = plot_grad_norms(result, tmp_path / "norms.png")
    assert path.read_bytes().startswith(b"\x89PNG")


def test_plot_without_matplotlib_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    result = diagnose_fresh("rnn", length=5, hidden=4)
    with pytest.raises(ImportError, match=r"pip install 'rnnkit\[plot\]'"):
        plot_grad_norms(result, tmp_path / "norms.png")
    assert not (tmp_path / "norms.png").exists()


# ------------------------------------------------------------------- the training callback


def test_training_does_not_import_the_diagnostics():
    """No import loop: the diagnostics read rnnkit.train (losses, figures), and rnnkit.train takes
    the norms it shares with them from rnnkit.nn.norms, never from rnnkit.diagnostics."""
    code = "import sys, rnnkit.train; print('rnnkit.diagnostics' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


class NoiseTask:
    """Regression of noise by a relu RNN's outputs: 4 fixed batches per epoch."""

    def batches_per_epoch(self) -> int:
        return 4

    def train_batch(self, model, epoch, index, carry):
        rng = np.random.default_rng([epoch, index])
        x = rng.standard_normal((6, 3, 2)).astype(np.float32)
        targets = rng.standard_normal((6, 3, 4)).astype(np.float32)
        (output, _), backward = model.forward(x)
        loss, d_output = mse(output, targets)
        backward(d_output)
        return loss, 3, None

    def validate(self, model) -> dict:
        return {"val_loss": 0.0}


def noise_trainer(out_dir, lr: float, **options) -> tuple[Trainer, GradientMonitor]:
    model = rnnkit.RNN(2, 4, nonlinearity="relu", seed=0)
    monitor = GradientMonitor()
    options.setdefault("steps", 8)
    trainer = Trainer(
        model, SGD(model, lr=lr), NoiseTask(), out_dir=out_dir, callbacks=[monitor],
        progress=False, **options,
    )  # fmt: skip
    return trainer, monitor


def test_monitor_logs_norms_before_clipping_and_counts_clipped_steps(tmp_path):
    trainer, monitor = noise_trainer(tmp_path, lr=0.1, clip_norm=1.0)
    trainer.fit()
    steps = [r for r in trainer.history if r["kind"] == "step"]
    assert [entry["step"] for entry in monitor.history] == list(range(1, 9))
    logged = [json.loads(line) for line in (tmp_path / "grad_norms.jsonl").read_text().splitlines()]
    assert logged == monitor.history
    clipped = [r["grad_norm"] > 1.0 for r in steps]
    assert [entry["clipped"] for entry in monitor.history] == clipped
    assert monitor.clipped_steps == sum(clipped) and 0 < sum(clipped) < 8
    for record, entry in zip(steps, monitor.history, strict=True):
        assert entry["grad_norm"] == record["grad_norm"]
        assert set(entry["params"]) == set(trainer.model.params)
        by_params = math.sqrt(sum(norm**2 for norm in entry["params"].values()))
        assert by_params == pytest.approx(record["grad_norm"], rel=1e-5)
    assert monitor.summary(1.0).startswith("gradient norm: largest ")
    assert monitor.summary(1.0).endswith(f"; {sum(clipped)} of 8 steps clipped to 1")

    fresh, _ = noise_trainer(None, lr=0.1)  # step 1's gradient, unclipped, by hand
    fresh.optimizer.zero_grad()
    fresh.task.train_batch(fresh.model, 0, 0, None)
    for name, grad in fresh.model.grads.items():
        assert monitor.history[0]["params"][name] == pytest.approx(np.linalg.norm(grad), rel=1e-5)


def test_monitor_log_follows_a_resumed_run(tmp_path):
    first, _ = noise_trainer(tmp_path, lr=0.1, steps=5, checkpoint_every=2)
    first.fit()
    # a kill after step 5 was logged, before its checkpoint, in the middle of the next line
    (tmp_path / "checkpoints/step-00000005.safetensors").unlink()
    with open(tmp_path / "grad_norms.jsonl", "a", encoding="utf-8") as log:
        log.write('{"step": 6, "grad_no')
    second, monitor = noise_trainer(tmp_path, lr=0.1, steps=6)
    second.fit(resume=True)  # from step 4
    logged = [json.loads(line) for line in (tmp_path / "grad_norms.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in logged] == [1, 2, 3, 4, 5, 6]
    assert logged[4:] == monitor.history  # steps 5 and 6, run by the resumed process


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_huge_learning_rate_shows_exploding_gradients_and_stops_cleanly(tmp_path):
    """Builds on test_trainer's huge-learning-rate test: here the rate is huge from the start,
    the monitor's log shows the gradient norm exploding, and the run stops on its own."""
    trainer, monitor = noise_trainer(tmp_path, lr=1e3, steps=100, checkpoint_every=1)
    summary = trainer.fit()
    last_good = summary["steps"]
    assert summary["failed"] and 2 <= last_good < 100
    reason = summary["stop_reason"]
    assert reason.startswith(f"stopped at step {last_good + 1}: ")
    assert reason.endswith("lower the learning rate or clip harder")
    norms = [entry["grad_norm"] for entry in monitor.history]
    assert len(norms) == last_good and all(math.isfinite(norm) for norm in norms)
    assert max(norms) > 1e6 * norms[0]  # exploding
    newest = checkpoints.list_checkpoints(tmp_path / "checkpoints")[-1]
    arrays, state = checkpoints.read_checkpoint(newest)
    # the newest checkpoint kept is from before the loss went over its limit (the Trainer's
    # divergence rule), its weights finite
    assert state["step"] < last_good and all(np.isfinite(a).all() for a in arrays.values())
    resumed, _ = noise_trainer(tmp_path, lr=0.01, steps=state["step"] + 3)
    resumed.fit(resume=True)  # from the last good checkpoint, at the lower rate given
    assert not resumed.failed and resumed.optimizer.lr == 0.01
    steps = [r for r in resumed.history if r["kind"] == "step"]
    assert [r["step"] for r in steps] == [state["step"] + 1, state["step"] + 2, state["step"] + 3]


def test_monitor_logs_every_nth_step_but_counts_them_all():
    trainer, _ = noise_trainer(None, lr=0.1, clip_norm=1.0)
    monitor = GradientMonitor(every=3)
    trainer.callbacks = [monitor]
    trainer.fit()
    assert [entry["step"] for entry in monitor.history] == [3, 6]
    norms = [r["grad_norm"] for r in trainer.history if r["kind"] == "step"]
    assert monitor.steps == 8 and monitor.clipped_steps == sum(norm > 1.0 for norm in norms)
    assert monitor.largest == (max(norms), norms.index(max(norms)) + 1)
    with pytest.raises(ValueError, match="every must be an int >= 1"):
        GradientMonitor(every=0)
