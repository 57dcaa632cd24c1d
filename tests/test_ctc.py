"""CTC: the loss and its gradient against PyTorch, finite differences and brute force over all
alignments; float32; impossible targets; bad input; greedy and prefix beam decoding."""

import itertools

import numpy as np
import pytest

from rnnkit.errors import UserError, UserTypeError
from rnnkit.train import beam_decode, ctc_loss, greedy_decode

T, C = 12, 6
INPUT_LENGTHS = np.array([12, 7, 3, 9])
TARGET_LENGTHS = np.array([4, 2, 1, 3])
TARGETS = np.array([[3, 3, 5, 1], [1, 2, 0, 0], [4, 0, 0, 0], [2, 2, 2, 0]])  # labels 1..5


def ragged_batch(blank: int = 0, seed: int = 0):
    """(T, 4, C) float64 logits and padded (4, S) targets without ``blank``: ragged input and
    target lengths, repeated labels ([3, 3, 5, 1], [2, 2, 2])."""
    logits = np.random.default_rng(seed).standard_normal((T, len(INPUT_LENGTHS), C))
    relabel = np.arange(C)
    relabel[[0, blank]] = relabel[[blank, 0]]  # swap class 0 and the blank
    return logits, relabel[TARGETS]


def concatenated(targets: np.ndarray, target_lengths: np.ndarray) -> np.ndarray:
    """The 1-D layout: each row's first target_lengths[b] labels, one after the other."""
    rows = zip(targets, target_lengths, strict=True)
    return np.concatenate([row[:length] for row, length in rows])


def torch_ctc(torch, logits, targets, input_lengths, target_lengths, **options):
    """PyTorch's loss on log_softmax(logits) and its gradient (of the sum) to the logits."""
    scores = torch.tensor(logits, requires_grad=True)
    loss = torch.nn.functional.ctc_loss(
        torch.log_softmax(scores, dim=-1),
        torch.tensor(targets),
        torch.tensor(input_lengths),
        torch.tensor(target_lengths),
        **options,
    )
    loss.sum().backward()
    return loss.detach().numpy(), scores.grad.numpy()


def relative(ours, theirs) -> float:
    return float(np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs)))


@pytest.mark.parametrize("layout", ["padded", "concatenated"])
@pytest.mark.parametrize("blank", [0, 3, C - 1])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_loss_and_gradient_match_pytorch(torch, reduction, blank, layout):
    logits, targets = ragged_batch(blank)
    if layout == "concatenated":
        targets = concatenated(targets, TARGET_LENGTHS)
    options = {"blank": blank, "reduction": reduction}
    loss, d_logits = ctc_loss(logits, targets, INPUT_LENGTHS, TARGET_LENGTHS, **options)
    expected_loss, expected_grad = torch_ctc(
        torch, logits, targets, INPUT_LENGTHS, TARGET_LENGTHS, **options
    )
    assert np.shape(loss) == np.shape(expected_loss)
    assert relative(np.asarray(loss), expected_loss) < 1e-12
    assert d_logits.dtype == np.float64
    assert relative(d_logits, expected_grad) < 1e-12
    past_end = np.arange(T)[:, None] >= INPUT_LENGTHS  # (T, B)
    assert np.all(d_logits[past_end] == 0.0)


IMPOSSIBLE = 1  # sequence 1 gets [2, 2, 4] in 3 frames: the repeat needs a blank, so 4 frames


