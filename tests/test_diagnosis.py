"""Findings in words from an Inspector log (deltaprop.diagnosis): each rule on synthetic logs, then real runs.

The synthetic logs start healthy (no finding) and change one statistic, so
that each test sees its rule fire at the epoch and layer it was built for and
stay quiet on the near side of its threshold. The real runs train tiny
networks built to go wrong: SGD with a learning rate far too high, ReLUs killed
by biases of -100, and a stack of nine sigmoid layers whose gradient vanishes.
"""

import math

import numpy as np
import pytest

import deltaprop as dp
from deltaprop import diagnosis as D
from deltaprop.errors import InvalidArgumentError
from deltaprop.inspector import Inspector

ACTIVATIONS = ("relu", "relu", "softmax")


def _empty_hist():
    return {"edges": [], "counts": []}


def make_log(epochs=6, activations=ACTIVATIONS, stats=None, logs=None):
    """A log of ``epochs`` healthy epochs; ``stats(epoch, i)`` and ``logs(epoch)`` return values to change."""
    layers = [{"path": f"layers.{i}", "kind": "Dense", "activation": a, "n_in": 8, "n_out": 8}
              for i, a in enumerate(activations)]
    out = []
    for epoch in range(1, epochs + 1):
        rows = []
        for i, info in enumerate(layers):
            row = {"path": info["path"], "delta_norm": 0.1, "grad_W_norm": 0.2 / epoch, "grad_b_norm": 0.01,
                   "weight_norm": 3.0, "update_ratio": 1e-3, "dead_fraction": 0.0 if info["activation"] == "relu"
                   else None, "saturated_fraction": 0.0 if info["activation"] in ("sigmoid", "tanh") else None,
                   "hist": {"W": _empty_hist(), "z": _empty_hist(), "grad_W": _empty_hist()}}
            row.update(stats(epoch, i) if stats else {})
            rows.append(row)
        curve = {"epoch": epoch, "loss": 1.0 / epoch, "val_loss": 1.05 / epoch, "lr": 1e-3}
        curve.update(logs(epoch) if logs else {})
        out.append({"epoch": epoch, "logs": curve, "samples": 3, "layers": rows})
    return {"format": "deltaprop.inspector", "version": 1, "settings": {"every": 1, "bins": 30},
            "network": {"layers": layers}, "epochs": out}


def kinds(log):
    return [(f["kind"], f["severity"], f["epoch"], f["layer"]) for f in D.diagnose(log)]


def only(log, kind):
    found = [f for f in D.diagnose(log) if f["kind"] == kind]
    assert len(found) == 1, D.diagnose(log)
    return found[0]


# ------------------------------------------------------------------ synthetic
def test_a_healthy_log_has_no_finding():
    assert D.diagnose(make_log()) == []


def test_every_finding_has_the_documented_keys_and_names_its_epoch_and_layer():
    log = make_log(stats=lambda e, i: {"dead_fraction": 0.9} if i == 1 and e >= 2 else {})
    (f,) = D.diagnose(log)
    assert set(f) == {"epoch", "layer", "kind", "severity", "message"}
    assert (f["kind"], f["severity"], f["epoch"], f["layer"]) == ("dead_units", "warning", 2, "layers.1")
    assert "layers.1 (Dense 8→8, relu)" in f["message"] and "epoch 2" in f["message"]


@pytest.mark.parametrize("fraction, expected", [(0.5, "warning"), (0.2, "note"), (0.1, "note"), (0.09, None)])
def test_dead_units_warn_from_half_and_note_from_a_tenth(fraction, expected):
    log = make_log(stats=lambda e, i: {"dead_fraction": fraction} if i == 0 and e >= 3 else {})
    found = kinds(log)
    assert found == ([] if expected is None else [("dead_units", expected, 3, "layers.0")])


def test_saturated_units_warn_from_half():
    acts = ("sigmoid", "tanh", "softmax")
    assert kinds(make_log(activations=acts, stats=lambda e, i: {"saturated_fraction": 0.49})) == []
    found = only(make_log(activations=acts, stats=lambda e, i: {"saturated_fraction": 0.6} if i == 1 and e >= 4
                          else {}), "saturated_units")
    assert (found["epoch"], found["layer"]) == (4, "layers.1")
    assert "flat ends" in found["message"]


