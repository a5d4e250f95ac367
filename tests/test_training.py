"""The training run: validation, metrics, early stopping, weights, callbacks, history."""

import json
import math

import numpy as np
import pytest

import deltaprop as dp
from deltaprop.gradcheck import gradcheck
from deltaprop.training import class_weights


def blobs(n=120, n_in=4, k=3, seed=0, spread=0.6):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(k, n_in))
    y = np.arange(n) % k
    X = centers[y] + rng.normal(scale=spread, size=(n, n_in))
    return X, y


def small_net(n_in=4, k=3, seed=0, dropout=0.0, dtype="float32"):
    return dp.Network([dp.Dense(n_in, 16, activation="tanh", dropout=dropout),
                       dp.Dense(16, k, activation="softmax")], dtype=dtype, seed=seed)


def test_history_has_a_row_per_epoch_with_loss_metric_lr_and_time():
    X, y = blobs()
    h = small_net().fit(X, y, epochs=4, batch_size=16, verbose=0, validation_split=0.25)
    assert len(h) == 4 and h.epoch == [1, 2, 3, 4]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "time"):
        assert len(h[key]) == 4 and all(math.isfinite(v) for v in h[key]), key
    assert h["loss"][-1] < h["loss"][0]


def test_epoch_loss_is_the_sample_weighted_mean_over_the_epoch():
    # With SGD at a tiny learning rate the weights barely move, so the epoch's
    # training loss must be (nearly) the mean loss of the data at the start.
    X, y = blobs(n=50)
    net = small_net(dtype="float64")
    before = net.evaluate(X, y)["loss"]
    h = net.fit(X, y, epochs=1, batch_size=7, optimizer=dp.SGD(learning_rate=1e-12), verbose=0)
    assert h["loss"][0] == pytest.approx(before, rel=1e-9)


def test_validation_split_takes_the_last_fraction_and_matches_evaluate():
    X, y = blobs(n=100)
    net = small_net(dtype="float64")
    h = net.fit(X, y, epochs=2, batch_size=10, validation_split=0.2, verbose=0, shuffle=False)
    ev = net.evaluate(X[80:], y[80:])
    assert h["val_loss"][-1] == pytest.approx(ev["loss"], rel=1e-12)
    assert h["val_accuracy"][-1] == pytest.approx(ev["accuracy"], rel=1e-12)


def test_metrics_by_name():
    X, y = blobs()
    h = small_net().fit(X, y, epochs=2, verbose=0, metrics=["accuracy", "top2", "mse"],
                        validation_data=(X, y))
    for key in ("accuracy", "top_k_accuracy", "mse", "val_top_k_accuracy"):
        assert key in h.history
    assert all(t >= a for t, a in zip(h["top_k_accuracy"], h["accuracy"]))


def test_regression_reports_r2_and_mae():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=200)
    net = dp.Network([dp.Dense(3, 8, activation="tanh"), dp.Dense(8, 1)], seed=0)
    h = net.fit(X, y, epochs=60, batch_size=20, verbose=0, optimizer=dp.Adam(learning_rate=1e-2),
                metrics=["r2", "mae"])
    assert h["r2"][-1] > 0.95
    from sklearn.metrics import r2_score

    assert net.evaluate(X, y, metrics=["r2"])["r2"] == pytest.approx(r2_score(y, net.predict(X)[:, 0]), rel=1e-5)


def test_early_stopping_restores_the_best_weights():
    X, y = blobs(n=90, spread=2.5, seed=3)
    Xv, yv = blobs(n=60, spread=2.5, seed=4)
    snapshots = []
    record = dp.LambdaCallback(on_epoch_end=lambda run, epoch, logs: snapshots.append(
        (logs["val_loss"], run.network.params.copy())))
    net = small_net(seed=1)
    es = dp.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    # A large learning rate overfits and oscillates, so validation loss rises after a while.
    h = net.fit(X, y, epochs=200, batch_size=8, optimizer=dp.Adam(learning_rate=0.05),
                validation_data=(Xv, yv), callbacks=[record], early_stopping=es, verbose=0)
    assert len(h) < 200, "early stopping never triggered"
    assert es.stopped_epoch == len(h) - 1
    best = min(range(len(snapshots)), key=lambda i: snapshots[i][0])
    assert best == es.best_epoch
    np.testing.assert_array_equal(net.params, snapshots[best][1])
    assert net.evaluate(Xv, yv)["loss"] == pytest.approx(min(h["val_loss"]), rel=1e-6)


