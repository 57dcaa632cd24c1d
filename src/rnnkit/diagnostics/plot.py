"""The picture of a diagnosis: |dL/dh_t| against the time step. Needs matplotlib."""

from __future__ import annotations

from pathlib import Path

from rnnkit.diagnostics.diagnosis import subject
from rnnkit.train.plots import save_figure


def plot_grad_norms(result: dict, path) -> Path:
    """Draw |dL/dh_t| against t, log scale, one line per layer, to the PNG file ``path``.

    Needs matplotlib (``pip install 'rnnkit[plot]'``); ImportError saying so otherwise.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError(
            "plot_grad_norms needs matplotlib, which is not installed; "
            "install it with: pip install 'rnnkit[plot]'"
        ) from error

    path = Path(path)
    figure, axes = plt.subplots(figsize=(7, 4))
    for label, norms in result["grad_norms_by_layer"].items():
        axes.semilogy(range(len(norms)), norms, label=label)
    axes.set_xlabel("time step t (the loss reads the last step)")
    axes.set_ylabel("|dL/dh_t|")
    axes.set_title(f"{subject(result['config'])}: {result['verdict']}", fontsize=10)
    axes.grid(alpha=0.3, which="both")
    axes.legend()
    figure.tight_layout()
    save_figure(figure, path)
    return path
