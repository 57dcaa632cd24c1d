"""Vanishing gradients on the adding problem at length 100: seen through time, and what fixes them.

Four recurrent layers, each read by a Linear layer at the last step (the model, task and data of
``examples/adding_problem.py``): a tanh RNN with the default init, a relu RNN with identity init
(IRNN, Le et al. 2015), an LSTM and a GRU. For each, one figure shows

- |dL/dh_t| through time on a fixed batch of 256 sequences, relative to the last step, at
  initialisation and after training (``rnnkit.diagnostics.gradient_flow`` on a float64 copy);
- the validation MSE while training (predicting the mean gives about 0.167).

    OPENBLAS_NUM_THREADS=1 python examples/vanishing_gradients.py --steps 1500

writes ``docs/vanishing_gradients.png`` and prints a table: the ratio |dL/dh_0| / |dL/dh_99|
before and after training, how many steps were clipped, and the final validation MSE.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

# adding_problem.py sits beside this file, and a script's own folder is on sys.path
from adding_problem import AddingTask, LastStepRegressor, adding_batch

import rnnkit
from rnnkit.diagnostics import gradient_flow, verdict
from rnnkit.nn.module import Module
from rnnkit.train.callbacks import GradientMonitor
from rnnkit.train.losses import mse
from rnnkit.train.optim import Adam
from rnnkit.train.trainer import Trainer

MODELS = {  # label: (layer class, its options, legend)
    "tanh RNN": (rnnkit.RNN, {"nonlinearity": "tanh"}, "tanh RNN"),
    "IRNN": (rnnkit.RNN, {"nonlinearity": "relu", "init": "identity"}, "IRNN (relu, W_hh = I)"),
    "LSTM": (rnnkit.LSTM, {}, "LSTM"),
    "GRU": (rnnkit.GRU, {}, "GRU"),
}
MEAN_MSE = 0.167  # the MSE of always predicting 1, the mean of the target


class Regressor(LastStepRegressor):
    """adding_problem's many-to-one model (its forward and backward) around any recurrent layer;
    LastStepRegressor's own constructor only builds layers by cell name, with default options."""

    def __init__(self, layer, seed: int) -> None:
        Module.__init__(self)
        self.rnn = self._add_child("rnn", layer)
        head = rnnkit.Linear(layer.hidden_size, 1, dtype=layer.dtype, seed=seed + 1)
        self.head = self._add_child("head", head)


def build(label: str, hidden: int, seed: int, dtype=np.float32) -> Regressor:
    layer_class, options, _ = MODELS[label]
    return Regressor(layer_class(2, hidden, dtype=dtype, seed=seed, **options), seed)


def gradient_through_time(model: Regressor, label: str, batch) -> np.ndarray:
    """|dL/dh_t| / |dL/dh_{T-1}| (T,) of the MSE on ``batch``, in a float64 copy of ``model``."""
    twin = build(label, model.rnn.hidden_size, 0, np.float64)
    twin.load_state_dict(model.params)
    inputs, targets = (part.astype(np.float64) for part in batch)

    def backprop(regressor) -> float:
        prediction, backward = regressor.forward(inputs)
        loss, d_prediction = mse(prediction, targets)
        backward(d_prediction)
        return loss

    norms = np.array(gradient_flow(twin, backprop)["hidden_grad_norms"]["rnn"]["layer 0"])
    return norms / norms[-1]


def run(label: str, args, probe) -> dict:
    """Train one model; its gradients through time before and after, and its learning curve."""
    model = build(label, args.hidden, args.seed)
    before = gradient_through_time(model, label, probe)
    task = AddingTask(args.batch, args.length, args.seed)
    initial = task.validate(model)["val_mse"]
    monitor = GradientMonitor()
    trainer = Trainer(
        model, Adam(model, lr=args.lr), task,
        steps=args.steps, clip_norm=args.clip, validate_every=args.validate_every,
        monitor="val_mse", callbacks=[monitor], progress=False,
    )  # fmt: skip
    start = time.perf_counter()
    summary = trainer.fit()
    validations = [r for r in trainer.history if r["kind"] == "validation"]
    return {
        "label": label,
        "before": before,
        "after": gradient_through_time(model, label, probe),
        "curve": (
            [0] + [r["step"] for r in validations],
            [initial] + [r["val_mse"] for r in validations],
        ),
        "clipped": monitor.clipped_steps,
        "steps": summary["steps"],
        "failed": summary["failed"],
        "seconds": time.perf_counter() - start,
    }


def draw(results: list[dict], args, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    colors = dict(zip(MODELS, ("tab:red", "tab:orange", "tab:blue", "tab:green"), strict=True))
    for result in results:
        color, legend = colors[result["label"]], MODELS[result["label"]][2]
        axes[0].semilogy(result["before"], color=color, label=legend)
        axes[1].semilogy(result["after"], color=color, label=legend)
        axes[2].plot(*result["curve"], "o-", ms=3, color=color, label=legend)
    last = args.length - 1
    for panel, when in zip(axes[:2], ("at initialisation", f"after {args.steps} steps"),
                           strict=True):  # fmt: skip
        panel.set_title(f"gradient through time, {when}")
        panel.set_xlabel(f"time step t (the loss reads step {last})")
        panel.set_ylabel(f"|dL/dh_t| / |dL/dh_{last}|")
        panel.axhspan(1e-2, 1e2, color="0.9", zorder=0, label="'stable' band")
    low = min(min(r["before"].min(), r["after"].min()) for r in results)
    high = max(max(r["before"].max(), r["after"].max()) for r in results)
    for panel in axes[:2]:
        panel.set_ylim(max(low, 1e-300) / 10, max(high, 1e2) * 10)
        panel.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    axes[2].axhline(MEAN_MSE, color="0.4", ls="--", lw=1, label="predict the mean")
    axes[2].set_title(f"adding problem, T={args.length}: validation MSE")
    axes[2].set_xlabel("training step")
    axes[2].set_ylabel("MSE (1,000 sequences)")
    axes[2].set_yscale("log")
    axes[2].grid(alpha=0.3, which="both")
    axes[2].legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--length", type=int, default=100, help="sequence length T")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--clip", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--validate-every", type=int, default=100)
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--out", type=Path, default=Path("docs/vanishing_gradients.png"))
    args = parser.parse_args(argv)

    probe = adding_batch(np.random.default_rng([args.seed, 7]), 256, args.length)
    results = []
    for label in args.models:
        results.append(run(label, args, probe))
        print(f"{label}: {results[-1]['seconds']:.0f} s", flush=True)
    draw(results, args, args.out)

    last = args.length - 1
    print(f"\n| model | norm of dL/dh_0 over dL/dh_{last}, at init | after {args.steps} steps | "
          "clipped steps | validation MSE |")  # fmt: skip
    print("|---|---|---|---|---|")
    for result in results:
        before, after = result["before"][0], result["after"][0]
        mse_now = result["curve"][1][-1]
        failed = " (failed)" if result["failed"] else ""
        print(
            f"| {result['label']} | {before:.1e} ({verdict(before)}) | "
            f"{after:.1e} ({verdict(after)}) | {result['clipped']} of {result['steps']} | "
            f"{mse_now:.4f}{failed} |"
        )
    print(f"\nfigure: {args.out}")
    return results


if __name__ == "__main__":
    main()