@pytest.mark.parametrize("zero_infinity", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_impossible_targets_give_inf_or_zero_and_no_gradient(torch, reduction, zero_infinity):
    logits, targets = ragged_batch()
    targets[IMPOSSIBLE, :3] = [2, 2, 4]
    input_lengths, target_lengths = INPUT_LENGTHS.copy(), TARGET_LENGTHS.copy()
    input_lengths[IMPOSSIBLE], target_lengths[IMPOSSIBLE] = 3, 3
    options = {"reduction": reduction, "zero_infinity": zero_infinity}
    loss, d_logits = ctc_loss(logits, targets, input_lengths, target_lengths, **options)
    expected_loss, expected_grad = torch_ctc(
        torch, logits, targets, input_lengths, target_lengths, **options
    )
    assert np.all(d_logits[:, IMPOSSIBLE] == 0.0)  # PyTorch gives NaN there without zero_infinity
    others = np.arange(len(input_lengths)) != IMPOSSIBLE
    if zero_infinity:
        assert relative(np.asarray(loss), expected_loss) < 1e-12
        assert relative(d_logits, expected_grad) < 1e-12
    elif reduction == "none":
        assert loss[IMPOSSIBLE] == np.inf == expected_loss[IMPOSSIBLE]
        assert relative(loss[others], expected_loss[others]) < 1e-12
    else:
        assert loss == np.inf == expected_loss
    assert relative(d_logits[:, others], expected_grad[:, others]) < 1e-12


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_gradient_matches_finite_differences(gradient_check, reduction):
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((5, 3, 4))  # (T, B, C)
    targets = np.array([[1, 1], [2, 3], [3, 0]])
    input_lengths, target_lengths = np.array([5, 4, 2]), np.array([2, 2, 1])

    def total_loss():
        loss, _ = ctc_loss(logits, targets, input_lengths, target_lengths, reduction=reduction)
        return float(np.sum(loss))

    _, d_logits = ctc_loss(logits, targets, input_lengths, target_lengths, reduction=reduction)
    gradient_check(total_loss, {"logits": (logits, d_logits)}, tolerance=1e-7)


def brute_force_log_likelihood(log_probs: np.ndarray, target: list[int], blank: int) -> float:
    """log of the summed probability of all (T, C) paths that collapse to ``target``."""
    length, classes = log_probs.shape
    total = 0.0
    for path in itertools.product(range(classes), repeat=length):
        if collapse(path, blank) == target:
            total += np.exp(log_probs[np.arange(length), path].sum())
    return np.log(total)


def collapse(path, blank: int) -> list[int]:
    """Merge repeats, then drop blanks."""
    merged = [label for i, label in enumerate(path) if i == 0 or label != path[i - 1]]
    return [label for label in merged if label != blank]


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


@pytest.mark.parametrize("blank", [0, 2])
def test_loss_equals_the_sum_over_all_alignments(blank):
    targets = [[1, 1], [1, 3], [3], [], [3, 1, 3]]  # labels from {1, 3}; blank 2 is never one
    frames, classes = 5, 4
    logits = np.random.default_rng(2).standard_normal((frames, len(targets), classes))
    input_lengths = np.array([5, 4, 5, 3, 5])
    padded = np.zeros((len(targets), 3), dtype=np.int64)  # padding 0: the blank or a class
    for row, target in zip(padded, targets, strict=True):
        row[: len(target)] = target
    target_lengths = np.array([len(target) for target in targets])
    losses, _ = ctc_loss(
        logits, padded, input_lengths, target_lengths, blank=blank, reduction="none"
    )
    log_probs = log_softmax(logits)
    for b, target in enumerate(targets):
        frames_b = log_probs[: input_lengths[b], b]
        assert losses[b] == pytest.approx(-brute_force_log_likelihood(frames_b, target, blank))


def test_float32_gives_float32_close_to_float64():
    logits, targets = ragged_batch()
    loss64, grad64 = ctc_loss(logits, targets, INPUT_LENGTHS, TARGET_LENGTHS)
    loss32, grad32 = ctc_loss(logits.astype(np.float32), targets, INPUT_LENGTHS, TARGET_LENGTHS)
    assert grad32.dtype == np.float32
    assert loss32 == pytest.approx(loss64, rel=1e-6)
    assert relative(grad32, grad64) < 1e-5
    losses32, _ = ctc_loss(
        logits.astype(np.float32), targets, INPUT_LENGTHS, TARGET_LENGTHS, reduction="none"
    )
    assert losses32.dtype == np.float32


def test_targets_longer_than_needed_and_empty_targets_are_fine(torch):
    logits, targets = ragged_batch()
    wide = np.concatenate([targets, np.full((len(targets), 3), -7)], axis=1)  # padding: junk
    target_lengths = np.array([4, 0, 1, 3])  # sequence 1: only blanks
    loss, d_logits = ctc_loss(logits, wide, INPUT_LENGTHS, target_lengths, reduction="none")
    expected_loss, expected_grad = torch_ctc(
        torch, logits, targets, INPUT_LENGTHS, target_lengths, reduction="none"
    )
    assert relative(loss, expected_loss) < 1e-12
    assert relative(d_logits, expected_grad) < 1e-12


def good_arguments():
    logits, targets = ragged_batch()
    return {
        "logits": logits,
        "targets": targets,
        "input_lengths": INPUT_LENGTHS.copy(),
        "target_lengths": TARGET_LENGTHS.copy(),
    }


BAD_INPUTS = {
    "no frames": ({"logits": np.zeros((0, 4, C))}, UserError, "no frames"),
    "2-D logits": ({"logits": np.zeros((T, C))}, UserError, r"logits must have shape \(T, B, C\)"),
    "float targets": ({"targets": TARGETS.astype(float)}, UserTypeError, "integer labels"),
    "label out of range": ({"targets": TARGETS + 3}, UserError, "label 8 is not a class id"),
    "label is the blank": ({"blank": 4}, UserError, "targets hold the blank 4"),
    "input too long": ({"input_lengths": INPUT_LENGTHS + 1}, UserError, "frame count T 12"),
    "negative length": ({"input_lengths": -INPUT_LENGTHS}, UserError, "must be >= 0"),
    "target too long": ({"target_lengths": TARGET_LENGTHS + 1}, UserError, "4 columns"),
    "short concatenation": ({"targets": np.arange(1, 6)}, UserError, "add up to 10"),
    "blank out of range": ({"blank": C}, UserError, "blank=6 is not a class id"),
    "unknown reduction": ({"reduction": "avg"}, UserError, "reduction='avg' is not one of"),
    "lengths per batch": ({"target_lengths": TARGET_LENGTHS[:2]}, UserError, r"needs \(4,\)"),
}


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_bad_input_gets_a_one_line_user_error(name):
    change, error, message = BAD_INPUTS[name]
    with pytest.raises(error, match=message) as caught:
        ctc_loss(**(good_arguments() | change))
    assert "\n" not in str(caught.value)


def test_greedy_decoding_merges_repeats_and_drops_blanks():
    best_paths = np.array([[1, 1, 0, 1, 2, 2, 0, 3], [3, 0, 3, 3, 1, 1, 1, 2]]).T  # (T, B)
    logits = np.eye(4)[best_paths] * 5.0  # (T, B, C), peaked on the path
    assert greedy_decode(logits, np.array([8, 6])) == [[1, 1, 2, 3], [3, 3, 1]]
    assert greedy_decode(logits, np.array([8, 6]), blank=3) == [[1, 0, 1, 2, 0], [0, 1]]


def most_probable_labelling(log_probs: np.ndarray, blank: int) -> list[int]:
    """Brute force: the labelling with the largest summed probability of its (T, C) paths."""
    length, classes = log_probs.shape
    totals: dict[tuple, float] = {}
    for path in itertools.product(range(classes), repeat=length):
        labelling = tuple(collapse(path, blank))
        probability = np.exp(log_probs[np.arange(length), path].sum())
        totals[labelling] = totals.get(labelling, 0.0) + probability
    return list(max(totals, key=totals.get))


def test_beam_finds_the_best_labelling_that_the_best_path_misses():
    # Blank is the likeliest class in both frames, so the best path says nothing, but label 1
    # takes 0.3 * 0.3 + 2 * 0.5 * 0.3 = 0.39 over its three alignments against the blank's 0.25.
    probabilities = np.array([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2]])[:, None, :]  # (T, 1, C)
    logits = np.log(probabilities)
    assert greedy_decode(logits, np.array([2])) == [[]]
    assert most_probable_labelling(np.log(probabilities[:, 0]), blank=0) == [1]
    assert beam_decode(logits, np.array([2])) == [[1]]


