"""The benchmark's plumbing (not its figures): each library timed in its own process."""

import pytest

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
