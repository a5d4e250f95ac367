"""Data-parallel training over MPI: ``mpiexec -n 1, 2, 3`` against one process.

Each MPI run starts tests/_mpi_child.py under MPICH's ``mpiexec`` (from the
``mpich`` wheel, in the same environment as mpi4py), with one BLAS thread per
process, and compares what rank 0 wrote with a plain single-process run of the
same global batches.

"The same" means (measured values in the comments):
- ``mpiexec -n 1`` gives bit-identical parameters and history;
- for a given N, every rank holds bit-identical parameters and history, and a
  second run gives bit-identical parameters;
- across N the final parameters agree to ``max|p_N - p_1| / max|p_1|`` below
  1e-5 in float32 (measured ≤ 2.5e-7 after 8 epochs) and 1e-12 in float64
  (measured ≤ 3.3e-16): the all-reduce itself is a fixed-order float64 sum,
  so the only difference is how each rank's matrix product groups the
  per-sample terms.

The MPI tests skip when mpi4py or mpiexec is missing; ``make test`` installs
both. About 20 s on 2 cores.
"""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import deltaprop as dp
from deltaprop.distributed import MPIComm, MPIUnavailableError, launched_by_mpi, ordered_sum

CHILD = Path(__file__).with_name("_mpi_child.py")
SRC = Path(dp.__file__).resolve().parent.parent
TRAIN_CONFIGS = "sgd,adam,dropout,float64,early,memmap,rank_seeded"
#: max|p_N - p_1| / max|p_1| allowed across numbers of ranks, by dtype
TOLERANCE = {"float32": 1e-5, "float64": 1e-12}
DTYPES = {"sgd": "float32", "adam": "float32", "dropout": "float32", "float64": "float64", "early": "float32",
          "memmap": "float32", "tiny": "float32", "tiny_memmap": "float32", "rank_seeded": "float32"}
#: a hang guard only: every MPI run here takes a few seconds
LIMIT = 120


def _find_mpiexec():
    here = Path(sys.executable).parent / "mpiexec"
    if here.exists():
        return str(here)
    return shutil.which("mpiexec")


def _env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    for key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[key] = "1"  # two cores: one BLAS thread per rank, the same in the reference run
    env.pop("DELTAPROP_MPI_TIMEOUT", None)
    env.update(extra)
    return env


def _run(cmd, ok=True, **env):
    proc = subprocess.run(cmd, env=_env(**env), capture_output=True, text=True, timeout=LIMIT)
    if ok and proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited with {proc.returncode}:\n{proc.stdout}\n{proc.stderr[-4000:]}")
    return proc


@pytest.fixture(scope="module")
def mpiexec():
    if importlib.util.find_spec("mpi4py") is None:
        pytest.skip("mpi4py is not installed (pip install 'deltaprop[mpi]')")
    exe = _find_mpiexec()
    if exe is None:
        pytest.skip("no mpiexec on PATH or beside the Python executable (pip install mpich)")
    probe = ("import numpy as np; from mpi4py import MPI; c = MPI.COMM_WORLD; a = np.ones(1); "
             "c.Allreduce(MPI.IN_PLACE, a); c.Get_rank() or print(c.Get_size(), int(a[0]))")
    proc = subprocess.run([exe, "-n", "2", sys.executable, "-c", probe], env=_env(), capture_output=True,
                          text=True, timeout=LIMIT)
    if "cannot load MPI library" in proc.stderr:
        pytest.skip("mpi4py cannot load an MPI library (pip install mpich)")
    if proc.returncode != 0 or proc.stdout.split() != ["2", "2"]:  # size 2, and a sum over both
        pytest.fail(f"{exe} -n 2 did not start 2 ranks that see each other (mpiexec and mpi4py's MPI library "
                    f"must match): exit {proc.returncode}, output {proc.stdout!r}, {proc.stderr[-2000:]!r}")
    return exe


def _child(mpiexec, n, *args, ok=True, extra=(), **env):
    cmd = ([mpiexec, *extra, "-n", str(n)] if n else []) + [sys.executable, str(CHILD), *args]
    if not n:
        cmd.append("--plain")
    return _run(cmd, ok=ok, **env)


def _load(folder, name):
    with open(Path(folder) / f"{name}.json") as f:
        return np.load(Path(folder) / f"{name}.npy"), json.load(f)