@pytest.mark.parametrize("blank", [0, 2])
def test_a_wide_beam_equals_brute_force_on_tiny_inputs(blank):
    frames, batch, classes = 5, 6, 3
    logits = np.random.default_rng(3).standard_normal((frames, batch, classes))
    input_lengths = np.array([5, 5, 4, 3, 5, 2])
    decoded = beam_decode(logits, input_lengths, blank=blank, beam_width=classes**frames)
    log_probs = log_softmax(logits)
    expected = [
        most_probable_labelling(log_probs[:length, b], blank)
        for b, length in enumerate(input_lengths)
    ]
    assert decoded == expected


def test_beam_equals_greedy_where_the_outputs_are_peaked():
    logits = 30.0 * np.random.default_rng(4).standard_normal((20, 5, 6))  # (T, B, C)
    input_lengths = np.array([20, 17, 9, 1, 0])
    greedy = greedy_decode(logits, input_lengths, blank=2)
    assert beam_decode(logits, input_lengths, blank=2) == greedy
    assert greedy[-1] == [] and sum(map(len, greedy)) > 10


@pytest.mark.parametrize("beam_width", [0, 2.5, True])
def test_beam_width_must_be_a_positive_integer(beam_width):
    with pytest.raises(UserError, match="beam_width=.* must be an integer >= 1"):
        beam_decode(np.zeros((3, 1, 4)), np.array([3]), beam_width=beam_width)
