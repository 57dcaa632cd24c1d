"""The picture of a diagnosis: |dL/dh_t| against the time step. Needs matplotlib."""

from __future__ import annotations

from pathlib import Path

from rnnkit.diagnostics.diagnosis import describe
from rnnkit.train.plots import add_title, pyplot, save_figure


def grad_norms_figure(result: dict):
    """A figure of |dL/dh_t| (the L2 norm over the batch's (B, H) slice) against t, log scale,
    one line per layer; the one-line diagnosis (``describe``) as its title."""
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(7, 4), layout="constrained")
    for label, norms in result["grad_norms_by_layer"].items():
        axes.semilogy(range(len(norms)), norms, label=label)
    axes.set_xlabel("time step t (the loss reads the last step only)")
    axes.set_ylabel(r"$\|\partial L / \partial h_t\|$ (L2 norm over the batch)")
    axes.grid(alpha=0.3, which="both")
    axes.legend()
    add_title(figure, describe(result))
    return figure


def plot_grad_norms(result: dict, path) -> Path:
    """Draw ``grad_norms_figure`` of a diagnosis ``result`` to the PNG file ``path``.

    Needs matplotlib (``pip install 'rnnkit[plot]'``); ImportError saying so otherwise.
    """
    if pyplot() is None:
        raise ImportError(
            "plot_grad_norms needs matplotlib, which is not installed; "
            "install it with: pip install 'rnnkit[plot]'"
        )
    path = Path(path)
    save_figure(grad_norms_figure(result), path)
    return path