def test_early_stopping_on_a_metric_that_is_not_logged_says_what_is():
    X, y = blobs()
    with pytest.raises(dp.InvalidArgumentError, match="val_loss.*available: accuracy, loss"):
        small_net().fit(X, y, epochs=2, verbose=0, early_stopping=True and {"monitor": "val_loss"})


def test_dropout_is_off_in_predict_and_evaluate_and_on_in_training():
    X, y = blobs()
    net = small_net(dropout=0.5)
    p1, p2 = net.predict(X), net.predict(X)
    np.testing.assert_array_equal(p1, p2)
    e1, e2 = net.evaluate(X, y), net.evaluate(X, y)
    assert e1 == e2
    l1 = net.loss_and_gradients(X, y, training=True)
    g1 = net.grads.copy()
    l2 = net.loss_and_gradients(X, y, training=True)
    assert l1 != l2 and not np.array_equal(g1, net.grads)
    assert net.loss_and_gradients(X, y, training=False) == pytest.approx(e1["loss"], rel=1e-6)


def test_inverted_dropout_keeps_the_expected_activation():
    net = dp.Network([dp.Dense(5, 400, activation="relu", dropout=0.3), dp.Dense(400, 1)], seed=0)
    X = np.ones((200, 5), dtype=np.float32)
    a = net.layers[0].forward(X, training=False)
    clean = a.copy()
    dropped = net.layers[0].forward(X, training=True, rng=np.random.default_rng(0))
    kept = np.mean(dropped != 0) / np.mean(clean != 0)
    assert kept == pytest.approx(0.7, abs=0.01)
    assert dropped.mean() == pytest.approx(clean.mean(), rel=0.02)


def test_sample_weights_give_the_weighted_mean_loss_and_its_exact_gradient():
    X, y = blobs(n=12)
    w = np.random.default_rng(0).uniform(0.1, 3.0, size=12)
    net = small_net(dtype="float64")
    loss = net.loss_and_gradients(X, y, sample_weight=w)
    per_sample = [small_net(dtype="float64").loss_and_gradients(X[i:i + 1], y[i:i + 1]) for i in range(12)]
    assert loss == pytest.approx(np.dot(w, per_sample) / w.sum(), rel=1e-12)
    for row in gradcheck(net, X, y, sample_weight=w):
        assert row["W"] < 1e-6 and row["b"] < 1e-6


def test_class_weights_change_the_gradient_exactly_as_a_weighted_mean():
    X, y = blobs(n=30)
    cw = {0: 1.0, 1: 4.0, 2: 0.5}
    w = np.array([cw[c] for c in y])
    captured = []

    class Grab(dp.Callback):
        def on_batch_end(self, run, batch, logs):
            captured.append(logs["loss"])

    a, b = small_net(dtype="float64"), small_net(dtype="float64")
    a.fit(X, y, epochs=1, batch_size=30, class_weight=cw, optimizer=dp.SGD(learning_rate=0.1),
          callbacks=[Grab()], verbose=0, shuffle=False)
    expected_loss = b.loss_and_gradients(X, y, sample_weight=w)
    assert captured[0] == pytest.approx(expected_loss, rel=1e-12)
    b.params -= 0.1 * b.grads
    np.testing.assert_allclose(a.params, b.params, rtol=0, atol=1e-14)
    for row in gradcheck(b, X, y, sample_weight=w):
        assert row["W"] < 1e-6 and row["b"] < 1e-6


def test_balanced_class_weights_give_every_class_the_same_total():
    idx = np.array([0] * 6 + [1] * 3 + [2] * 1)
    w = class_weights("balanced", idx, 3)
    totals = [w[idx == c].sum() for c in range(3)]
    assert totals == pytest.approx([10 / 3] * 3)
    with pytest.raises(dp.InvalidArgumentError, match="class_weight key 7"):
        class_weights({7: 1.0}, idx, 3)


def test_callbacks_see_every_hook_in_order():
    X, y = blobs(n=20)
    seen = []

    class Spy(dp.Callback):
        def on_train_begin(self, run):
            seen.append("begin")

        def on_epoch_begin(self, run, epoch):
            seen.append(f"e{epoch}")

        def on_batch_end(self, run, batch, logs):
            seen.append(f"b{batch}")

        def on_epoch_end(self, run, epoch, logs):
            seen.append(f"/e{epoch}")

        def on_train_end(self, run):
            seen.append("end")

    small_net().fit(X, y, epochs=2, batch_size=8, callbacks=[Spy()], verbose=0)
    assert seen == ["begin", "e0", "b0", "b1", "b2", "/e0", "e1", "b0", "b1", "b2", "/e1", "end"]


