"""BLAS threads of a run: fit(threads=...), the auto choice, the CLI's --threads auto."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import threadpoolctl

import deltaprop as dp
from deltaprop import threads as T
from deltaprop.errors import InvalidArgumentError

SRC = Path(__file__).resolve().parents[1] / "src"


def data(n=240, n_in=20, n_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, n_in)), rng.integers(0, n_classes, n)


def net():
    return dp.Network([dp.Dense(20, 16, activation="relu", dropout=0.1), dp.Dense(16, 3, activation="softmax")],
                      seed=0, dtype="float64")


def blas_threads():
    return [i["num_threads"] for i in threadpoolctl.threadpool_info()]


def test_auto_chooses_a_count_each_epoch_and_records_it():
    X, y = data()
    history = net().fit(X, y, epochs=3, batch_size=20, verbose=0, threads="auto")
    chosen = history["threads"]
    assert len(chosen) == 3
    assert all(c in (1, T.usable_cpus()) for c in chosen)


def test_fixed_count_is_recorded():
    X, y = data()
    assert net().fit(X, y, epochs=2, batch_size=20, verbose=0, threads=1)["threads"] == [1, 1]
    assert "threads" not in net().fit(X, y, epochs=1, batch_size=20, verbose=0).history


def test_same_weights_whatever_the_thread_count():
    # float64 and small products: identical with 1 and 2 OpenBLAS threads (float32 sgemm need not be)
    X, y = data()
    weights = []
    for threads in (1, 2, "auto", None):
        n = net()
        n.fit(X, y, epochs=2, batch_size=20, verbose=0, threads=threads)
        weights.append(n.params.copy())
    for w in weights[1:]:
        assert np.array_equal(weights[0], w)


@pytest.mark.parametrize("bad", [0, -2, "many", 1.5, True, "0"])
def test_bad_values_are_refused_with_the_value(bad):
    X, y = data()
    with pytest.raises(InvalidArgumentError, match=r"threads must be a positive integer, 'auto' or None, got "
                                                   + repr(bad).replace("(", r"\(").replace(".", r"\.")):
        net().fit(X, y, epochs=1, verbose=0, threads=bad)


def test_limits_are_restored_after_fit():
    X, y = data()
    before = blas_threads()
    for threads in (1, "auto"):
        net().fit(X, y, epochs=1, batch_size=20, verbose=0, threads=threads)
        assert blas_threads() == before


def test_limits_are_restored_when_fit_fails():
    X, y = data()
    before = blas_threads()

    class Boom(dp.Callback):
        def on_batch_end(self, run, batch, logs):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        net().fit(X, y, epochs=1, batch_size=20, verbose=0, threads=1, callbacks=[Boom()])
    assert blas_threads() == before


def test_auto_is_refused_with_several_processes():
    class TwoRanks(dp.run.LocalComm):
        size = 2

    X, y = data()
    with pytest.raises(InvalidArgumentError, match="threads='auto'.*2 processes.*give an int"):
        net().fit(X, y, epochs=1, verbose=0, threads="auto", comm=TwoRanks())


class _Clock:
    """A fake perf_counter: each step takes ``cost[n]`` seconds at ``n`` threads."""

    def __init__(self, control, cost):
        self.control, self.cost, self.now = control, cost, 0.0

    def __call__(self):
        return self.now

    def step(self):
        self.now += self.cost[self.control.current]


@pytest.mark.parametrize("cost,expected", [({1: 1.0, 4: 3.0}, 1), ({1: 3.0, 4: 1.0}, 4)])
def test_the_faster_count_is_chosen_after_alternating_trials(monkeypatch, cost, expected):
    monkeypatch.setattr(T, "usable_cpus", lambda: 4)
    control = T.ThreadControl("auto")
    clock = _Clock(control, cost)
    monkeypatch.setattr(T.time, "perf_counter", clock)
    seen = []
    with control:
        for _ in range(2):
            control.begin_epoch(40)
            for _ in range(40):
                seen.append(control.step(lambda: (clock.step(), control.current)[1]))
            assert control.end_epoch() == {"threads": expected}
    # the first step warms up untimed, then 3 blocks of 4 steps at each count, alternating, then the faster one
    assert seen[1:25] == [1] * 4 + [4] * 4 + [1] * 4 + [4] * 4 + [1] * 4 + [4] * 4
    assert set(seen[25:40]) == {expected}
    assert control.choices == [expected, expected]


def test_a_short_epoch_keeps_a_count(monkeypatch):
    monkeypatch.setattr(T, "usable_cpus", lambda: 2)
    control = T.ThreadControl("auto")
    with control:
        control.begin_epoch(1)
        assert control.step(lambda: 7) == 7
        assert control.end_epoch() == {"threads": 2}


def test_cli_accepts_threads_auto_and_logs_the_choice(tmp_path):
    X, y = data(n=90, n_in=4)
    rows = ["a,b,c,d,label"] + [",".join(f"{v:.5f}" for v in x) + f",{k}" for x, k in zip(X, y)]
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    env = dict(os.environ, PYTHONPATH=str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-m", "deltaprop", "train", "--data", "d.csv", "--hidden", "8",
                          "--epochs", "2", "--batch-size", "10", "--threads", "auto", "--log", "m.jsonl",
                          "--plot", "none"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "--threads auto chooses" in out.stderr and "Traceback" not in out.stderr
    chosen = [json.loads(line)["threads"] for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert len(chosen) == 2 and all(isinstance(c, int) and c >= 1 for c in chosen)
    bad = subprocess.run([sys.executable, "-m", "deltaprop", "train", "--data", "d.csv", "--threads", "lots"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "--threads must be a positive integer or auto, got 'lots'" in bad.stderr
