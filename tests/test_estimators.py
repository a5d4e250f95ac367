"""Tests of deltaprop.estimators: scikit-learn's estimator checks, workflows, and what the estimators add.

Every fit is seeded (``random_state``) and runs in float64 unless a test is
about float32, so comparisons are exact or have stated tolerances. No test
measures time; the speed comparison is benchmarks/bench_estimators.py.
"""

import copy
import inspect
import pickle
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.compose import TransformedTargetRegressor
from sklearn.datasets import (
    load_breast_cancer,
    load_diabetes,
    load_digits,
    load_wine,
    make_blobs,
    make_multilabel_classification,
    make_regression,
)
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold, cross_val_score
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import deltaprop as dp
from deltaprop.errors import InvalidArgumentError, ModelFileError
from deltaprop.estimators import DeltapropClassifier, DeltapropRegressor, expected_failed_checks

#: no run of all epochs stops on the n_iter_no_change rule
ALL_EPOCHS = dict(tol=0.0, n_iter_no_change=10**6)


pytestmark = pytest.mark.usefixtures("one_blas_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(n_samples=120, centers=3, n_features=4, random_state=0)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def regression():
    X, y = make_regression(n_samples=100, n_features=5, n_targets=2, noise=0.1, random_state=0)
    return StandardScaler().fit_transform(X), y / y.std(axis=0)


# ------------------------------------------------------------ estimator checks
# The defaults, then variants that reach the other code paths: the hinge loss
# (decision_function), per-layer activations, class weights, dropout, another
# optimizer and schedule, Huber, early stopping. The few checks a variant cannot
# pass by its nature are listed, with the reason, by expected_failed_checks
# (strict: a listed check that passes fails the test).
CHECKED = [
    DeltapropClassifier(),
    DeltapropRegressor(),
    DeltapropClassifier(hidden_layer_sizes=(16, 16), activation=["tanh", "gelu"], loss="hinge", epochs=50,
                        learning_rate=0.01, class_weight="balanced", random_state=0),
    DeltapropClassifier(hidden_layer_sizes=(16,), epochs=50, learning_rate=0.01, dropout=0.1, early_stopping=True,
                        random_state=0),
    DeltapropRegressor(hidden_layer_sizes=(16,), loss={"name": "huber", "delta": 0.5},
                       optimizer={"name": "sgd", "momentum": 0.9}, schedule={"name": "cosine"}, epochs=100,
                       learning_rate=0.05, random_state=0),
    DeltapropRegressor(hidden_layer_sizes=(16,), activation="elu", loss="absolute_error", batch_size=16, epochs=50,
                       learning_rate=0.01, early_stopping=True, random_state=0),
]


def test_defaults_have_no_expected_failures():
    assert expected_failed_checks(DeltapropClassifier()) == {}
    assert expected_failed_checks(DeltapropRegressor()) == {}
    assert set(expected_failed_checks(CHECKED[3])) == {"check_sample_weight_equivalence_on_dense_data",
                                                       "check_sample_weight_equivalence_on_sparse_data"}


# xfail_strict (scikit-learn >= 1.8): an expected failure that passes is reported as a failure
_STRICT = {"xfail_strict": True} if "xfail_strict" in inspect.signature(parametrize_with_checks).parameters else {}


@parametrize_with_checks(CHECKED, expected_failed_checks=expected_failed_checks, **_STRICT)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# ---------------------------------------------------------------- workflows
def test_pipeline_and_clone(blobs):
    X, y = blobs
    pipe = make_pipeline(StandardScaler(), DeltapropClassifier(hidden_layer_sizes=(8,), epochs=40,
                                                               learning_rate=0.05, random_state=0))
    pipe.fit(X, y)
    assert pipe.score(X, y) > 0.95
    twin = clone(pipe)
    assert "network_" not in vars(twin[-1])
    assert twin.get_params()["deltapropclassifier__hidden_layer_sizes"] == (8,)
    twin.fit(X, y)  # same seed, same data: the same network
    assert_array_equal(twin[-1].network_.params, pipe[-1].network_.params)


def test_grid_search(blobs):
    X, y = blobs
    grid = GridSearchCV(
        DeltapropClassifier(epochs=20, random_state=0),
        {"hidden_layer_sizes": [(4,), (16,)], "optimizer": ["adam", {"name": "sgd", "momentum": 0.9}],
         "learning_rate": [0.01]},
        cv=3,
    )
    grid.fit(X, y)
    assert len(grid.cv_results_["params"]) == 4
    assert np.all(np.isfinite(grid.cv_results_["mean_test_score"]))
    assert grid.best_score_ > 0.9
    assert isinstance(grid.best_estimator_.network_, dp.Network)


def test_cross_val_score_regressor(regression):
    X, y = regression
    reg = DeltapropRegressor(hidden_layer_sizes=(16,), epochs=100, learning_rate=0.01, random_state=0)
    scores = cross_val_score(reg, X, y, cv=KFold(3, shuffle=True, random_state=0))
    assert scores.shape == (3,)
    assert scores.min() > 0.8  # an almost linear problem


# --------------------------------------------------------- targets and dtypes
def test_binary_string_labels(blobs):
    X, y = blobs
    labels = np.array(["no", "yes"])[(y > 0).astype(int)]
    clf = DeltapropClassifier(hidden_layer_sizes=(8,), epochs=40, learning_rate=0.01, random_state=0).fit(X, labels)
    assert_array_equal(clf.classes_, ["no", "yes"])
    assert clf.network_.n_out == 1 and clf.out_activation_ == "logistic"
    P = clf.predict_proba(X)
    assert P.shape == (120, 2)
    assert_allclose(P.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert_array_equal(clf.predict(X), clf.classes_[P.argmax(axis=1)])
    assert clf.score(X, labels) > 0.95


def test_multiclass_and_log_proba(blobs):
    X, y = blobs
    clf = DeltapropClassifier(hidden_layer_sizes=(8,), epochs=40, learning_rate=0.01, random_state=0).fit(X, y)
    assert clf.network_.layers[-1].activation.name == "softmax"
    assert clf.network_.loss.name == "categorical_crossentropy"
    assert_allclose(clf.predict_log_proba(X), np.log(clf.predict_proba(X)), rtol=1e-12, atol=1e-12)
    # Far from the training data softmax underflows to 0; the log-probability stays finite and exact.
    far = X[:3] * 1e4
    with np.errstate(divide="ignore"):
        assert np.any(np.log(clf.predict_proba(far)) == -np.inf)
    logp = clf.predict_log_proba(far)
    assert np.all(np.isfinite(logp))
    z = clf.network_.logits(far).astype(np.float64)
    shifted = z - z.max(axis=1, keepdims=True)
    assert_allclose(logp, shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True)), rtol=1e-12)


