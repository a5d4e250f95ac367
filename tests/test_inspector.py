"""The Inspector (deltaprop.inspector): statistics against hand computations, the log, resume, MPI.

Hand computations use the seed's equations on tiny float64 networks:
``δ^(L) = ∂L/∂a ⊙ σ'(z^(L))`` (with the 1/m of the mean loss) and
``δ^(l) = (W^(l+1))ᵀ δ^(l+1) ⊙ σ'(z^(l))`` (in rows: ``Δ_l = (Δ_{l+1} W_{l+1}) ⊙ σ'(Z_l)``),
``grad_W = Δᵀ A_prev``, ``grad_b = Σ_rows Δ``, and a plain SGD step
``W ← W − η grad_W``.
"""

import json
import re
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

import deltaprop as dp
from deltaprop.errors import InvalidArgumentError, ModelFileError
from deltaprop.inspector import Inspector, check_log, dense_layers, load_log

from test_distributed import _env, mpiexec  # noqa: F401  (the fixture: skips without mpi4py or mpiexec)

TANH_SAT, SIG_LOW, SIG_HIGH = 0.99, 0.01, 0.99


def _data(n=64, d=3, k=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    Y = np.tanh(X @ rng.standard_normal((d, k))) * 0.5 + 0.5
    return X, Y


def _fit(net, X, y, inspector, **kwargs):
    kwargs.setdefault("optimizer", dp.SGD(learning_rate=0.1))
    kwargs.setdefault("shuffle", False)
    return net.fit(X, y, verbose=0, callbacks=[inspector], **kwargs)


def _hist_close(h, values, bins=30):
    """A histogram of the log against NumPy's: same edges, counts off by at most one at a bin boundary."""
    counts, edges = np.histogram(values, bins=bins)
    np.testing.assert_allclose(h["edges"], edges, rtol=1e-6, atol=1e-12)
    assert sum(h["counts"]) == values.size
    assert np.abs(np.array(h["counts"]) - counts).max() <= 1


# ------------------------------------------------------------ statistics
def test_layer_delta_is_the_seeds_delta():
    X, Y = _data(m := 16)
    net = dp.Network([dp.Dense(3, 4, activation="tanh"), dp.Dense(4, 2, activation="sigmoid")],
                     loss="mean_squared_error", dtype="float64", seed=1)
    net.loss_and_gradients(X, Y)
    h, o = net.layers
    a1 = np.tanh(X @ h.W.T + h.b)
    a2 = 1 / (1 + np.exp(-(a1 @ o.W.T + o.b)))
    d2 = (2 * (a2 - Y) / 2 / m) * a2 * (1 - a2)             # ∂L/∂a ⊙ σ'(z), 1/m folded in
    d1 = (d2 @ o.W) * (1 - a1 ** 2)                         # (W²)ᵀ δ² ⊙ tanh'(z¹), in rows
    np.testing.assert_allclose(o.delta, d2, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(h.delta, d1, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(h.grad_W, d1.T @ X, rtol=1e-12, atol=1e-15)


def test_one_step_statistics_equal_hand_computation():
    """Full batch, every=1: epoch 1's record is the one SGD step, computed by hand."""
    X, Y = _data(m := 40)
    net = dp.Network([dp.Dense(3, 4, activation="tanh"), dp.Dense(4, 3, activation="relu"),
                      dp.Dense(3, 2, activation="sigmoid")], loss="mean_squared_error", dtype="float64", seed=2)
    net.layers[0].b[0] = 10.0     # unit 0 of the tanh layer saturates on every row
    net.layers[1].b[1] = -100.0   # unit 1 of the ReLU layer never fires
    Ws = [layer.W.copy() for layer in net.layers]
    bs = [layer.b.copy() for layer in net.layers]
    acts = [np.tanh, lambda z: np.maximum(z, 0), lambda z: 1 / (1 + np.exp(-z))]
    A, Z = [X], []
    for W, b, f in zip(Ws, bs, acts):
        Z.append(A[-1] @ W.T + b)
        A.append(f(Z[-1]))
    derivs = [1 - A[1] ** 2, (Z[1] > 0).astype(float), A[3] * (1 - A[3])]
    deltas = [None] * 3
    deltas[2] = 2 * (A[3] - Y) / 2 / m * derivs[2]
    for layer in (1, 0):
        deltas[layer] = (deltas[layer + 1] @ Ws[layer + 1]) * derivs[layer]
    grads_W = [d.T @ a for d, a in zip(deltas, A)]
    ins = Inspector(every=1)
    _fit(net, X, Y, ins, epochs=1, batch_size=m)
    record = ins.log()["epochs"][0]
    assert record["samples"] == 1 and record["epoch"] == 1
    for i, entry in enumerate(record["layers"]):
        W1 = Ws[i] - 0.1 * grads_W[i]
        assert entry["path"] == f"layers.{i}"
        assert entry["delta_norm"] == pytest.approx(np.linalg.norm(deltas[i]), rel=1e-10)
        assert entry["grad_W_norm"] == pytest.approx(np.linalg.norm(grads_W[i]), rel=1e-10)
        assert entry["grad_b_norm"] == pytest.approx(np.linalg.norm(deltas[i].sum(axis=0)), rel=1e-10)
        assert entry["update_ratio"] == pytest.approx(np.linalg.norm(W1 - Ws[i]) / np.linalg.norm(Ws[i]), rel=1e-8)
        assert entry["weight_norm"] == pytest.approx(np.linalg.norm(W1), rel=1e-12)
        _hist_close(entry["hist"]["W"], W1)
        _hist_close(entry["hist"]["z"], Z[i])
        _hist_close(entry["hist"]["grad_W"], grads_W[i])
    tanh, relu, sig = record["layers"]
    assert tanh["saturated_fraction"] == np.mean(np.mean(np.abs(A[1]) > TANH_SAT, axis=0) >= 0.95) >= 0.25
    assert relu["dead_fraction"] == np.mean(~np.any(Z[1] > 0, axis=0)) >= 1 / 3
    assert sig["saturated_fraction"] == np.mean(np.mean((A[3] < SIG_LOW) | (A[3] > SIG_HIGH), axis=0) >= 0.95)
    assert tanh["dead_fraction"] is None and relu["saturated_fraction"] is None and sig["dead_fraction"] is None
    assert record["logs"]["loss"] == pytest.approx(float(np.mean(np.sum((A[3] - Y) ** 2, axis=1) / 2)), rel=1e-12)


def test_means_over_the_sampled_batches_of_an_epoch():
    """every=2 over 5 batches samples batches 0, 2, 4; the norms are their means (checked by a recorder)."""
    X, Y = _data(50)
    net = dp.Network([dp.Dense(3, 5, activation="relu"), dp.Dense(5, 2)], loss="mean_squared_error",
                     dtype="float64", seed=3)
    seen = {"delta": [], "ratio": []}
    before = {}

    def record(run, batch, logs):
        W = net.layers[0].W
        if batch % 2 == 0:
            seen["delta"].append(np.linalg.norm(net.layers[0].delta))
            seen["ratio"].append(np.linalg.norm(W - before["W"]) / np.linalg.norm(before["W"]))
        before["W"] = W.copy()

    recorder = dp.LambdaCallback(on_batch_end=record, on_epoch_begin=lambda run, e: before.update(
        W=net.layers[0].W.copy()))
    ins = Inspector(every=2)
    net.fit(X, Y, epochs=1, batch_size=10, verbose=0, shuffle=False, optimizer=dp.Adam(learning_rate=0.05),
            callbacks=[recorder, ins])
    entry = ins.log()["epochs"][0]["layers"][0]
    assert ins.log()["epochs"][0]["samples"] == 3
    assert entry["delta_norm"] == pytest.approx(np.mean(seen["delta"]), rel=1e-10)
    assert entry["update_ratio"] == pytest.approx(np.mean(seen["ratio"]), rel=1e-8)


@pytest.mark.parametrize("every, samples", [(1, 10), (3, 4), (4, 3), (100, 1)])
def test_sampling_rate(every, samples):
    X, Y = _data(100)
    net = dp.Network([dp.Dense(3, 4, activation="relu"), dp.Dense(4, 2)], loss="mean_squared_error", seed=0)
    ins = Inspector(every=every)
    _fit(net, X, Y, ins, epochs=2, batch_size=10)
    assert [e["samples"] for e in ins.log()["epochs"]] == [samples, samples]
    assert sum(ins.log()["epochs"][0]["layers"][0]["hist"]["z"]["counts"]) == 10 * 4  # the last sampled batch


def test_dead_relu_units():
    X, Y = _data(64)
    net = dp.Network([dp.Dense(3, 8, activation="relu"), dp.Dense(8, 8, activation="relu"), dp.Dense(8, 2)],
                     loss="mean_squared_error", seed=0)
    net.layers[0].b[...] = -100.0
    ins = Inspector(every=1)
    _fit(net, X, Y, ins, epochs=2, batch_size=16)
    for record in ins.log()["epochs"]:
        first, second, out = record["layers"]
        assert first["dead_fraction"] == 1.0
        assert first["grad_W_norm"] == 0.0 and first["update_ratio"] == 0.0  # dead: no gradient, no step
        assert out["dead_fraction"] is None


def test_saturated_sigmoid_and_tanh_units():
    X, Y = _data(64)
    net = dp.Network([dp.Dense(3, 16, activation="sigmoid"), dp.Dense(16, 16, activation="tanh"),
                      dp.Dense(16, 2)], loss="mean_squared_error", seed=0)
    ins = Inspector(every=1)
    _fit(net, X, Y, ins, epochs=1, batch_size=16)
    calm = [e["saturated_fraction"] for e in ins.log()["epochs"][0]["layers"][:2]]
    net = dp.Network([dp.Dense(3, 16, activation="sigmoid"), dp.Dense(16, 16, activation="tanh"),
                      dp.Dense(16, 2)], loss="mean_squared_error", seed=0)
    net.layers[0].W[...] *= 1000.0
    net.layers[1].W[...] *= 1000.0
    ins = Inspector(every=1)
    _fit(net, X, Y, ins, epochs=1, batch_size=16)
    hot = [e["saturated_fraction"] for e in ins.log()["epochs"][0]["layers"][:2]]
    assert calm == [0.0, 0.0]
    assert min(hot) >= 0.9


def test_vanishing_gradient_in_a_deep_sigmoid_stack():
    X, Y = _data(64, d=16)
    layers = [dp.Dense(16, 16, activation="sigmoid") for _ in range(9)] + [dp.Dense(16, 2, activation="sigmoid")]
    net = dp.Network(layers, loss="mean_squared_error", dtype="float64", seed=0)
    ins = Inspector(every=1)
    _fit(net, X, Y, ins, epochs=1, batch_size=16)
    norms = [e["delta_norm"] for e in ins.log()["epochs"][0]["layers"]]
    assert len(norms) == 10
    assert norms[0] < 1e-4 * norms[-1]
    assert all(a < b for a, b in zip(norms, norms[1:]))  # shrinking all the way back


def test_too_high_learning_rate_shows_in_the_update_ratio():
    X, Y = _data(64)

    def ratio(lr):
        net = dp.Network([dp.Dense(3, 8, activation="tanh"), dp.Dense(8, 2)], loss="mean_squared_error", seed=0)
        ins = Inspector(every=1)
        _fit(net, X, Y, ins, epochs=1, batch_size=64, optimizer=dp.SGD(learning_rate=lr))
        return ins.log()["epochs"][0]["layers"][0]["update_ratio"]

    small, large = ratio(1e-3), ratio(10.0)
    assert small < 1e-2
    assert large > 0.5
    assert large == pytest.approx(small * 1e4, rel=1e-3)  # one step from the same weights: η scales it


def test_residual_blocks_and_paths():
    net = dp.Network.from_sizes([3, 8, 8, 2], residual=True, loss="mean_squared_error", seed=0)
    paths = [p for p, _ in dense_layers(net.layers)]
    assert paths == ["layers.0", "layers.1.layers.0", "layers.1.layers.1", "layers.2.layers.0",
                     "layers.2.layers.1", "layers.4"]
    X, Y = _data(32)
    ins = Inspector(every=1)
    _fit(net, X, Y, ins, epochs=1, batch_size=8)
    log = ins.log()
    assert [entry["path"] for entry in log["network"]["layers"]] == paths
    inner = dict(zip(paths, log["epochs"][0]["layers"]))["layers.1.layers.0"]
    assert inner["grad_W_norm"] > 0 and inner["dead_fraction"] is not None


def test_weights_are_bit_identical_with_and_without_the_inspector():
    X, _ = _data(200, d=6)
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0)
    params = []
    for callbacks in ([], [Inspector(every=1)], [Inspector()]):
        net = dp.Network([dp.Dense(6, 32, activation="relu", dropout=0.2),
                          dp.Residual([dp.Dense(32, 32, activation="tanh"), dp.Dense(32, 32)]),
                          dp.Dense(32, 3, activation="softmax")], seed=4)
        net.fit(X, y, epochs=3, batch_size=16, verbose=0, callbacks=callbacks)
        params.append(net.params.copy())
    assert np.array_equal(params[0], params[1]) and np.array_equal(params[0], params[2])


# ------------------------------------------------------------------ the log
def test_json_round_trip_and_null_for_non_finite(tmp_path):
    X, Y = _data(32)
    net = dp.Network([dp.Dense(3, 4, activation="relu", initializer="zeros"), dp.Dense(4, 2)],
                     loss="mean_squared_error", dtype="float64", seed=0)
    nan_row = dp.LambdaCallback(on_epoch_end=lambda run, epoch, logs: logs.update(custom=float("nan")))
    path = tmp_path / "inspector.json"
    ins = Inspector(every=2, path=path)
    net.fit(X, Y, epochs=2, batch_size=8, verbose=0, callbacks=[nan_row, ins])
    text = path.read_text()
    json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in the file"))
    loaded = load_log(path)
    assert loaded == ins.log() == json.loads(json.dumps(ins.log()))
    first = loaded["epochs"][0]
    assert first["logs"]["custom"] is None
    assert first["layers"][0]["update_ratio"] is None  # ‖W_before‖ = 0 on the first step: 0/0
    assert first["layers"][0]["hist"]["W"]["counts"] == [0] * 15 + [12] + [0] * 14  # all zeros: NumPy's ±0.5
    assert first["layers"][0]["hist"]["W"]["edges"] == list(np.histogram(np.zeros(12), bins=30)[1])
    assert loaded["settings"] == {"every": 2, "bins": 30}
    ins.save(tmp_path / "again.json")
    assert load_log(tmp_path / "again.json") == loaded


def _good_log():
    X, Y = _data(16)
    net = dp.Network([dp.Dense(3, 2)], loss="mean_squared_error", seed=0)
    ins = Inspector(every=1, bins=4)
    _fit(net, X, Y, ins, epochs=1, batch_size=8)
    return ins.log()


@pytest.mark.parametrize("change, words", [
    (lambda g: g.update(format="deltaprop.model"), "format"),
    (lambda g: g.update(version=2), "version 2"),
    (lambda g: g["settings"].update(every=0), "settings"),
    (lambda g: g["epochs"][0]["layers"][0].update(delta_norm=-1.0), "delta_norm"),
    (lambda g: g["epochs"][0]["layers"][0].update(dead_fraction=1.5), "dead_fraction"),
    (lambda g: g["epochs"][0]["layers"][0]["hist"]["z"].update(counts=[1, 2]), "hist.z"),
    (lambda g: g["epochs"][0]["layers"][0]["hist"]["W"].update(edges=[3, 2, 1, 0, -1]), "hist.W.edges"),
    (lambda g: g["epochs"][0]["layers"][0].update(path="layers.7"), "path"),
    (lambda g: g["epochs"][0].pop("samples"), "epochs[0]"),
    (lambda g: g["epochs"][0]["logs"].update(loss=[1]), "logs"),
    (lambda g: g["network"]["layers"][0].update(n_out="2"), "network.layers[0]"),
])
def test_malformed_logs_are_refused_naming_the_field(tmp_path, change, words):
    log = _good_log()
    check_log(log, "fine")
    change(log)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(log))
    with pytest.raises(ModelFileError, match=re.escape(words)):
        load_log(path)


@pytest.mark.parametrize("text, words", [
    ('{"format": "deltaprop.inspector", "format": 1}', "duplicate"),
    (re.sub(r'"delta_norm": [^,]+', '"delta_norm": NaN', json.dumps(_good_log()), count=1), "delta_norm: must"),
    ("[" * 100_000 + "]" * 100_000, "nested|keys"),
    ("not json", "not a JSON"),
    ("[1, 2]", "must be an object"),
])
def test_files_that_are_not_logs_are_refused(tmp_path, text, words):
    path = tmp_path / "x.json"
    path.write_text(text)
    with pytest.raises(ModelFileError, match=words):
        load_log(path)
    with pytest.raises(ModelFileError, match="no such file"):
        load_log(tmp_path / "missing.json")


def test_arguments_are_checked():
    for kwargs in ({"every": 0}, {"every": 1.5}, {"bins": 0}, {"bins": 10**6}, {"every": True}):
        with pytest.raises((InvalidArgumentError, TypeError)):
            Inspector(**kwargs)


# ------------------------------------------------------------- checkpoints
def _resumable(tmp_path, name, every=3):
    X, Y = _data(70)
    net = dp.Network([dp.Dense(3, 6, activation="relu", dropout=0.1), dp.Dense(6, 6, activation="sigmoid"),
                      dp.Dense(6, 2)], loss="mean_squared_error", seed=5)
    kwargs = dict(batch_size=10, optimizer=dp.Adam(learning_rate=0.05), verbose=0)
    return net, X, Y, kwargs


def _without_time(log):
    for record in log["epochs"]:
        record["logs"].pop("time")
    return log


@pytest.mark.parametrize("unit, every, resume_at, epochs_done", [("epoch", 1, "ckpt-e0002-s000000014", 2),
                                                                 ("step", 4, "ckpt-e0001-s000000012", 1),
                                                                 ("step", 4, "ckpt-e0002-s000000020", 2)])
def test_resumed_run_gives_the_uninterrupted_log(tmp_path, unit, every, resume_at, epochs_done):
    """From an epoch's end, and mid-epoch (7 batches an epoch, one in 3 sampled): step 12 is batch 5 of
    epoch 2, between two samples; step 20 is batch 6 of epoch 3, right before a sampled one."""
    net, X, Y, kwargs = _resumable(tmp_path, "whole")
    whole = Inspector(every=3)
    net.fit(X, Y, epochs=4, callbacks=[whole], checkpoint_dir=tmp_path / "ckpt", checkpoint_unit=unit,
            checkpoint_every=every, keep_checkpoints=100, **kwargs)
    path = tmp_path / "ckpt" / f"{resume_at}.safetensors"
    done = load_log(path)
    assert len(done["epochs"]) == epochs_done
    net2, X, Y, kwargs = _resumable(tmp_path, "resumed")
    resumed = Inspector(every=3)
    net2.fit(X, Y, epochs=4, callbacks=[resumed], resume_from=path, **kwargs)
    assert np.array_equal(net.params, net2.params)
    assert _without_time(resumed.log()) == _without_time(whole.log())
    assert _without_time(done)["epochs"] == _without_time(whole.log())["epochs"][:len(done["epochs"])]


def test_resume_with_other_settings_or_without_records(tmp_path):
    net, X, Y, kwargs = _resumable(tmp_path, "a")
    net.fit(X, Y, epochs=1, callbacks=[Inspector(every=3)], checkpoint_dir=tmp_path / "a", **kwargs)
    net2, X, Y, kwargs = _resumable(tmp_path, "b")
    with pytest.raises(ModelFileError, match="every=3"):
        net2.fit(X, Y, epochs=2, callbacks=[Inspector(every=2)], resume_from=tmp_path / "a", **kwargs)
    net3, X, Y, kwargs = _resumable(tmp_path, "c")
    net3.fit(X, Y, epochs=1, checkpoint_dir=tmp_path / "c", **kwargs)
    with pytest.raises(ModelFileError, match="no inspector records"):
        load_log(next((tmp_path / "c").glob("*.safetensors")))
    used = Inspector(every=3)  # already holds a run's records: a resume without records of its own drops them
    net4, X, Y, kwargs = _resumable(tmp_path, "d")
    net4.fit(X, Y, epochs=3, callbacks=[used], **kwargs)
    net5, X, Y, kwargs = _resumable(tmp_path, "e")
    net5.fit(X, Y, epochs=2, callbacks=[used], resume_from=tmp_path / "c", **kwargs)
    assert [e["epoch"] for e in used.log()["epochs"]] == [2]


def test_state_from_a_stranger_is_refused():
    """A checkpoint's inspector state is checked field by field, its arrays by name, shape and finiteness."""
    X, Y = _data(40)
    net = dp.Network([dp.Dense(3, 4, activation="relu"), dp.Dense(4, 2)], loss="mean_squared_error", seed=0)
    ins = Inspector(every=1)
    states = []
    grab = dp.LambdaCallback(on_batch_end=lambda run, batch, logs: states.append(ins.get_state()))
    net.fit(X, Y, epochs=1, batch_size=10, verbose=0, callbacks=[ins, grab])
    meta, arrays = states[1]  # mid-epoch: after batch 2 of 4
    assert sorted(arrays) == ["grads.0", "grads.1", "units.0"] and meta["current"]["samples"] == 2
    Inspector(every=1).set_state(meta, arrays)  # well formed
    cases = [({**meta, "current": {"epoch": -1}}, arrays, "current"),
             ({**meta, "current": None}, arrays, "no epoch in progress"),
             (meta, {**arrays, "../etc": np.zeros(2)}, "unexpected array"),
             (meta, {**arrays, "grads.1": np.zeros((2, 4))}, "grads.1"),
             (meta, {**arrays, "units.0": np.full(4, np.nan)}, "units.0"),
             ({**meta, "settings": {"every": 2, "bins": 30}}, arrays, "every=2")]
    for bad_meta, bad_arrays, words in cases:
        with pytest.raises((ModelFileError, InvalidArgumentError), match=re.escape(words)):
            Inspector(every=1).set_state(bad_meta, bad_arrays)
    # counts for the identity output layer, which has none: refused when the resumed run begins
    ins = Inspector(every=1)
    ins.set_state(meta, {**arrays, "units.1": np.zeros(2)})
    with pytest.raises(ModelFileError, match=re.escape("units.1 is unexpected")):
        ins.on_train_begin(SimpleNamespace(network=net, start_epoch=0, start_batch=2, comm=None))


# ------------------------------------------------------------------ MPI
CHILD = r'''
import json, os, sys
import numpy as np
import deltaprop as dp
from deltaprop.inspector import Inspector

out, plain = sys.argv[1], "--plain" in sys.argv
comm = None
if not plain:
    from deltaprop.distributed import MPIComm
    comm = MPIComm()
rank = 0 if comm is None else comm.rank
rng = np.random.default_rng(0)
X = rng.standard_normal((150, 5))
y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int) + (X[:, 2] > 0.5)
net = dp.Network([dp.Dense(5, 12, activation="relu"), dp.Dense(12, 8, activation="tanh"),
                  dp.Dense(8, 3, activation="softmax")], dtype="float64", seed=7)
name = "plain" if plain else f"rank{rank}"
ins = Inspector(every=2, path=os.path.join(out, f"log-{name}.json"))
net.fit(X, y, epochs=3, batch_size=32, optimizer=dp.Adam(learning_rate=0.02), verbose=0, comm=comm,
        callbacks=[ins])
if rank == 0:
    np.save(os.path.join(out, f"params-{name}.npy"), net.params)
'''


def test_mpi_rank_0_writes_the_global_statistics(mpiexec, tmp_path):  # noqa: F811
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    for cmd in ([mpiexec, "-n", "2", sys.executable, str(script), str(tmp_path)],
                [sys.executable, str(script), str(tmp_path), "--plain"]):
        proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (tmp_path / "log-rank1.json").exists()
    mpi, plain = load_log(tmp_path / "log-rank0.json"), load_log(tmp_path / "log-plain.json")
    np.testing.assert_allclose(np.load(tmp_path / "params-rank0.npy"), np.load(tmp_path / "params-plain.npy"),
                               rtol=1e-10, atol=1e-12)
    assert [e["samples"] for e in mpi["epochs"]] == [e["samples"] for e in plain["epochs"]] == [3, 3, 3]
    for a, b in zip(mpi["epochs"], plain["epochs"]):
        for la, lb in zip(a["layers"], b["layers"]):
            for key in ("delta_norm", "grad_W_norm", "grad_b_norm", "weight_norm", "update_ratio"):
                assert la[key] == pytest.approx(lb[key], rel=1e-9), key
            assert la["dead_fraction"] == lb["dead_fraction"]
            assert la["saturated_fraction"] == lb["saturated_fraction"]
            np.testing.assert_allclose(la["hist"]["z"]["edges"], lb["hist"]["z"]["edges"], rtol=1e-9, atol=1e-12)
            za, zb = np.array(la["hist"]["z"]["counts"]), np.array(lb["hist"]["z"]["counts"])
            assert za.sum() == zb.sum() and np.abs(za - zb).max() <= 1
