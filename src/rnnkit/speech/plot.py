"""The picture of one utterance: its log-mel spectrogram, and under it the probability of each
label at every output frame (the spikes CTC learns). Needs matplotlib (``rnnkit[plot]``)."""

from __future__ import annotations

import numpy as np

from rnnkit.train.plots import add_title, pyplot, save_figure


def frames_figure(frames, probabilities, label_names, seconds_per_step: float, title: str):
    """Two panels on one time axis (seconds).

    Args:
        frames: (T, num_mels) log-mel frames, 10 ms apart (normalised: no unit).
        probabilities: (T', num_labels) softmax of the model's output frames, ``seconds_per_step``
            apart; label 0 is the blank, drawn black and dotted.
        label_names: the num_labels names, for the legend.
    """
    plt = pyplot()
    frames, probabilities = np.asarray(frames), np.asarray(probabilities)
    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(10, 6), sharex=True, layout="constrained", height_ratios=(3, 2)
    )
    duration = len(frames) * 0.01
    image = top.imshow(
        frames.T,
        origin="lower",
        aspect="auto",
        cmap="magma",
        extent=(0, duration, 0, frames.shape[1]),
    )
    top.set_ylabel("mel band")
    figure.colorbar(image, ax=top, label="log energy (normalised)")
    times = (np.arange(len(probabilities)) + 0.5) * seconds_per_step  # (T',) step centres
    colours = plt.get_cmap("tab10")
    bottom.plot(times, probabilities[:, 0], color="black", linestyle=":", label=label_names[0])
    for label in range(1, probabilities.shape[1]):
        bottom.plot(times, probabilities[:, label], color=colours((label - 1) % 10),
                    label=label_names[label])  # fmt: skip
    bottom.set_ylim(0, 1.02)
    bottom.set_xlim(0, duration)
    bottom.set_xlabel("time (s)")
    bottom.set_ylabel("label probability")
    figure.colorbar(image, ax=bottom).remove()  # keep both panels' widths equal
    bottom.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small", ncol=1)
    add_title(figure, title)
    return figure


def plot_frames(frames, probabilities, label_names, seconds_per_step: float, path, title) -> bool:
    """Draw ``frames_figure`` to ``path``; False, drawing nothing, without matplotlib."""
    if pyplot() is None:
        return False
    save_figure(frames_figure(frames, probabilities, label_names, seconds_per_step, title), path)
    return True