def test_multilabel():
    X, Y = make_multilabel_classification(n_samples=150, n_features=6, n_classes=4, random_state=0)
    X = StandardScaler().fit_transform(X)
    clf = DeltapropClassifier(hidden_layer_sizes=(32,), epochs=150, learning_rate=0.01, random_state=0).fit(X, Y)
    assert_array_equal(clf.classes_, np.arange(4))
    assert clf.network_.n_out == 4 and clf.network_.loss.name == "binary_crossentropy"
    pred = clf.predict(X)
    assert pred.shape == Y.shape and pred.dtype == Y.dtype
    P = clf.predict_proba(X)
    assert P.shape == (150, 4) and np.all((P >= 0) & (P <= 1))
    assert_array_equal(pred, (P > 0.5).astype(Y.dtype))
    assert clf.score(X, Y) > 0.6  # subset accuracy (every label right)
    with pytest.raises(InvalidArgumentError, match="hinge"):
        DeltapropClassifier(loss="hinge", epochs=1).fit(X, Y)


def test_hinge(blobs):
    X, y = blobs
    clf = DeltapropClassifier(hidden_layer_sizes=(8,), loss="hinge", epochs=40, learning_rate=0.05,
                              random_state=0).fit(X, y)
    assert not hasattr(clf, "predict_proba") and not hasattr(clf, "predict_log_proba")
    D = clf.decision_function(X)
    assert D.shape == (120, 3)
    assert_array_equal(clf.predict(X), D.argmax(axis=1))
    assert clf.score(X, y) > 0.95
    binary = DeltapropClassifier(hidden_layer_sizes=(8,), loss="hinge", epochs=40, learning_rate=0.05,
                                 random_state=0).fit(X, y > 0)
    d = binary.decision_function(X)
    assert d.shape == (120,)
    assert_array_equal(binary.predict(X), d > 0)
    assert not hasattr(DeltapropClassifier(), "decision_function")


