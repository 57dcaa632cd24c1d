"""One streaming LSTM step at B = 1, H = 128: ONNX Runtime against rnnkit's LSTMCell.

Times (median of many calls, microseconds): rnnkit's ``LSTMCell`` step (input 128); ONNX
Runtime running an exported 1-layer LSTM (input 128) for one step with the state passed in and
out; and the step graph of a language model (vocabulary 65, embedding 128, one LSTM layer of
128, output layer) as text generation runs it. A report, no goal. Needs onnx and onnxruntime.

    python benchmarks/onnx_step.py
"""

import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from rnnkit import LSTM, LSTMCell, export_onnx
from rnnkit.models.language_model import LanguageModel

HIDDEN, CALLS = 128, 3000


def median_us(step) -> float:
    """The median time of ``step()`` over CALLS calls (after 200 to warm up), in microseconds."""
    for _ in range(200):
        step()
    times = []
    for _ in range(CALLS):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return 1e6 * float(np.median(times))


def main() -> None:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    x = np.random.default_rng(0).standard_normal((1, HIDDEN)).astype(np.float32)
    h = np.zeros((1, 1, HIDDEN), np.float32)
    cell = LSTMCell(HIDDEN, HIDDEN, seed=0)
    with tempfile.TemporaryDirectory() as folder:
        export_onnx(LSTM(HIDDEN, HIDDEN, seed=0), Path(folder) / "lstm.onnx", state=True)
        export_onnx(LanguageModel(65, HIDDEN, HIDDEN, 1, seed=0), Path(folder) / "lm.onnx")
        layer = ort.InferenceSession(str(Path(folder) / "lstm.onnx"), options,
                                     providers=["CPUExecutionProvider"])  # fmt: skip
        step = ort.InferenceSession(str(Path(folder) / "lm.step.onnx"), options,
                                    providers=["CPUExecutionProvider"])  # fmt: skip
    state = (x[:, :HIDDEN] * 0, x[:, :HIDDEN] * 0)
    figures = {
        "rnnkit LSTMCell step": median_us(lambda: cell(x, state)),
        "ONNX Runtime LSTM, T = 1": median_us(
            lambda: layer.run(None, {"x": x[None], "h0": h, "c0": h})
        ),
        "ONNX Runtime LM step graph": median_us(
            lambda: step.run(None, {"token": np.array([3]), "h0": h, "c0": h})
        ),
    }
    for name, microseconds in figures.items():
        print(f"{name:28s} B = 1, H = {HIDDEN}: {microseconds:7.1f} us per step (median)")


if __name__ == "__main__":
    main()