def test_a_callback_can_stop_the_run():
    X, y = blobs(n=20)

    class StopAfterTwo(dp.Callback):
        def on_epoch_end(self, run, epoch, logs):
            if epoch == 1:
                run.stop_training = True

    h = small_net().fit(X, y, epochs=10, callbacks=[StopAfterTwo()], verbose=0)
    assert len(h) == 2


def test_schedule_sets_the_learning_rate_each_step():
    X, y = blobs(n=40)
    lrs = []
    cb = dp.LambdaCallback(on_batch_end=lambda run, b, logs: lrs.append(run.lr))
    small_net().fit(X, y, epochs=2, batch_size=10, optimizer=dp.SGD(learning_rate=0.1),
                    schedule=dp.StepDecay(step_size=3, gamma=0.5), callbacks=[cb], verbose=0)
    assert lrs == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025])


def test_cosine_schedule_spans_the_run_by_default():
    X, y = blobs(n=40)
    h = small_net().fit(X, y, epochs=4, batch_size=10, schedule="cosine", verbose=0,
                        optimizer=dp.Adam(learning_rate=0.01))
    lr = h["lr"]
    assert lr[0] < 0.01 and lr == sorted(lr, reverse=True) and lr[-1] < 1e-3


def test_json_log_writes_one_line_per_epoch(tmp_path):
    X, y = blobs(n=30)
    path = tmp_path / "m.jsonl"
    small_net().fit(X, y, epochs=3, verbose=0, log_path=path)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3] and "loss" in rows[0]


def test_progress_bar_writes_to_stderr(capsys):
    X, y = blobs(n=30)
    small_net().fit(X, y, epochs=2, verbose=1)
    err = capsys.readouterr().err
    assert "epoch 1/2" in err and "epoch 2/2" in err and "loss" in err


def test_divergence_names_the_epoch_and_step():
    X, y = blobs(n=40)
    net = dp.Network([dp.Dense(4, 8, activation="relu"), dp.Dense(8, 1)], seed=0)
    target = X.sum(axis=1) * 1e3
    with pytest.raises(dp.DivergenceError, match=r"epoch \d+, step \d+"):
        net.fit(X, target, epochs=50, batch_size=4, optimizer=dp.SGD(learning_rate=10.0), verbose=0)


def test_warm_start_keeps_the_optimizer_state():
    X, y = blobs(n=40)
    opt = dp.Adam(learning_rate=0.01)
    net = small_net()
    net.fit(X, y, epochs=1, batch_size=10, optimizer=opt, verbose=0)
    assert opt.t == 4
    net.fit(X, y, epochs=1, batch_size=10, optimizer=opt, verbose=0)
    assert opt.t == 8


def test_evaluate_does_not_touch_the_weights():
    X, y = blobs()
    net = small_net(dropout=0.2)
    before = net.params.copy()
    net.evaluate(X, y, metrics=["accuracy", "top2"])
    np.testing.assert_array_equal(before, net.params)


def test_memmap_input_is_streamed_and_matches_in_memory_training(tmp_path, monkeypatch):
    from deltaprop import batches

    X, y = blobs(n=64)
    path = tmp_path / "X.npy"
    np.save(path, X.astype(np.float32))
    mm = np.load(path, mmap_mode="r")
    monkeypatch.setattr(batches, "STREAM_BYTES", 0)  # force the streaming path
    a = small_net(dropout=0.2)
    a.fit(mm, y, epochs=3, batch_size=10, verbose=0)
    monkeypatch.setattr(batches, "STREAM_BYTES", 1 << 40)
    b = small_net(dropout=0.2)
    b.fit(X.astype(np.float32), y, epochs=3, batch_size=10, verbose=0)
    np.testing.assert_array_equal(a.params, b.params)


def test_a_batch_whose_weights_are_all_zero_takes_no_step():
    X, y = blobs(n=6)
    w = np.array([0, 0, 1, 1, 1, 1.0])
    a = small_net(dtype="float64")
    h = a.fit(X, y, epochs=1, batch_size=2, shuffle=False, sample_weight=w, verbose=0,
              optimizer=dp.SGD(learning_rate=0.1))
    b = small_net(dtype="float64")
    b.fit(X[2:], y[2:], epochs=1, batch_size=2, shuffle=False, verbose=0, optimizer=dp.SGD(learning_rate=0.1))
    np.testing.assert_array_equal(a.params, b.params)
    assert np.isfinite(h["loss"][0])


def test_validation_weights_are_checked():
    X, y = blobs(n=12)
    with pytest.raises(dp.DataError, match="2 entries for 12 samples"):
        small_net().fit(X, y, epochs=1, verbose=0, validation_data=(X, y, np.ones(2)))