@pytest.mark.parametrize("ratio, advice", [(0.3, "lower the learning rate"), (1e-7, "raise the learning rate")])
def test_an_update_ratio_far_from_1e_3_says_which_way_to_move_the_learning_rate(ratio, advice):
    f = only(make_log(stats=lambda e, i: {"update_ratio": ratio} if i == 2 else {}), "update_ratio")
    assert (f["epoch"], f["layer"]) == (1, "layers.2")
    assert advice in f["message"]


def test_the_update_ratio_rule_reads_the_median_not_one_epoch():
    # one wild epoch of six: the median stays near 1e-3
    assert kinds(make_log(stats=lambda e, i: {"update_ratio": 0.5} if e == 1 else {})) == []
    assert kinds(make_log(stats=lambda e, i: {"update_ratio": 0.09})) == []  # just under the bound


def test_vanishing_gradients_relative_to_the_output_layer():
    # the first layer's ‖∂L/∂W‖/‖W‖ at 1e-5 of the output layer's
    f = only(make_log(stats=lambda e, i: {"grad_W_norm": 2e-6 / e} if i == 0 and e >= 2 else {}),
             "vanishing_gradients")
    assert (f["epoch"], f["layer"]) == (2, "layers.0")
    assert "layers.2" in f["message"]  # the layer it is compared with
    # at 1e-3 of it: slow, not vanished
    assert kinds(make_log(stats=lambda e, i: {"grad_W_norm": 2e-4 / e, "delta_norm": 1e-3} if i == 0 else {})) == []


def test_vanishing_gradients_below_rounding():
    f = only(make_log(stats=lambda e, i: {"grad_W_norm": 5e-8, "delta_norm": 5e-8} if i == 1 else {}),
             "vanishing_gradients")
    assert (f["epoch"], f["layer"]) == (1, "layers.1")


def test_dead_units_explain_the_zero_gradients_below_them():
    """Dead ReLUs pass back nothing: that is one finding, not also vanishing gradients or a low update ratio."""
    def dead(e, i):
        return {"dead_fraction": 1.0, "grad_W_norm": 0.0, "delta_norm": 0.0, "update_ratio": 0.0} if i < 2 else \
            {"grad_W_norm": 0.0, "update_ratio": 0.0}
    assert kinds(make_log(stats=dead)) == [("dead_units", "warning", 1, "layers.0")]


def test_exploding_gradients_grow_a_hundredfold():
    f = only(make_log(stats=lambda e, i: {"grad_W_norm": 0.2 * 10 ** (e - 1)} if i == 1 else {}),
             "exploding_gradients")
    assert (f["epoch"], f["layer"]) == (4, "layers.1")  # 1000 times epoch 1's (100 at epoch 3 is not above)


def test_non_finite_values_after_finite_ones_and_a_non_finite_loss():
    log = make_log(stats=lambda e, i: {"grad_W_norm": None, "delta_norm": None} if e >= 5 and i > 0 else {},
                   logs=lambda e: {"loss": math.nan} if e == 6 else {})
    found = [f for f in D.diagnose(log) if f["kind"] == "non_finite"]
    assert [(f["epoch"], f["layer"]) for f in found] == [(6, None), (5, "layers.1")]
    assert "also layers.2 (epoch 5)" in found[1]["message"]


def test_a_statistic_that_does_not_apply_is_not_taken_for_a_non_finite_one():
    # grad_b_norm null (no bias) and dead_fraction null (not relu) at every epoch
    assert kinds(make_log(stats=lambda e, i: {"grad_b_norm": None})) == []


def test_the_loss_blowing_up():
    f = only(make_log(logs=lambda e: {"loss": 50.0, "val_loss": 50.0} if e == 5 else {}), "loss_rising")
    assert (f["epoch"], f["layer"]) == (5, None)


def test_a_converged_loss_that_wobbles_has_not_blown_up():
    # 1e-4 to 2e-3 is twenty times, but a thousandth of where the run started
    log = make_log(logs=lambda e: {"loss": [2.3, 0.1, 1e-3, 1e-4, 2e-3, 1e-4][e - 1], "val_loss": 0.2})
    assert [f for f in D.diagnose(log) if f["kind"] == "loss_rising"] == []


def test_validation_loss_rising_while_training_loss_falls():
    f = only(make_log(epochs=8, logs=lambda e: {"val_loss": 0.4 + 0.1 * max(e - 3, 0)}), "validation_gap")
    assert f["epoch"] == 3 and f["layer"] is None
    assert "from epoch 3 to 6" in f["message"] and "early stopping" in f["message"]


def test_validation_loss_far_above_training_loss():
    f = only(make_log(logs=lambda e: {"val_loss": 2.0 / e if e >= 2 else 1.0}), "validation_gap")
    assert f["epoch"] == 2 and "2 times the training loss" in f["message"]


