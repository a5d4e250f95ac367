"""BatchNorm, LayerNorm and the tabular ResNet under MPI: ``mpiexec -n 1, 2, 3`` against one process.

The approach, tolerances and child script of tests/test_distributed.py,
with networks of normalisation and residual layers (configurations ``bn*``
and ``ln*`` of tests/_mpi_child.py). BatchNorm's batch is the global one:
its forward all-reduces ``[Σx, M]`` and ``Σ(x − μ)²``, its backward
``[ΣG, ΣG⊙x̂]``, so N ranks train what one process trains, running
statistics (``net.buffers``) included. Measured (2 cores, one BLAS thread
per rank), ``max|p_N - p_1| / max|p_1|`` after 8 epochs, the same measure
on the buffers in brackets:

- float32, SGD with momentum: BatchNorm MLP ≤ 3.2e-7 (1.6e-7), tabular
  ResNet with dropout ≤ 2.4e-7 (3.0e-7); LayerNorm MLP and ResNet with Adam
  ≤ 2.8e-7; the float32 tolerance is 1e-5;
- float64 ResNet with weighted samples ≤ 2.6e-13 (9.8e-14): BatchNorm
  carries rounding differences further than Dense layers alone (3.3e-16 in
  test_distributed.py), but within the float64 tolerance 1e-12; one step
  (bn_onestep) differs by ≤ 3.3e-16, batches of 2 rows (bn_tiny) by 3.9e-14.

Adam and BatchNorm (bn_adam, bn_adam_resnet). A bias right before a
BatchNorm would be subtracted again with the batch mean: its gradient is
zero in exact arithmetic, so what a run computes for it is rounding noise,
which Adam divides by its own root mean square and turns into steps of a
sizeable fraction of the learning rate (measured before the fix: such biases
differed by 3.6e-2 to 4.7e-2 of ``max|p|`` across N). ``from_sizes`` leaves
those biases out (``Dense(bias=False)``: before each BatchNorm, and on the
ResNet's stream, which reaches nothing but BatchNorms), so Adam runs match
across N within the tolerance too.

About 10 s on 2 cores (four launches; 3 ranks oversubscribe the cores).
"""

import json
from pathlib import Path

import numpy as np
import pytest

from test_distributed import TOLERANCE, _child, _rel
from test_distributed import mpiexec  # noqa: F401  (the fixture: skips without mpi4py or mpiexec)

CONFIGS = ["bn", "bn_resnet", "bn_float64", "bn_adam", "bn_adam_resnet", "ln", "ln_resnet", "bn_rank_seeded",
           "bn_onestep", "bn_tiny"]
DTYPES = {name: "float32" for name in CONFIGS} | {"bn_float64": "float64", "bn_onestep": "float64",
                                                  "bn_tiny": "float64"}
#: (optimizer steps, all-reduces per step): the gradient and the step's sums (2), plus 3 per BatchNorm
#: (forward [Σx, M] and Σ(x-μ)², backward [ΣG, ΣG⊙x̂]); a BatchNorm on the inputs has no backward one.
REDUCES = {
    "bn": (8 * 7, 2 + 3 * 2),
    "bn_resnet": (8 * 7, 2 + 3 * 3),
    "bn_float64": (8 * 6, 2 + 3 * 3),
    "bn_adam": (8 * 7, 2 + 3 * 2),
    "bn_adam_resnet": (8 * 7, 2 + 3 * 3),
    "ln": (8 * 7, 2),
    "ln_resnet": (8 * 7, 2),
    "bn_rank_seeded": (2 * 7, 2 + 3 * 3),
    "bn_onestep": (1, 2 + 2 + 3),
    "bn_tiny": (3 * 6, 2 + 3),
}


def _load(folder, name):
    folder = Path(folder)
    with open(folder / f"{name}.json") as f:
        info = json.load(f)
    return np.load(folder / f"{name}.npy"), np.load(folder / f"{name}-buffers.npy"), info