@pytest.mark.parametrize("loss, name", [("squared_error", "mean_squared_error"),
                                        ("absolute_error", "mean_absolute_error"),
                                        ({"name": "huber", "delta": 0.5}, "huber"), ("mse", "mean_squared_error")])
def test_regression_losses_and_shapes(regression, loss, name):
    X, Y = regression
    reg = DeltapropRegressor(hidden_layer_sizes=(16,), loss=loss, epochs=150, learning_rate=0.01, random_state=0)
    reg.fit(X, Y)
    assert reg.network_.loss.name == name and reg.n_outputs_ == 2
    assert reg.predict(X).shape == (100, 2)
    assert reg.score(X, Y) > 0.9
    single = clone(reg).fit(X, Y[:, 0])
    assert single.predict(X).shape == (100,)
    column = clone(reg).fit(X, Y[:, :1])
    assert column.predict(X).shape == (100, 1)  # predictions have the shape of the y fitted on
    assert_array_equal(column.predict(X)[:, 0], single.predict(X))
    if isinstance(loss, dict):
        assert loss == {"name": "huber", "delta": 0.5}  # the parameter is not changed
        assert reg.network_.loss.delta == 0.5


def test_float32_stays_float32(blobs, regression):
    X, y = blobs
    clf = DeltapropClassifier(hidden_layer_sizes=(8,), epochs=5, random_state=0).fit(X.astype(np.float32), y)
    assert clf.network_.dtype == np.float32
    assert clf.predict_proba(X.astype(np.float32)).dtype == np.float32
    assert clf.predict_proba(X).dtype == np.float32  # the model's dtype, whatever the input
    Xr, Yr = regression
    reg = DeltapropRegressor(hidden_layer_sizes=(8,), epochs=5, random_state=0).fit(Xr.astype(np.float32), Yr)
    assert reg.predict(Xr.astype(np.float32)).dtype == np.float32
    reg64 = DeltapropRegressor(hidden_layer_sizes=(8,), epochs=5, random_state=0).fit(Xr.astype(np.int64), Yr)
    assert reg64.network_.dtype == np.float64
    forced = DeltapropRegressor(hidden_layer_sizes=(8,), epochs=5, dtype="float32", random_state=0).fit(Xr, Yr)
    assert forced.predict(Xr).dtype == np.float32


def test_architecture_parameters(blobs):
    X, y = blobs
    clf = DeltapropClassifier(hidden_layer_sizes=(6, 5, 4), activation=["tanh", {"name": "leaky_relu", "alpha": 0.2},
                                                                         "softplus"],
                              dropout=[0.1, 0.0, 0.3], epochs=2, random_state=0).fit(X, y)
    net = clf.network_
    assert [(layer.n_in, layer.n_out) for layer in net.layers] == [(4, 6), (6, 5), (5, 4), (4, 3)]
    assert [layer.activation.name for layer in net.layers] == ["tanh", "leaky_relu", "softplus", "softmax"]
    assert net.layers[1].activation.alpha == 0.2
    assert [layer.dropout for layer in net.layers] == [0.1, 0.0, 0.3, 0.0]
    assert clf.n_layers_ == 5
    assert [c.shape for c in clf.coefs_] == [(4, 6), (6, 5), (5, 4), (4, 3)]
    assert np.shares_memory(clf.coefs_[0], net.params)
    linear = DeltapropClassifier(hidden_layer_sizes=(), epochs=2, random_state=0).fit(X, y)
    assert len(linear.network_.layers) == 1
    # dropout is off at prediction time: predictions are deterministic
    assert_array_equal(clf.predict_proba(X), clf.predict_proba(X))
    no_drop = DeltapropClassifier(hidden_layer_sizes=(6, 5, 4), activation=clf.activation, epochs=2,
                                  random_state=0).fit(X, y)
    assert not np.array_equal(no_drop.network_.params, net.params)


# --------------------------------------------------------------- alpha, weights
@pytest.mark.skipif("sample_weight" not in inspect.signature(MLPClassifier.partial_fit).parameters,
                    reason="scikit-learn's MLP takes sample_weight from version 1.7")