def _rel(p, q):
    return float(np.max(np.abs(p - q)) / np.max(np.abs(q)))


@pytest.fixture(scope="module")
def runs(mpiexec, tmp_path_factory):
    """Every training configuration: plain, and under mpiexec -n 1, 2, 3."""
    out = {}
    for n in (0, 1, 2, 3):
        folder = tmp_path_factory.mktemp(f"n{n}")
        _child(mpiexec, n, "train", str(folder), "--configs", TRAIN_CONFIGS)
        out[n] = folder
    return out


# --------------------------------------------------------------- without MPI
def test_ordered_sum_adds_in_rank_order_in_float64():
    parts = np.array([[1e8], [1.0], [-1e8]], dtype=np.float32)
    out = np.empty(1, dtype=np.float32)
    ordered_sum(parts, out)
    assert out[0] == 1.0  # float64 keeps the 1 that float32 loses
    assert (parts[0] + parts[1] + parts[2])[0] == 0.0
    rng = np.random.default_rng(0)
    parts = rng.standard_normal((3, 1000)).astype(np.float32) * 10.0 ** rng.integers(-6, 6, (3, 1000))
    want = ((parts[0].astype(np.float64) + parts[1]) + parts[2]).astype(np.float32)
    assert np.array_equal(ordered_sum(parts, np.empty(1000, np.float32)), want)
    # two rows: the one-pass float32 sum is the float64 sum rounded once
    two = rng.standard_normal((2, 100_000)).astype(np.float32) * np.float32(2.0) ** rng.integers(-40, 40, (2, 100_000))
    two[:, :4] = [[1.0, 3.0, 1.0, -1.0], [2.0 ** -24, 2.0 ** -23, 2.0 ** -60, 1.0]]  # ties, tiny addends, cancel
    want = (two[0].astype(np.float64) + two[1]).astype(np.float32)
    assert np.array_equal(ordered_sum(two, np.empty(100_000, np.float32)), want)


def test_launched_by_mpi_reads_the_launcher_environment(monkeypatch):
    for key in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS", "SLURM_STEP_ID",
                "SLURM_STEP_NUM_TASKS", "SLURM_NTASKS"):
        monkeypatch.delenv(key, raising=False)
    assert not launched_by_mpi()
    monkeypatch.setenv("PMI_SIZE", "1")
    assert not launched_by_mpi()
    monkeypatch.setenv("PMI_SIZE", "4")
    assert launched_by_mpi()
    monkeypatch.delenv("PMI_SIZE")
    monkeypatch.setenv("SLURM_NTASKS", "8")
    assert not launched_by_mpi()  # a batch script, not yet inside srun
    monkeypatch.setenv("SLURM_STEP_ID", "0")
    assert launched_by_mpi()


def test_missing_mpi4py_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import fails as if not installed
    net = dp.Network([dp.Dense(2, 1)], seed=0)
    with pytest.raises(MPIUnavailableError, match=r"pip install 'deltaprop\[mpi\]'"):
        net.fit(np.zeros((4, 2)), np.zeros(4), epochs=1, verbose=0, comm=MPIComm())


# ------------------------------------------------------------------ with MPI
def test_mpiexec_n1_is_bit_identical_to_one_process(runs):
    for name in TRAIN_CONFIGS.split(","):
        p1, info1 = _load(runs[1], name)
        p0, info0 = _load(runs[0], name)
        assert np.array_equal(p1, p0), name
        assert info1["history"] == info0["history"], name


@pytest.mark.parametrize("n", [2, 3])
def test_n_ranks_match_one_process_within_tolerance(runs, n):
    # "rank_seeded" builds each rank's network with seed=rank: only because rank 0's
    # weights and generator state reach every rank does it match (Horovod #672).
    for name in TRAIN_CONFIGS.split(","):
        pn, info = _load(runs[n], name)
        p0, info0 = _load(runs[0], name)
        assert info["size"] == n
        assert _rel(pn, p0) <= TOLERANCE[DTYPES[name]], (name, _rel(pn, p0))
        assert not np.array_equal(pn, p0) or name == "float64"  # they are really different groupings
        assert len(info["history"]) == len(info0["history"]), name
        for row, row0 in zip(info["history"], info0["history"]):
            assert row["loss"] == pytest.approx(row0["loss"], rel=1e-4), name


