"""The benchmark's plumbing (not its figures): each library timed in its own process."""

import pytest

from rnnkit.bench import speed
from rnnkit.bench.race import Race

pytest.importorskip("torch")


def test_the_race_times_both_libraries_in_their_own_processes():
    with Race() as race:
        times = race.times(("layer", "gru", (2, 3, 4, 5), 1, False), repeats=2, warmup=1)
        assert set(times) == {"inference", "training"}
        for ours, theirs in times.values():
            assert len(ours) == len(theirs) == 2
            assert all(seconds > 0 for seconds in ours + theirs)
        with pytest.raises(RuntimeError, match="torch: KeyError"):
            race._ask("torch", ["time", "no such mode"])


class InstantRace:
    """A Race whose every case took 1 ms in both libraries."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def times(self, case, repeats):
        modes = ("streaming step",) if case[0] == "streaming" else ("inference", "training")
        return {mode: ([1e-3] * repeats, [1e-3] * repeats) for mode in modes}


@pytest.mark.parametrize(("peak", "warned"), [(1e-3, True), (1e6, False)])
def test_figures_above_the_sgemm_peak_are_flagged(monkeypatch, capsys, peak, warned):
    monkeypatch.setattr(speed, "Race", InstantRace)
    monkeypatch.setattr(speed, "sgemm_peak", lambda: peak)  # GFLOP/s, as on a busy machine
    monkeypatch.setattr(speed, "peak_memory_mb", lambda *args: 1.0)
    monkeypatch.setattr(speed, "startup_seconds", lambda runs: {"help": 0.1, "first_step": 0.1})
    speed.run(repeats=1, quick=True)
    out, err = capsys.readouterr()
    assert "| LSTM | 1,100,32,32 | training |" in out
    assert ("the peak was measured while the machine was busy" in err) == warned, err
    assert len(err.strip().splitlines()) == warned
