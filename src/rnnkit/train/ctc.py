"""Connectionist Temporal Classification loss (Graves et al. 2006), forward-backward in log space.

Notation, for one sequence b (the code runs all of them at once, over (B, L) arrays):

    y_t(k)    = log_softmax(logits)_{t,k}                    (T, B, C) log-probabilities
    l'        = blank, l_1, blank, l_2, ..., l_S, blank      extended labels, L_b = 2 S_b + 1
    skip(s)   = l'_s != blank and l'_s != l'_{s-2}           may a path jump from s - 2 to s?
    alpha_t(s) = y_t(l'_s) + logsumexp(alpha_{t-1}(s), alpha_{t-1}(s-1), alpha_{t-1}(s-2) if skip s)
        alpha_0(0) = y_0(blank), alpha_0(1) = y_0(l_1): log-prob of frames 0..t ending in state s
    beta_t(s) = logsumexp over s' in (s, s+1, s+2 if skip(s+2)) of y_{t+1}(l'_{s'}) + beta_{t+1}(s')
        beta_{T_b-1}(s) = 0 for s in (L_b - 1, L_b - 2): log-prob of frames t+1..T_b-1 given s at t
    log p     = logsumexp(alpha_{T_b-1}(L_b - 1), alpha_{T_b-1}(L_b - 2)),   loss = -log p

Gradient. Every alignment passes through exactly one state s at frame t, and its probability holds
the factor exp(y_t(l'_s)) once, so d p / d y_t(k) = sum over s with l'_s = k of
exp(alpha_t(s) + beta_t(s)). With the posterior gamma_t(k) = that sum / p (which sums to 1 over k),
d loss / d y_t(k) = -gamma_t(k), and through the log-softmax (d y_t(k) / d logit_t(j) =
[j = k] - softmax_t(j)):

    d loss / d logit_t(j) = softmax_t(j) - gamma_t(j),   zero at frames t >= T_b.

gamma is formed as exp(alpha + beta - log p), each term <= 1, then summed per label. beta comes
from the same forward recursion run on each sequence reversed in time and in its extended labels
(see ``_forward_backward``), so one time loop serves both passes.
"""

from __future__ import annotations

import numpy as np

from rnnkit.errors import UserError, UserTypeError
from rnnkit.nn.module import _to_numpy
from rnnkit.train.losses import _prediction

REDUCTIONS = ("mean", "sum", "none")
LOG_FLOOR = -1e300  # below any reachable log-probability, yet finite