@pytest.mark.parametrize("n", [2, 3])
def test_every_rank_holds_the_same_weights_and_a_rerun_repeats_them(runs, n):
    for name in TRAIN_CONFIGS.split(","):
        _, info = _load(runs[n], name)
        assert info["same_on_all_ranks"], name
    _, info = _load(runs[n], "dropout")
    assert info["repeat_identical"]


@pytest.mark.parametrize("n", [2, 3])
def test_streamed_memmap_ranks_read_only_their_shards(runs, n):
    _, info = _load(runs[n], "memmap")
    epochs, bs, m = 8, 32, 203
    want = [0] * n
    for lo in range(0, m, bs):
        hi = min(lo + bs, m)
        for r in range(n):
            want[r] += (hi - lo) * (r + 1) // n - (hi - lo) * r // n
    assert info["rows_read"] == [w * epochs for w in want]
    assert sum(info["rows_read"]) == m * epochs  # no row read twice in an epoch
    # the streamed run is the in-memory run, bit for bit
    assert np.array_equal(_load(runs[n], "memmap")[0], _load(runs[n], "sgd")[0])


def test_early_stopping_and_validation_agree_on_every_rank(runs):
    _, info0 = _load(runs[0], "early")
    assert len(info0["history"]) < 40  # it did stop early
    for n in (2, 3):
        _, info = _load(runs[n], "early")
        assert info["same_on_all_ranks"]
        assert len(info["history"]) == len(info0["history"])
        for row, row0 in zip(info["history"], info0["history"]):
            assert row["val_loss"] == pytest.approx(row0["val_loss"], rel=1e-5)


def test_a_batch_smaller_than_the_number_of_ranks_trains(mpiexec, runs, tmp_path):
    ref = tmp_path / "plain"
    ref.mkdir()
    _child(mpiexec, 0, "train", str(ref), "--configs", "tiny")
    out = tmp_path / "n3"
    out.mkdir()
    _child(mpiexec, 3, "train", str(out), "--configs", "tiny,tiny_memmap")
    p0, info0 = _load(ref, "tiny")
    for name in ("tiny", "tiny_memmap"):
        p3, info = _load(out, name)
        assert info["same_on_all_ranks"]
        assert _rel(p3, p0) <= TOLERANCE["float32"]
        assert [r["loss"] for r in info["history"]] == pytest.approx([r["loss"] for r in info0["history"]],
                                                                      rel=1e-5)
    assert sum(_load(out, "tiny_memmap")[1]["rows_read"]) == 11 * 3


def test_allreduce_is_a_rank_ordered_float64_sum(mpiexec, tmp_path):
    _child(mpiexec, 3, "reduce", str(tmp_path))
    with open(tmp_path / "reduce.json") as f:
        out = json.load(f)
    for key in ("float32-1", "float32-5", "float32-1000", "float32-100003", "float64-100003"):
        assert out[key]["exact"] and out[key]["dtype_kept"], key
    assert out["float32-100003"]["differs_from_naive"] > 0  # float64 accumulation is visible in float32
    assert out["bcast"] and out["allgather"]
    assert out["argument_errors"] == [
        "InvalidArgumentError: timeout must be a positive number of seconds, got 0",
        "InvalidArgumentError: timeout must be a positive number of seconds, got nan",
        "InvalidArgumentError: algorithm must be one of ('ordered', 'mpi'), got 'ring'",
        "InvalidTypeError: comm must be an mpi4py communicator, got 'world'",
    ]


@pytest.fixture(scope="module")
def resumed(mpiexec, runs, tmp_path_factory):
    """The dropout run checkpointed every 5 steps on 2 ranks; resumed on 3 ranks and on one process."""
    folder = tmp_path_factory.mktemp("resume")
    ck = folder / "ck2"
    proc = _child(mpiexec, 2, "resume", str(folder), "--ckpt-dir", str(ck), "--unit", "step", "--every", "5",
                  "--name", "n2", "--verbose", "1")
    (folder / "n2.stderr").write_text(proc.stderr)
    _child(mpiexec, 3, "resume", str(folder), "--ckpt-dir", str(folder / "ck3"), "--resume-from",
           str(ck / "ckpt-e0001-s000000010.safetensors"), "--name", "n3")
    _child(mpiexec, 0, "resume", str(folder), "--ckpt-dir", str(folder / "ck1"), "--resume-from",
           str(ck / "ckpt-e0002-s000000015.safetensors"), "--name", "n1")
    return folder