def test_alpha_and_sample_weight_match_sklearn_sgd_step():
    """One epoch of plain SGD in mini-batches (the last one short) with sample weights and alpha,
    against scikit-learn's MLPClassifier from the same weights: the L2 term is α W / Σ_{i∈B} w_i."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(7, 3))
    y = np.array([0, 1, 2, 0, 1, 2, 1])
    w = np.array([1.0, 2.0, 0.5, 3.0, 1.0, 0.25, 2.0])
    common = dict(hidden_layer_sizes=(4,), activation="tanh", alpha=0.3, batch_size=3, shuffle=False)
    ours = DeltapropClassifier(optimizer="sgd", learning_rate=0.1, epochs=1, random_state=0, **common).fit(X, y)
    theirs = MLPClassifier(solver="sgd", momentum=0.0, learning_rate_init=0.1, random_state=0, **common)
    theirs.partial_fit(X, y, classes=[0, 1, 2])
    theirs.coefs_ = [layer.W.T.copy() for layer in ours.network_.layers]
    theirs.intercepts_ = [layer.b.copy() for layer in ours.network_.layers]
    ours.partial_fit(X, y, sample_weight=w)
    theirs.partial_fit(X, y, sample_weight=w)
    for layer, W, b in zip(ours.network_.layers, theirs.coefs_, theirs.intercepts_, strict=True):
        assert_allclose(layer.W.T, W, rtol=1e-12, atol=1e-14)
        assert_allclose(layer.b, b, rtol=1e-12, atol=1e-14)


def test_class_weight_is_sample_weight(blobs):
    X, y = blobs
    base = dict(hidden_layer_sizes=(8,), epochs=5, random_state=0)
    by_class = DeltapropClassifier(class_weight={0: 3.0, 2: 0.5}, **base).fit(X, y)
    by_sample = DeltapropClassifier(**base).fit(X, y, sample_weight=np.array([3.0, 1.0, 0.5])[y])
    assert_array_equal(by_class.network_.params, by_sample.network_.params)
    # "balanced": n / (k n_c), counted with the sample weights
    sw = np.where(np.arange(120) % 2 == 0, 1.0, 2.0)
    balanced = DeltapropClassifier(class_weight="balanced", **base).fit(X[:100], y[:100], sample_weight=sw[:100])
    n_c = np.bincount(y[:100], weights=sw[:100])
    table = n_c.sum() / (3 * n_c)
    explicit = DeltapropClassifier(**base).fit(X[:100], y[:100], sample_weight=sw[:100] * table[y[:100]])
    assert_allclose(balanced.network_.params, explicit.network_.params, rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="label 7"):
        DeltapropClassifier(class_weight={7: 1.0}, epochs=1).fit(X, y)


def test_class_weight_is_deltaprops_rule(blobs):
    """The estimator's class weights are deltaprop.training.class_weights (balanced: weighted by sample_weight)."""
    X, y = blobs
    X, y = X[:100], y[:100]
    labels = np.array(["cat", "dog", "eel"])[y]
    sw = np.where(np.arange(100) % 3 == 0, 0.5, 2.0)
    base = dict(hidden_layer_sizes=(8,), epochs=5, batch_size=16, random_state=0)
    for class_weight, sample_weight in [("balanced", None), ("balanced", sw), ({"dog": 3.0, "eel": 0.25}, sw)]:
        ours = DeltapropClassifier(class_weight=class_weight, **base).fit(X, labels, sample_weight=sample_weight)
        cw = dp.training.class_weights(class_weight, y, 3, sample_weight=sample_weight, labels=ours.classes_)
        explicit = DeltapropClassifier(**base).fit(X, labels, sample_weight=cw if sample_weight is None
                                                   else sample_weight * cw)
        assert_array_equal(ours.network_.params, explicit.network_.params)


def test_zero_weight_is_removal(blobs):
    X, y = blobs
    w = np.ones(120)
    w[::3] = 0.0
    kw = dict(hidden_layer_sizes=(8,), epochs=5, batch_size=16, shuffle=False, random_state=0)
    weighted = DeltapropClassifier(**kw).fit(X, y, sample_weight=w)
    removed = DeltapropClassifier(**kw).fit(X[w > 0], y[w > 0])
    assert_array_equal(weighted.network_.params, removed.network_.params)
    with pytest.raises(ValueError, match="class"):
        DeltapropClassifier(epochs=1).fit(X, y, sample_weight=(y == 1).astype(float))


# ------------------------------------------------ partial_fit, warm start, state
@pytest.mark.parametrize("optimizer, schedule", [("adam", None),
                                                 ({"name": "sgd", "momentum": 0.9}, {"name": "step", "step_size": 3,
                                                                                    "gamma": 0.5})])