@pytest.fixture(scope="module")
def runs(mpiexec, tmp_path_factory):  # noqa: F811
    """Every configuration: plain, and under mpiexec -n 1, 2, 3."""
    out = {}
    for n in (0, 1, 2, 3):
        folder = tmp_path_factory.mktemp(f"layers-n{n}")
        _child(mpiexec, n, "train", str(folder), "--configs", ",".join(CONFIGS))
        out[n] = folder
    return out


def test_mpiexec_n1_is_bit_identical_to_one_process(runs):
    for name in CONFIGS:
        p1, b1, info1 = _load(runs[1], name)
        p0, b0, info0 = _load(runs[0], name)
        assert np.array_equal(p1, p0), name
        assert np.array_equal(b1, b0), name
        assert info1["history"] == info0["history"], name


@pytest.mark.parametrize("n", [2, 3])
def test_n_ranks_match_one_process_within_tolerance(runs, n):
    """Parameters and running statistics, every configuration (Adam included)."""
    for name in CONFIGS:
        pn, bn, info = _load(runs[n], name)
        p0, b0, info0 = _load(runs[0], name)
        tol = TOLERANCE[DTYPES[name]]
        assert _rel(pn, p0) <= tol, (name, _rel(pn, p0))
        assert bn.size == b0.size and (name.startswith("ln") or bn.size > 0), name
        if b0.size:
            assert _rel(bn, b0) <= tol, (name, _rel(bn, b0))
        assert not np.array_equal(pn, p0) or DTYPES[name] == "float64", name  # really other groupings
        assert len(info["history"]) == len(info0["history"]), name
        for row, row0 in zip(info["history"], info0["history"]):
            assert row["loss"] == pytest.approx(row0["loss"], rel=1e-4), name


@pytest.mark.parametrize("n", [2, 3])
def test_every_rank_holds_the_same_weights_and_running_statistics(runs, n):
    # bn_rank_seeded starts every rank from other weights and other running statistics: only because
    # sync_run broadcasts rank 0's buffers with its parameters do the ranks agree (checked: dropping
    # "buffers" from Run.state_dict makes this fail).
    for name in CONFIGS:
        _, _, info = _load(runs[n], name)
        assert info["size"] == n
        assert info["same_on_all_ranks"], name


@pytest.mark.parametrize("n", [2, 3])
def test_a_rank_holding_a_shard_keeps_the_global_batchs_statistics(runs, n):
    """One step on one unshuffled batch of all 203 rows, of which rank 0 holds the first 203 // n."""
    pn, bn, info = _load(runs[n], "bn_onestep")
    p0, b0, _ = _load(runs[0], "bn_onestep")
    assert bn.size == 2 * 8 + 2 * 16
    assert _rel(bn, b0) <= TOLERANCE["float64"] and _rel(pn, p0) <= TOLERANCE["float64"]
    stats = info["input_stats"]
    mom = 0.1  # BatchNorm's default: running ← 0.9 running + 0.1 batch (running_var starts at 1)
    want_mean = mom * np.array(stats["mean"])
    want_var = (1 - mom) + mom * np.array(stats["var"])  # the unbiased variance of the 203 rows
    np.testing.assert_allclose(bn[:8], want_mean, rtol=0, atol=1e-15)
    np.testing.assert_allclose(bn[8:16], want_var, rtol=0, atol=1e-15)
    # rank 0's rows alone would give other statistics, by far more than the tolerance
    assert np.max(np.abs(mom * np.array(stats["rank0_mean"]) - want_mean)) > 1e-3
    assert np.max(np.abs((1 - mom) + mom * np.array(stats["rank0_var"]) - want_var)) > 1e-3


@pytest.mark.parametrize("n", [2, 3])
def test_batchnorm_adds_three_all_reduces_per_layer_and_step(runs, n):
    # bn_tiny: batches of 2 rows, so with 3 ranks rank 0 holds none and still joins every all-reduce
    for name in CONFIGS:
        _, _, info = _load(runs[n], name)
        steps, per_step = REDUCES[name]
        assert info["reduce_calls_in_fit"] == steps * per_step, name
