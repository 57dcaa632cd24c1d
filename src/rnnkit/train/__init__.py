"""Training: losses (each returns the loss and its gradient), optimizers, schedules, clipping,
truncated BPTT and the training loop."""

from rnnkit.nn.norms import global_norm
from rnnkit.train.batching import epoch_batches
from rnnkit.train.callbacks import GradientMonitor
from rnnkit.train.clip import clip_grad_norm, clip_grad_value
from rnnkit.train.ctc import ctc_loss
from rnnkit.train.ctc_decoding import beam_decode, greedy_decode
from rnnkit.train.losses import binary_cross_entropy, cross_entropy, mae, mse
from rnnkit.train.optim import SGD, Adagrad, Adam, AdamW, RMSprop
from rnnkit.train.schedules import CosineAnnealingLR, ReduceLROnPlateau, StepLR
from rnnkit.train.tbptt import truncated_bptt
from rnnkit.train.trainer import Trainer

__all__ = [
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "CosineAnnealingLR",
    "GradientMonitor",
    "RMSprop",
    "ReduceLROnPlateau",
    "StepLR",
    "Trainer",
    "beam_decode",
    "binary_cross_entropy",
    "clip_grad_norm",
    "clip_grad_value",
    "cross_entropy",
    "ctc_loss",
    "epoch_batches",
    "global_norm",
    "greedy_decode",
    "mae",
    "mse",
    "truncated_bptt",
]