def test_partial_fit_continues_like_fit(blobs, optimizer, schedule):
    """Optimizer state, schedule clock and random stream carry over: E partial_fit calls are one E-epoch fit."""
    X, y = blobs
    kw = dict(hidden_layer_sizes=(8,), optimizer=optimizer, schedule=schedule, learning_rate=0.01, batch_size=32,
              dropout=0.2, random_state=0, **ALL_EPOCHS)
    full = DeltapropClassifier(epochs=4, **kw).fit(X, y)
    inc = DeltapropClassifier(**kw)
    for _ in range(4):
        inc.partial_fit(X, y, classes=[0, 1, 2])
    assert_array_equal(inc.network_.params, full.network_.params)
    assert inc.n_iter_ == full.n_iter_ == 4
    assert_allclose(inc.loss_curve_, full.loss_curve_, rtol=1e-14)
    warm = DeltapropClassifier(epochs=3, warm_start=True, **kw).fit(X, y)
    warm.set_params(epochs=1).fit(X, y)
    assert_array_equal(warm.network_.params, full.network_.params)
    assert len(warm.loss_curve_) == 4


def test_partial_fit_argument_errors(blobs):
    X, y = blobs
    with pytest.raises(ValueError, match="classes must be given"):
        DeltapropClassifier().partial_fit(X, y)
    clf = DeltapropClassifier(hidden_layer_sizes=(4,), random_state=0).partial_fit(X[:10], y[:10], classes=[0, 1, 2, 3])
    assert_array_equal(clf.classes_, [0, 1, 2, 3])  # a class seen in no batch yet is kept
    with pytest.raises(ValueError, match="not in classes_"):
        clf.partial_fit(X, y + 5)
    with pytest.raises(ValueError, match="differs"):
        clf.partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="changed"):
        clf.set_params(hidden_layer_sizes=(5,)).partial_fit(X, y)
    with pytest.raises(ValueError, match="4 features"):
        clf.set_params(hidden_layer_sizes=(4,)).partial_fit(X[:, :3], y)


@pytest.mark.parametrize("schedule", [{"name": "cosine"}, dp.CosineDecay(min_lr=1e-4),
                                      {"name": "warmup", "warmup_steps": 2, "after": {"name": "cosine"}}])
def test_partial_fit_refuses_a_schedule_sized_by_the_run(blobs, schedule):
    """partial_fit cannot know how long its run is; fit can, and uses the schedule."""
    X, y = blobs
    clf = DeltapropClassifier(hidden_layer_sizes=(4,), schedule=schedule, random_state=0)
    with pytest.raises(InvalidArgumentError, match=r"partial_fit cannot know.*total_steps"):
        clf.partial_fit(X, y, classes=[0, 1, 2])
    assert not hasattr(clf, "network_")  # refused before anything was built
    clf.set_params(epochs=3).fit(X, y)
    assert clf.n_iter_ == 3
    with pytest.raises(InvalidArgumentError, match="partial_fit cannot know"):
        clf.partial_fit(X, y)  # nor after a fit
    sized = {"name": "cosine", "total_steps": 20}
    clf.set_params(schedule=sized).partial_fit(X, y)  # with its length given, it continues
    assert clf.n_iter_ == 4


def test_optimizer_object_is_copied_not_changed(blobs):
    X, y = blobs
    sgd = dp.SGD(learning_rate=0.05, momentum=0.9, nesterov=True)
    clf = DeltapropClassifier(hidden_layer_sizes=(8,), optimizer=sgd, epochs=3, random_state=0).fit(X, y)
    assert sgd.t == 0 and sgd.state == {} and sgd.learning_rate == 0.05
    assert clf._optimizer is not sgd and clf._optimizer.nesterov and clf._optimizer.t > 0
    same = DeltapropClassifier(hidden_layer_sizes=(8,), optimizer={"name": "sgd", "learning_rate": 0.05,
                                                                   "momentum": 0.9, "nesterov": True},
                               epochs=3, random_state=0).fit(X, y)
    assert_array_equal(same.network_.params, clf.network_.params)
    faster = DeltapropClassifier(hidden_layer_sizes=(8,), optimizer=sgd, learning_rate=0.1, epochs=3,
                                 random_state=0).fit(X, y)
    assert faster._optimizer.learning_rate == 0.1  # learning_rate overrides the optimizer's