def ctc_loss(
    logits,
    targets,
    input_lengths,
    target_lengths,
    *,
    blank: int = 0,
    reduction: str = "mean",
    zero_infinity: bool = False,
):
    """CTC loss of unnormalised scores against label sequences, and its gradient.

    Args:
        logits: (T, B, C) unnormalised scores, float32 or float64; log-softmax is applied here.
        targets: (B, S) right-padded labels, or the (sum(target_lengths),) concatenation of them;
            integers in [0, C), never ``blank``.
        input_lengths: (B,) valid frames per sequence, 0 <= T_b <= T.
        target_lengths: (B,) labels per sequence, 0 <= S_b (<= S for padded targets).
        blank: class id of the blank.
        reduction: "mean" (each loss divided by max(S_b, 1), then averaged over the batch, as
            PyTorch), "sum", or "none" (a (B,) array of losses; d_logits is then for their sum).
        zero_infinity: give impossible sequences (T_b too short for the target) loss 0 instead
            of inf. Either way their gradient is zero: PyTorch gives NaN there, which would
            poison the parameters, while the inf loss already tells the caller.
    Returns:
        loss: float (an array of the logits' dtype for "none"); d_logits: (T, B, C) d loss /
        d logits, the logits' dtype, zero at frames t >= T_b (see the module docstring).
    """
    if reduction not in REDUCTIONS:
        raise UserError(f"reduction={reduction!r} is not one of {list(REDUCTIONS)}")
    logits, input_lengths = _checked_scores(logits, input_lengths, blank)
    T, B, C = logits.shape
    target_lengths = _lengths(target_lengths, "target_lengths", B, None, "")
    labels = _padded_targets(targets, target_lengths, B)  # (B, S)
    _check_labels(labels, target_lengths, C, blank)

    log_probs = _log_softmax(logits.astype(np.float64))  # (T, B, C)
    extended = _extended_labels(labels, target_lengths, blank)  # (B, L)
    emit = np.take_along_axis(log_probs, np.broadcast_to(extended, (T, *extended.shape)), axis=2)
    alpha, log_suffix = _forward_backward(emit, extended, input_lengths, target_lengths, blank)
    log_likelihood = _log_likelihood(alpha, input_lengths, target_lengths)  # (B,)

    possible = np.isfinite(log_likelihood)
    safe_log_likelihood = np.where(possible, log_likelihood, 0.0)  # (B,)
    log_paths = alpha + log_suffix - emit  # (T, B, L): alpha + beta, -inf off the valid part
    posterior = np.exp(log_paths - safe_log_likelihood[:, None])  # (T, B, L)
    one_hot = extended[:, :, None] == np.arange(C)  # (B, L, C)
    gamma = np.matmul(posterior.transpose(1, 0, 2), one_hot).transpose(1, 0, 2)  # (T, B, C)
    d_logits = np.exp(log_probs) - gamma  # (T, B, C): softmax - gamma
    frame_valid = np.arange(T)[:, None] < input_lengths  # (T, B)

    losses = np.where(possible, -safe_log_likelihood, 0.0 if zero_infinity else np.inf)  # (B,)
    weights = np.ones(B)  # (B,): d reduced loss / d losses_b
    if reduction == "mean":
        weights = 1.0 / (np.maximum(target_lengths, 1) * B)
    d_logits *= ((frame_valid & possible) * weights)[:, :, None]  # (T, B, C)
    d_logits = d_logits.astype(logits.dtype)
    if reduction == "none":
        return losses.astype(logits.dtype), d_logits
    return float(np.sum(losses * weights) if reduction == "mean" else losses.sum()), d_logits


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    """log softmax over the last axis, shifted by the largest score so that exp cannot overflow."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _forward_backward(emit, extended, input_lengths, target_lengths, blank: int):
    """alpha (T, B, L) and beta_t(s) + y_t(l'_s) (T, B, L), -inf at t >= T_b or s >= L_b.

    The backward pass is the forward pass of the sequence reversed in time (within T_b) and in
    its extended labels (within L_b, which gives the extended reversed target):
    beta_t(s) + y_t(l'_s) = alpha^R_{T_b-1-t}(L_b-1-s). Both run in one recursion over 2B rows.
    """
    T, B, L = emit.shape
    batch = np.arange(B)[None, :, None]  # (1, B, 1)
    frames = _reversed_within(T, input_lengths)[:, :, None]  # (T, B, 1): T_b-1-t, or t past T_b
    states = _reversed_within(L, 2 * target_lengths + 1).T[None]  # (1, B, L): L_b-1-s, or s
    extended_reversed = extended[batch[0], states[0]]  # (B, L)
    both = _alpha(
        np.concatenate([emit, emit[frames, batch, states]], axis=1),  # (T, 2B, L)
        _skips(np.concatenate([extended, extended_reversed]), blank),  # (2B, L)
    )
    valid = (frames < input_lengths[:, None]) & (states < 2 * target_lengths[:, None] + 1)
    log_suffix = np.where(valid, both[:, B:][frames, batch, states], -np.inf)  # (T, B, L)
    return both[:, :B], log_suffix


def _reversed_within(size: int, lengths: np.ndarray) -> np.ndarray:
    """(size, B) indices: lengths_b - 1 - i for i < lengths_b, else i (padding stays put)."""
    index = np.arange(size)[:, None]  # (size, 1)
    return np.where(index < lengths, lengths - 1 - index, index)


def _alpha(emit: np.ndarray, skip: np.ndarray) -> np.ndarray:
    """Forward log-probabilities alpha_t(s), (T, B, L), from the emissions ``emit`` (T, B, L)
    and the (B, L) mask of states that a path may reach from s - 2.

    The three-term log-sum-exp is spelt out (shift by the largest term, floored at LOG_FLOOR so
    that -inf - -inf never makes NaN) into preallocated buffers: np.logaddexp is several times
    slower per element, and this loop is the whole cost of the loss.
    """
    T, B, L = emit.shape
    padded = np.full((T, B, L + 2), -np.inf)  # (T, B, L + 2): alpha_t(s) at [t, b, s + 2]
    padded[0, :, 2:4] = emit[0, :, :2]  # start in the first blank or the first label
    skip_penalty = np.where(skip, 0.0, -np.inf)  # (B, L): -inf where s - 2 -> s is barred
    largest, total, term, jump = (np.empty((B, L)) for _ in range(4))
    with np.errstate(divide="ignore"):  # log(0) = -inf: no path reaches that state yet
        for t in range(1, T):
            stay, step = padded[t - 1, :, 2:], padded[t - 1, :, 1 : L + 1]  # from s, s - 1
            np.add(padded[t - 1, :, :L], skip_penalty, out=jump)  # from s - 2 where skip(s)
            np.maximum(stay, step, out=largest)
            np.maximum(largest, jump, out=largest)
            np.maximum(largest, LOG_FLOOR, out=largest)
            np.exp(np.subtract(stay, largest, out=total), out=total)
            total += np.exp(np.subtract(step, largest, out=term), out=term)
            total += np.exp(np.subtract(jump, largest, out=term), out=term)
            out = padded[t, :, 2:]  # (B, L) view: alpha_t
            np.log(total, out=out)
            out += largest
            out += emit[t]
    return padded[:, :, 2:]


def _log_likelihood(alpha: np.ndarray, input_lengths, target_lengths) -> np.ndarray:
    """log p_b, (B,): alpha at frame T_b - 1 in the last blank or the last label; for T_b = 0,
    0 when the target is empty and -inf otherwise."""
    B = alpha.shape[1]
    batch = np.arange(B)
    last_frame = np.maximum(input_lengths - 1, 0)
    last_blank = alpha[last_frame, batch, 2 * target_lengths]
    last_label = alpha[last_frame, batch, np.maximum(2 * target_lengths - 1, 0)]
    log_likelihood = np.where(target_lengths > 0, np.logaddexp(last_blank, last_label), last_blank)
    empty_input = np.where(target_lengths == 0, 0.0, -np.inf)
    return np.where(input_lengths > 0, log_likelihood, empty_input)


def _extended_labels(labels: np.ndarray, target_lengths, blank: int) -> np.ndarray:
    """(B, 2S+1) labels with blanks around and between them (and blanks past each target)."""
    B, S = labels.shape
    padded = np.where(np.arange(S) < target_lengths[:, None], labels, blank)  # (B, S)
    extended = np.full((B, 2 * S + 1), blank, dtype=np.int64)
    extended[:, 1::2] = padded
    return extended


def _skips(extended: np.ndarray, blank: int) -> np.ndarray:
    """(B, L) mask of the states s that a path may reach from s - 2: a label unlike l'_{s-2}."""
    skip = np.zeros(extended.shape, dtype=bool)
    skip[:, 2:] = (extended[:, 2:] != blank) & (extended[:, 2:] != extended[:, :-2])
    return skip


def _checked_scores(logits, input_lengths, blank: int):
    """(T, B, C) finite float logits and (B,) int64 lengths in [0, T]; ``blank`` a class id."""
    logits = _prediction(logits, "logits")
    if logits.ndim != 3:
        raise UserError(f"logits must have shape (T, B, C), got {logits.ndim} axes {logits.shape}")
    T, B, C = logits.shape
    if T == 0:
        raise UserError(f"logits {logits.shape} have no frames; give at least one (T >= 1)")
    if not 0 <= blank < C:
        raise UserError(f"blank={blank} is not a class id of logits with {C} classes (0..{C - 1})")
    return logits, _lengths(input_lengths, "input_lengths", B, T, "the frame count T")


def _lengths(value, name: str, batch: int, largest: int | None, meaning: str) -> np.ndarray:
    """Checked (B,) int64 lengths in [0, largest]."""
    lengths = _to_numpy(value)
    if lengths.dtype.kind not in "iu":
        raise UserTypeError(f"{name} has dtype {lengths.dtype}; give integers, e.g. np.int64")
    if lengths.shape != (batch,):
        raise UserError(f"{name} has shape {lengths.shape}, but the batch needs ({batch},)")
    lengths = lengths.astype(np.int64)
    if batch and lengths.min() < 0:
        raise UserError(f"{name} holds {lengths.min()}; lengths must be >= 0")
    if batch and largest is not None and lengths.max() > largest:
        raise UserError(
            f"{name} holds {lengths.max()}, more than {meaning} {largest}; lengths count valid "
            "steps, at most that many"
        )
    return lengths


def _padded_targets(targets, target_lengths: np.ndarray, batch: int) -> np.ndarray:
    """(B, S) targets from the padded or the concatenated layout."""
    targets = _to_numpy(targets)
    if targets.dtype.kind not in "iu":
        raise UserTypeError(
            f"targets have dtype {targets.dtype}, but CTC needs integer labels; "
            "pass e.g. targets.astype(np.int64)"
        )
    targets = targets.astype(np.int64)
    if targets.ndim == 2:
        if targets.shape[0] != batch:
            raise UserError(
                f"targets have {targets.shape[0]} rows, but the batch has {batch}; give one "
                "padded row per sequence"
            )
        if batch and target_lengths.max() > targets.shape[1]:
            raise UserError(
                f"target_lengths holds {target_lengths.max()}, more than the {targets.shape[1]} "
                "columns of the padded targets"
            )
        return targets
    if targets.ndim != 1:
        raise UserError(
            f"targets have shape {targets.shape}; give (B, S) padded rows or the 1-D "
            "concatenation of all targets"
        )
    if targets.size != target_lengths.sum():
        raise UserError(
            f"concatenated targets hold {targets.size} labels, but target_lengths add up to "
            f"{target_lengths.sum()}; the concatenation holds exactly the valid labels"
        )
    S = int(target_lengths.max()) if batch else 0
    starts = np.cumsum(target_lengths) - target_lengths  # (B,)
    positions = np.arange(S)
    valid = positions < target_lengths[:, None]  # (B, S)
    index = np.where(valid, starts[:, None] + positions, 0)  # (B, S) into targets
    return np.where(valid, targets[index] if targets.size else 0, 0)


def _check_labels(labels: np.ndarray, target_lengths: np.ndarray, classes: int, blank: int):
    valid = labels[np.arange(labels.shape[1]) < target_lengths[:, None]]
    if valid.size and (valid.min() < 0 or valid.max() >= classes):
        bad = valid.min() if valid.min() < 0 else valid.max()
        raise UserError(
            f"target label {bad} is not a class id of {classes} classes (0..{classes - 1}); fix "
            "the targets or target_lengths (padding past each length is ignored)"
        )
    if np.any(valid == blank):
        raise UserError(
            f"targets hold the blank {blank}; labels must differ from it: renumber the labels "
            "or pass the blank's real class id as blank="
        )
