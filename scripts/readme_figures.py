"""Regenerate every figure in README.md by running the README's commands as written.

    python scripts/readme_figures.py [--workdir DIR] [--check]

Run it from the repository in the venv of the README's first set-up command, with the data
extras of the applications installed (the README's `pip install` lines) and espeak-ng. It runs
each `rnnkit` and `espeak-ng` command of the README's code blocks, in order, in a fresh working
directory with a fresh cache (so `runs/` there is new, yours is untouched, and the speech task's
time includes making its data), reads the figures from what the commands print and write, and
rewrites the README's blocks between `<!-- figures:NAME -->` and `<!-- /figures:NAME -->`.
A command that fails stops the script with its output, and the README is left as it was. The
commands that read your own files (NOT_RUN) are left out. About 25 minutes on 2 cores.

`--check` only checks that the commands the script knows are the README's (no run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"

# README commands that read the reader's own files or repeat a finished run: not run here.
NOT_RUN = {
    "rnnkit evaluate runs/lm --text some.txt --json",
    "rnnkit train --out runs/lm --resume",
    "rnnkit train --text my.txt --cell gru --hidden 512 --steps 3000 --out runs/mine",
}
# The README commands the figures are read from.
GENERATE = (
    'rnnkit generate runs/lm --prime "My favourite dish is sushi. So, my favourite cuisine is"'
    " --length 200 --seed 1"
)
CLASSIFY_SCORES = "rnnkit evaluate runs/classify --json --plot runs/classify/test_confusion.png"
FORECAST_SCORES = "rnnkit evaluate runs/forecast --json"
GREEDY_SCORES = "rnnkit evaluate runs/seq2seq --json"
BEAM_SCORES = "rnnkit evaluate runs/seq2seq --json --beam 5"
SPEECH_SCORES = "rnnkit evaluate runs/speech --json"
HEARD = "rnnkit predict runs/speech --wav fast.wav --plot fast.png"
TRAIN = [
    "rnnkit train", "rnnkit train classify", "rnnkit train forecast", "rnnkit train seq2seq",
    "rnnkit train speech",
]  # fmt: skip
READ = [
    GENERATE, CLASSIFY_SCORES, FORECAST_SCORES, GREEDY_SCORES, BEAM_SCORES, SPEECH_SCORES, HEARD,
    *TRAIN,
]  # fmt: skip
PROGRAMS = ("rnnkit ", "espeak-ng ")  # the README's commands this script runs start so
SAMPLE_LINES = 6  # lines of the generated text the README shows


def readme_commands(readme: str) -> list[str]:
    """The `rnnkit ...` and `espeak-ng ...` commands of the README's bash blocks, in order,
    without comments."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", readme, flags=re.DOTALL):
        for line in block.splitlines():
            for part in line.split("  #")[0].split(" && "):  # a set-up line ends in one
                if part.strip().startswith(PROGRAMS):
                    commands.append(part.strip())
    return commands


def replace_block(readme: str, name: str, body: str) -> str:
    """``readme`` with the text between the markers of block ``name`` replaced by ``body``."""
    pattern = re.compile(
        rf"(<!-- figures:{re.escape(name)} -->\n).*?(<!-- /figures:{re.escape(name)} -->)",
        flags=re.DOTALL,
    )
    if len(pattern.findall(readme)) != 1:
        raise SystemExit(f"README.md: the block figures:{name} must appear exactly once")
    return pattern.sub(lambda match: match[1] + body.rstrip("\n") + "\n" + match[2], readme)


def run(command: str, workdir: Path) -> tuple[str, float]:
    """Run ``command`` in ``workdir``, with its own cache folder; returns (stdout, seconds).
    Exits on a failure."""
    print(f"$ {command}", flush=True)
    environment = {**os.environ, "XDG_CACHE_HOME": str(workdir / "cache")}
    start = time.perf_counter()
    done = subprocess.run(
        shlex.split(command), cwd=workdir, capture_output=True, text=True, env=environment
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-3000:])
        raise SystemExit(f"{command!r} failed with exit status {done.returncode}; README unchanged")
    return done.stdout, seconds


def duration(seconds: float) -> str:
    """``seconds`` as '45 s' or '3 min 12 s'."""
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def last_validation(metrics: Path) -> dict:
    """The last validation record of a run's ``metrics.jsonl``."""
    records = [json.loads(line) for line in metrics.read_text(encoding="utf-8").splitlines()]
    return [r for r in records if r["kind"] == "validation"][-1]