def test_warm_start_keeps_adam_state_and_new_rate(blobs):
    X, y = blobs
    clf = DeltapropClassifier(hidden_layer_sizes=(8,), epochs=2, warm_start=True, batch_size=40, random_state=0)
    clf.fit(X, y)
    opt = clf._optimizer
    assert opt.t == 6  # 2 epochs of 3 batches
    clf.set_params(learning_rate=0.05).fit(X, y)
    assert clf._optimizer is opt and opt.t == 12 and opt.learning_rate == 0.05
    clf.set_params(optimizer="rmsprop").fit(X, y)  # another optimizer starts fresh
    assert clf._optimizer is not opt and clf._optimizer.name == "rmsprop"


# ----------------------------------------------------- stopping and the curves
def test_n_iter_no_change_on_training_loss(blobs):
    X, y = blobs
    # tol larger than any improvement: every epoch after the first counts as no improvement,
    # and the run stops when the count exceeds n_iter_no_change (scikit-learn's rule)
    clf = DeltapropClassifier(hidden_layer_sizes=(8,), epochs=50, tol=10.0, n_iter_no_change=3, random_state=0)
    clf.fit(X, y)
    assert clf.n_iter_ == 5 and len(clf.loss_curve_) == 5 and clf.stopped_early_
    assert clf.best_loss_ == min(clf.loss_curve_)
    assert clf.validation_scores_ is None and clf.validation_loss_curve_ is None
    full = DeltapropClassifier(hidden_layer_sizes=(8,), epochs=7, random_state=0, **ALL_EPOCHS).fit(X, y)
    assert full.n_iter_ == 7 and not full.stopped_early_


def test_early_stopping_curves_and_best_weights(blobs):
    X, y = blobs
    rng = np.random.default_rng(0)
    noisy = np.where(rng.random(120) < 0.3, rng.integers(0, 3, 120), y)
    clf = DeltapropClassifier(hidden_layer_sizes=(64,), epochs=300, learning_rate=0.01, early_stopping=True,
                              validation_fraction=0.25, n_iter_no_change=10, random_state=0).fit(X, noisy)
    n = clf.n_iter_
    assert clf.stopped_early_ and n < 300
    assert len(clf.loss_curve_) == len(clf.validation_scores_) == len(clf.validation_loss_curve_) == n
    assert clf.best_loss_ is None
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    assert int(np.argmax(clf.validation_scores_)) < n - 10  # stopped n_iter_no_change epochs after the best
    assert np.all(np.isfinite(clf.validation_loss_curve_))


def test_early_stopping_restores_best_params(blobs):
    X, y = blobs
    kw = dict(hidden_layer_sizes=(16,), learning_rate=0.01, early_stopping=True, random_state=0)
    stopped = DeltapropClassifier(epochs=200, tol=1.0, n_iter_no_change=2, **kw).fit(X, y)
    # with tol=1 no epoch after the first "improves", so training stops after 4 epochs;
    # the best score decides the weights kept (ties go to the lower validation loss)
    assert stopped.n_iter_ == 4
    scores, losses = np.array(stopped.validation_scores_), np.array(stopped.validation_loss_curve_)
    best = max(range(4), key=lambda i: (scores[i], -losses[i]))
    replay = DeltapropClassifier(epochs=best + 1, **kw, **ALL_EPOCHS).fit(X, y)
    assert_array_equal(stopped.network_.params, replay.network_.params)


def test_partial_fit_with_early_stopping(blobs):
    """scikit-learn refuses this combination (#25693); here the rule runs across calls."""
    X, y = blobs
    clf = DeltapropClassifier(hidden_layer_sizes=(8,), learning_rate=0.01, early_stopping=True, tol=1.0,
                              n_iter_no_change=2, random_state=0)
    calls = 0
    while not getattr(clf, "stopped_early_", False):
        clf.partial_fit(X, y, classes=[0, 1, 2])
        calls += 1
        assert calls < 20
    assert calls == 4 and clf.n_iter_ == 4
    assert len(clf.validation_scores_) == len(clf.validation_loss_curve_) == 4
    kept = clf.network_.params.copy()
    clf.partial_fit(X, y)  # stopped: nothing changes until fit is called
    assert_array_equal(clf.network_.params, kept)
    assert clf.n_iter_ == 4
    clf.fit(X, y)
    assert clf.n_iter_ > 0 and not np.array_equal(clf.network_.params, kept)