def test_a_run_resumes_on_a_different_number_of_ranks(runs, resumed):
    p_ref, info_ref = _load(runs[0], "dropout")
    names = sorted(os.listdir(resumed / "ck2"))
    want = [f"ckpt-e{(s - 1) // 7:04d}-s{s:09d}.safetensors" for s in range(5, 56, 5)]
    assert names == want + ["ckpt-e0008-s000000056.safetensors"]  # rank 0 wrote each once, atomically
    for name in ("n2", "n3", "n1"):
        p, info = _load(resumed, name)
        assert _rel(p, p_ref) <= TOLERANCE["float32"], name
        assert len(info["history"]) == 8
        for row, row_ref in zip(info["history"], info_ref["history"]):
            assert row["epoch"] == row_ref["epoch"]
            assert row["loss"] == pytest.approx(row_ref["loss"], rel=1e-5), name


def test_progress_bars_and_logs_come_from_rank_0_only(resumed):
    text = (resumed / "n2.stderr").read_text().replace("\r", "\n")
    finished = [line for line in text.split("\n") if "epoch 1/8" in line and "7/7" in line]
    assert len(finished) == 1  # one bar, drawn by rank 0, not one per rank
    rows = (resumed / "n2.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in rows] == list(range(1, 9))


def test_mid_epoch_checkpoints_hold_the_global_metric_sums(runs, resumed):
    from deltaprop.checkpoint import load_checkpoint

    tensors, _, info = load_checkpoint(resumed / "ck2" / "ckpt-e0001-s000000010.safetensors")
    assert info["batch"] == 3
    assert tensors["metrics.accuracy"][1] == 3 * 32  # every rank's rows, not rank 0's half
    _, info_ref = _load(runs[0], "dropout")
    for name in ("n3", "n1"):
        _, info = _load(resumed, name)
        for row, row_ref in zip(info["history"], info_ref["history"]):
            assert row["accuracy"] == pytest.approx(row_ref["accuracy"], abs=2 / 203), name


def test_a_rank_that_dies_ends_the_job_and_the_checkpoint_stays_loadable(mpiexec, tmp_path):
    from deltaprop.checkpoint import latest_checkpoint, load_checkpoint

    ck = tmp_path / "ck"
    proc = _child(mpiexec, 3, "fail", str(tmp_path), "--ckpt-dir", str(ck), "--mode", "exit1", ok=False,
                  extra=("-print-all-exitcodes",))
    assert proc.returncode != 0
    # hydra kills the other ranks at once and names each rank's exit status (256 = exit code 1)
    assert "Exit codes" in proc.stdout + proc.stderr and ",256," in proc.stdout + proc.stderr
    last = latest_checkpoint(ck)
    assert os.path.basename(last) == "ckpt-e0000-s000000006.safetensors"
    _, _, info = load_checkpoint(last)
    assert info["step"] == 6
    assert not [f for f in os.listdir(ck) if f.endswith(".tmp")]
    _child(mpiexec, 0, "resume", str(tmp_path), "--ckpt-dir", str(tmp_path / "again"), "--resume-from", last,
           "--config", "sgd")


def test_ranks_that_disagree_on_the_settings_stop_with_the_difference(mpiexec, tmp_path):
    proc = _child(mpiexec, 2, "train", str(tmp_path), "--configs", "mismatched", ok=False)
    assert proc.returncode != 0
    assert "rank 1 trains something else than rank 0: batch_size is 33 on rank 1 but 32 on rank 0" in proc.stderr


def test_an_uncaught_error_on_one_rank_aborts_every_rank_with_its_message(mpiexec, tmp_path):
    proc = _child(mpiexec, 3, "fail", str(tmp_path), "--ckpt-dir", str(tmp_path / "ck"), "--mode", "raise",
                  ok=False)
    assert proc.returncode != 0
    assert "RuntimeError: injected failure on rank 1" in proc.stderr
    assert "deltaprop: rank 1 of 3: stopped with RuntimeError: injected failure on rank 1; ending all 3 ranks" \
        in proc.stderr


def test_a_rank_that_leaves_early_is_caught_by_the_timeout(mpiexec, tmp_path):
    proc = _child(mpiexec, 2, "fail", str(tmp_path), "--ckpt-dir", str(tmp_path / "ck"), "--mode", "leave",
                  ok=False, DELTAPROP_MPI_TIMEOUT="2")
    assert proc.returncode != 0
    assert re.search(r"deltaprop: rank 0 of 2: no answer from the other ranks for 2 s in allreduce_sum at "
                     r"epoch [12], step 8: a rank has died, hangs or left training early", proc.stderr)


def _cli_data(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(150, 4))
    y = np.where(X[:, 0] + X[:, 1] > 0, "yes", "no")
    path = tmp_path / "d.csv"
    with open(path, "w") as f:
        f.write("a,b,c,d,label\n")
        for row, label in zip(X, y):
            f.write(",".join(f"{v:.6f}" for v in row) + f",{label}\n")
    return path


def test_mpiexec_deltaprop_train_matches_one_process(mpiexec, tmp_path):
    data = _cli_data(tmp_path)
    args = ["-m", "deltaprop", "train", "--data", str(data), "--hidden", "8", "--epochs", "3",
            "--batch-size", "16", "--quiet", "--validation-split", "0"]
    one = _run([sys.executable, *args, "--out", str(tmp_path / "one.safetensors")])
    two = _run([mpiexec, "-n", "2", sys.executable, *args, "--out", str(tmp_path / "two.safetensors")])
    # rank 0 alone prints the test result and writes the model
    assert one.stdout.count("test (test split") == 1, one.stdout
    assert two.stdout.count("test (test split") == 1, two.stdout
    a, b = dp.load(tmp_path / "one.safetensors").network, dp.load(tmp_path / "two.safetensors").network
    assert b.classes == ["no", "yes"]
    assert np.max(np.abs(a.params - b.params)) / np.max(np.abs(a.params)) < TOLERANCE["float32"]


def test_a_failing_rank_ends_mpiexec_deltaprop_train_with_one_error_line(mpiexec, tmp_path):
    args = ["-m", "deltaprop", "train", "--data", str(tmp_path / "missing.csv"), "--quiet"]
    proc = _run([mpiexec, "-n", "2", sys.executable, *args], ok=False)
    assert proc.returncode != 0
    assert "deltaprop: error:" in proc.stderr and "Traceback" not in proc.stderr


# --------------------------------------------------------------- ranks agree on their data
DATA_CHILD = """
import sys
import numpy as np
import deltaprop as dp
from deltaprop.distributed import MPIComm

comm = MPIComm()
rng = np.random.default_rng(7 + (comm.rank if sys.argv[1] == "differ" else 0))
X = rng.normal(size=(200, 6))  # the same shape on every rank
y = (X[:, 0] > 0).astype(int)
net = dp.Network([dp.Dense(6, 4, activation="relu"), dp.Dense(4, 2, activation="softmax")], seed=0)
net.fit(X, y, epochs=1, batch_size=20, verbose=0, comm=comm)
comm.rank or print("trained", flush=True)
"""


def test_sync_run_names_a_rank_whose_data_differs_without_mpi():
    """MPIComm.sync_run's comparison alone, with a stand-in communicator: rank 1's sampled rows differ."""
    from deltaprop.run import data_fingerprint

    X = np.arange(60.0).reshape(20, 3)
    y = np.zeros(20)
    mine = {"batch_size": 4, "data": data_fingerprint(X, y)}
    theirs = {"batch_size": 4, "data": data_fingerprint(X + 1, y)}

    class TwoRanks:
        is_root = True

        def allgather(self, obj):
            return [mine, theirs]

    class FakeRun:
        def fingerprint(self):
            return mine

    with pytest.raises(dp.errors.InvalidArgumentError) as info:
        MPIComm.sync_run(TwoRanks(), FakeRun())
    assert str(info.value) == ("rank 1's data differs from rank 0's (same shape (20, 3), different values in "
                               "sampled rows); every rank must load the same data")


def test_a_rank_with_other_data_of_the_same_shape_is_refused(mpiexec, tmp_path):
    script = tmp_path / "data_child.py"
    script.write_text(DATA_CHILD)
    same = _run([mpiexec, "-n", "2", sys.executable, str(script), "same"])
    assert same.stdout.strip() == "trained"
    proc = _run([mpiexec, "-n", "2", sys.executable, str(script), "differ"], ok=False)
    assert proc.returncode != 0 and "trained" not in proc.stdout
    assert ("rank 1's data differs from rank 0's (same shape (200, 6), different values in sampled rows); "
            "every rank must load the same data") in proc.stderr