def machine() -> str:
    """One line: the date, the cores, the CPU, Python, NumPy and the back end that ran."""
    import numpy

    import rnnkit

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown CPU",
    )
    info = rnnkit.backend_info(rnnkit.LSTM(8, 16))
    backend = info["backend"]
    if backend == "compiled":
        import numba

        backend = f"compiled (numba {numba.__version__})"
    return (
        f"Run on {date.today():%Y-%m-%d}: {len(os.sched_getaffinity(0))} cores of an {cpu}, "
        f"Python {platform.python_version()}, NumPy {numpy.__version__}, back end {backend}."
    )


def figures(workdir: Path) -> dict[str, str]:
    """Run the README's commands in ``workdir``; the new body of each figures block."""
    outputs, seconds = {}, {}
    for command in readme_commands(README.read_text(encoding="utf-8")):
        if command not in NOT_RUN:
            outputs[command], seconds[command] = run(command, workdir)

    def scores(command: str) -> dict:
        return json.loads(outputs[command])

    lm = last_validation(workdir / "runs/lm/metrics.jsonl")
    classify = scores(CLASSIFY_SCORES)
    forecast = scores(FORECAST_SCORES)
    greedy, beam = scores(GREEDY_SCORES), scores(BEAM_SCORES)
    speech = scores(SPEECH_SCORES)
    unit = f" {forecast['unit']}" if forecast.get("unit") else ""
    rows = [
        (TRAIN[0], f"validation loss {lm['val_loss']:.3f} nats per character "
         f"({lm['val_bits_per_char']:.2f} bits)", ""),
        (TRAIN[1], f"test accuracy {classify['accuracy']:.3f}, macro F1 "
         f"{classify['f1_macro']:.3f}", f"majority class {classify['majority_accuracy']:.3f}"),
        (TRAIN[2], f"test MAE {forecast['mae']:.2f}{unit}",
         f"persistence {forecast['baseline_mae']:.2f}{unit}, same day last year "
         f"{forecast['seasonal_mae']:.2f}{unit}"),
        (TRAIN[3], f"test phoneme error rate {greedy['phoneme_error_rate']:.3f} "
         f"greedy, {beam['phoneme_error_rate']:.3f} with `--beam 5`; word accuracy "
         f"{greedy['word_accuracy']:.3f} and {beam['word_accuracy']:.3f}", ""),
        (TRAIN[4], f"test digit error rate {speech['digit_error_rate']:.3f}, string accuracy "
         f"{speech['string_accuracy']:.3f} ({speech['utterances']} utterances by "
         f"{speech['voices']} voices never heard)", ""),
    ]  # fmt: skip
    table = ["| command | held-out figures (`rnnkit evaluate`) | baseline | time to train |"]
    table.append("|---|---|---|---:|")
    for command, reached, baseline in rows:
        shown = baseline or "—"
        table.append(f"| `{command}` | {reached} | {shown} | {duration(seconds[command])} |")
    sample = "\n".join(outputs[GENERATE].strip("\n").splitlines()[:SAMPLE_LINES]).rstrip()
    diagnoses = [
        outputs[c].strip() for c in outputs if c.startswith("rnnkit diagnose")
    ]  # one verdict line each
    return {
        "results": "\n".join(table) + "\n\n" + machine(),
        "sample": "```text\n" + sample + "\n```",
        "diagnose": "```text\n" + "\n".join(diagnoses) + "\n```",
        "speech": "```text\n" + outputs[HEARD].strip() + "\n```",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, help="where the runs go (default: a new temp dir)")
    parser.add_argument("--check", action="store_true", help="check the commands; run nothing")
    arguments = parser.parse_args()
    commands = readme_commands(README.read_text(encoding="utf-8"))
    missing = [command for command in (*READ, *NOT_RUN) if command not in commands]
    if missing:
        raise SystemExit(f"not in the README's code blocks: {missing}; update this script")
    if arguments.check:
        print(f"{len(commands) - len(NOT_RUN)} README commands to run")
        return
    workdir = arguments.workdir or Path(tempfile.mkdtemp(prefix="readme_figures_"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"runs go to {workdir}")
    blocks = figures(workdir)
    readme = README.read_text(encoding="utf-8")
    for name, body in blocks.items():
        readme = replace_block(readme, name, body)
    partial = README.with_suffix(".md.partial")
    partial.write_text(readme, encoding="utf-8")
    os.replace(partial, README)
    print("README.md rewritten:\n" + "\n\n".join(blocks.values()))


if __name__ == "__main__":
    main()