def test_verbose_prints_epochs(blobs, capsys):
    X, y = blobs
    DeltapropClassifier(hidden_layer_sizes=(4,), epochs=2, verbose=1, random_state=0).fit(X, y)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[0].startswith("Epoch 1, loss = ")


def test_adaptive_schedule_divides_rate(blobs):
    X, y = blobs
    clf = DeltapropClassifier(hidden_layer_sizes=(4,), epochs=12, learning_rate=0.01, schedule="adaptive", tol=10.0,
                              n_iter_no_change=1, random_state=0).fit(X, y)
    # no epoch improves by tol: the rule fires after epochs 3, 5, 7, 9, 11, dividing the rate by 5 each time
    assert clf._optimizer.learning_rate == pytest.approx(0.01 / 5**5, rel=1e-12)
    assert clf.n_iter_ == 12


# -------------------------------------------------------------- files, pickle
def test_save_load_classifier(tmp_path, blobs):
    X, y = blobs
    labels = np.array(["cat", "dog", "eel"])[y]
    clf = DeltapropClassifier(hidden_layer_sizes=(8,), epochs=10, early_stopping=True, random_state=0,
                              dtype="float32", class_weight={"cat": 2.0}, activation=("tanh",),
                              optimizer=dp.SGD(momentum=0.5)).fit(X, labels)
    path = tmp_path / "clf.safetensors"
    clf.save(path)
    back = DeltapropClassifier.load(path)
    assert_array_equal(back.classes_, clf.classes_)
    assert back.classes_.dtype == clf.classes_.dtype
    assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
    assert_array_equal(back.predict(X), clf.predict(X))
    params = clf.get_params()
    params["optimizer"] = clf.optimizer.get_config()  # an optimizer object is stored as its config
    assert back.get_params() == params
    assert isinstance(back.get_params()["activation"], tuple)
    assert back.validation_loss_curve_ == pytest.approx(clf.validation_loss_curve_, rel=0, abs=0)
    assert back.n_features_in_ == 4 and back.network_.dtype == np.float32
    net = dp.load(path)  # a plain deltaprop model file
    assert net.classes == ["cat", "dog", "eel"]
    assert_array_equal(net.predict(X), clf.predict_proba(X))
    back.partial_fit(X, labels)  # continues training from the file
    with pytest.raises(ModelFileError, match="DeltapropClassifier"):
        DeltapropRegressor.load(path)
    plain = tmp_path / "plain.safetensors"
    dp.save(clf.network_, plain)
    with pytest.raises(ModelFileError, match="not saved by a deltaprop estimator"):
        DeltapropClassifier.load(plain)


def test_save_load_regressor_and_multilabel(tmp_path, regression):
    X, Y = regression
    reg = DeltapropRegressor(hidden_layer_sizes=(8,), loss="huber", epochs=10, random_state=0).fit(X, Y)
    reg.save(tmp_path / "reg.safetensors")
    back = DeltapropRegressor.load(tmp_path / "reg.safetensors")
    assert_array_equal(back.predict(X), reg.predict(X))
    assert back.loss_curve_ == reg.loss_curve_
    Xm, Ym = make_multilabel_classification(n_samples=40, n_features=5, n_classes=3, random_state=0)
    ml = DeltapropClassifier(hidden_layer_sizes=(8,), epochs=5, random_state=0).fit(Xm, Ym)
    ml.save(tmp_path / "ml.safetensors")
    back = DeltapropClassifier.load(tmp_path / "ml.safetensors")
    assert_array_equal(back.predict(Xm), ml.predict(Xm))
    assert back.predict(Xm).dtype == Ym.dtype


def test_save_load_bool_labels_and_feature_names(tmp_path, blobs):
    pd = pytest.importorskip("pandas")
    X, y = blobs
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    clf = DeltapropClassifier(hidden_layer_sizes=(4,), epochs=3, random_state=0).fit(frame, y > 0)
    clf.save(tmp_path / "m.safetensors")
    back = DeltapropClassifier.load(tmp_path / "m.safetensors")
    assert back.classes_.dtype == np.bool_
    assert_array_equal(back.feature_names_in_, ["a", "b", "c", "d"])
    assert_array_equal(back.predict(frame), clf.predict(frame))