def test_a_gap_too_small_to_act_on_is_not_reported():
    # 2.5 times the training loss, but 0.0075 apart in a run whose loss started at 1
    log = make_log(logs=lambda e: {"loss": 1.0 if e == 1 else 0.005, "val_loss": 1.0 if e == 1 else 0.0125})
    assert kinds(log) == []


def test_findings_are_ordered_warnings_first_then_by_kind():
    log = make_log(stats=lambda e, i: {"dead_fraction": 0.2} if i == 0 else {"update_ratio": 0.5} if i == 2 else {},
                   logs=lambda e: {"val_loss": 3.0 / e})
    assert [(k, s) for k, s, *_ in kinds(log)] == [("update_ratio", "warning"), ("validation_gap", "warning"),
                                                   ("dead_units", "note")]


def test_curves_log_and_with_history():
    rows = [{"epoch": 1, "loss": 1.0, "time": 0.1}, {"override": {"setting": "lr"}}, {"epoch": 2, "loss": 0.5}]
    curves = D.curves_log(rows)
    assert [(e["epoch"], e["logs"]) for e in curves["epochs"]] == [(1, {"loss": 1.0}), (2, {"loss": 0.5})]
    log = make_log(epochs=2)
    merged = D.with_history(log, rows + [{"epoch": 3, "loss": 0.25}])
    assert [e["epoch"] for e in merged["epochs"]] == [1, 2, 3]
    assert merged["epochs"][0]["logs"] == {"loss": 1.0} and merged["epochs"][0]["layers"]
    assert log["epochs"][0]["logs"]["val_loss"] == 1.05  # the log itself is unchanged
    assert D.diagnose(curves) == []


@pytest.mark.parametrize("bad", [None, [], {"epochs": "x"}, {"format": "deltaprop.inspector"}])
def test_a_log_that_is_not_one_is_refused(bad):
    with pytest.raises(InvalidArgumentError, match="list of 'epochs'"):
        D.diagnose(bad)


# ------------------------------------------------------------------ real runs
def blobs(n=400, n_features=10, n_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 2, (n_classes, n_features))
    y = rng.integers(0, n_classes, n)
    return centres[y] + rng.standard_normal((n, n_features)), y


def train_run(kind, epochs=6):
    """``(network, inspector log)`` of a tiny run: healthy, high_lr, dead or sigmoid (see the module notes)."""
    X, y = blobs()
    if kind == "sigmoid":
        net = dp.Network.from_sizes([10] + [32] * 9 + [3], activation="sigmoid", loss="categorical_crossentropy",
                                    seed=0)
    else:
        net = dp.Network.from_sizes([10, 32, 32, 3], loss="categorical_crossentropy", seed=0)
    if kind == "dead":
        for layer in net.layers[:-1]:
            layer.b[...] = -100.0  # every hidden ReLU below its kink for every row
    optimizer = {"name": "sgd", "learning_rate": 2.0} if kind == "high_lr" else "adam"
    inspector = Inspector(every=1)
    net.fit(X[:300], y[:300], epochs=epochs, batch_size=32, optimizer=optimizer, validation_data=(X[300:], y[300:]),
            metrics=["accuracy"], callbacks=[inspector], verbose=0)
    return net, inspector.log()


#: what each real run must show: (kind, epoch, layer, words in the message)
EXPECTED = {
    "healthy": None,
    "high_lr": ("update_ratio", 1, "layers.0", "lower the learning rate"),
    "dead": ("dead_units", 1, "layers.0", "100% of the units"),
    "sigmoid": ("vanishing_gradients", 1, "layers.0", "output layer's (layers.9)"),
}


@pytest.fixture(scope="module")
def real_logs():
    return {kind: train_run(kind)[1] for kind in EXPECTED}


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_real_runs_show_what_they_were_built_to_show(real_logs, kind):
    found = D.diagnose(real_logs[kind])
    expected = EXPECTED[kind]
    if expected is None:
        assert found == []
        return
    kind_, epoch, layer, words = expected
    hits = [f for f in found if f["kind"] == kind_]
    assert hits, found
    assert (hits[0]["epoch"], hits[0]["layer"], hits[0]["severity"]) == (epoch, layer, "warning")
    assert words in hits[0]["message"]


def test_the_dead_run_is_not_also_blamed_on_the_learning_rate(real_logs):
    assert [f["kind"] for f in D.diagnose(real_logs["dead"])] == ["dead_units"]