def test_pickle_keeps_the_parameter_store(blobs):
    X, y = blobs
    clf = DeltapropClassifier(hidden_layer_sizes=(8,), epochs=3, random_state=0).fit(X, y)
    for twin in (copy.deepcopy(clf), pickle.loads(pickle.dumps(clf))):
        assert_array_equal(twin.predict_proba(X), clf.predict_proba(X))
        for layer in twin.network_.layers:
            assert np.shares_memory(layer.W, twin.network_.params)
            assert np.shares_memory(layer.b, twin.network_.params)
        assert np.shares_memory(twin.coefs_[0], twin.network_.params)
        assert not np.shares_memory(twin.network_.params, clf.network_.params)
    twin.partial_fit(X, y)
    clf.partial_fit(X, y)  # the same state, the same step
    assert_array_equal(twin.network_.params, clf.network_.params)


def test_unfitted_and_parameter_errors(blobs):
    X, y = blobs
    with pytest.raises(NotFittedError):
        DeltapropClassifier().predict(X)
    cases = [
        (dict(learning_rate="adaptive"), "schedule='adaptive'"),
        (dict(activation=["relu", "tanh"]), "activation has 2 entries for 1 hidden layer"),
        (dict(loss="squared_error"), "DeltapropRegressor"),
        (dict(optimizer="adamw"), "alpha=0"),
        (dict(optimizer={"name": "adam", "weight_decay": 0.1}), "alpha"),
        (dict(dropout=1.0), "dropout"),
        (dict(epochs=0), "epochs must be a positive integer, got 0"),
        (dict(batch_size="big"), "'big'"),
        (dict(validation_fraction=1.5), "validation_fraction"),
        (dict(hidden_layer_sizes=(4, -1)), "-1"),
    ]
    for params, message in cases:
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            DeltapropClassifier(**params).fit(X, y)
    with pytest.raises(ValueError, match="DeltapropClassifier"):
        DeltapropRegressor(loss="hinge").fit(X, y.astype(float))
    adamw = DeltapropClassifier(optimizer="adamw", alpha=0.0, hidden_layer_sizes=(4,), epochs=1).fit(X, y)
    assert adamw._optimizer.weight_decay == 0.01  # AdamW's own decoupled decay is kept


# -------------------------------------------------- scores against scikit-learn
def _cv_scores(estimator, X, y, task):
    cv = (StratifiedKFold if task == "classification" else KFold)(5, shuffle=True, random_state=0)
    return cross_val_score(estimator, X, y, cv=cv)


@pytest.mark.parametrize("name, epochs", [("digits", 20), ("breast_cancer", 40), ("wine", 60), ("diabetes", 40)])
def test_cv_score_at_least_sklearn_within_one_std(name, epochs):
    """Same hidden sizes, Adam, learning rate, batch size and epochs as scikit-learn's MLP (a short
    version of benchmarks/bench_estimators.py, without timing)."""
    loader, task = {"digits": (load_digits, "classification"), "breast_cancer": (load_breast_cancer, "classification"),
                    "wine": (load_wine, "classification"), "diabetes": (load_diabetes, "regression")}[name]
    X, y = loader(return_X_y=True)
    common = dict(hidden_layer_sizes=(100,), batch_size=200, alpha=1e-4, random_state=0, shuffle=True)
    ours = dict(common, optimizer="adam", learning_rate=1e-3, epochs=epochs, **ALL_EPOCHS)
    theirs = dict(common, solver="adam", learning_rate_init=1e-3, max_iter=epochs, tol=0.0,
                  n_iter_no_change=10**6)
    if task == "classification":
        dp_est = make_pipeline(StandardScaler(), DeltapropClassifier(**ours))
        sk_est = make_pipeline(StandardScaler(), MLPClassifier(**theirs))
    else:
        dp_est = TransformedTargetRegressor(make_pipeline(StandardScaler(), DeltapropRegressor(**ours)),
                                           transformer=StandardScaler())
        sk_est = TransformedTargetRegressor(make_pipeline(StandardScaler(), MLPRegressor(**theirs)),
                                           transformer=StandardScaler())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.filterwarnings("ignore", message="Got `batch_size`")
        sk = _cv_scores(sk_est, X, y, task)
    ours_scores = _cv_scores(dp_est, X, y, task)
    assert ours_scores.mean() >= sk.mean() - sk.std(), (ours_scores, sk)
