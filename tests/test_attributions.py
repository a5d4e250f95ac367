"""Input attributions (deltaprop.attributions): input gradients, gradient × input, integrated gradients.

1. ``input_gradients`` against float64 central differences with respect to
   ``x`` (step 1e-6; relative normwise error below ``FD_TOL`` = 1e-7,
   measured at most about 1e-8) for every output activation × loss pair of
   ``conftest.OUTPUT_LOSS_CASES``, every hidden activation, both seeds (the
   loss of each row, an output ``a_k`` or its logit ``z_k``) and every layer
   kind (Dense with and without bias, Dropout, Activation, LayerNorm,
   BatchNorm on non-trivial running statistics, nested Residual blocks, an
   Embedding first layer), kinks kept at least ``KINK_MARGIN`` away.
2. The same gradients against ``autograd`` differentiating the independent
   forward pass of ``tests/_layer_oracle.py`` (through a prepended identity
   layer, whose bias gradient for one row is that row's input gradient).
3. Integrated gradients satisfy completeness within the quadrature error:
   the trapezoid rule's gap falls about 16-fold each time the steps grow
   4-fold (16, 64, 256), the one-sided Riemann rules' about 4-fold, and
   Gauss–Legendre's is at rounding level.
4. Per original column (TabularModel, estimators): numeric values with their
   missing indicators, one-hot blocks and embedding dimensions summed back to
   their column give the same row totals as the per-input attributions.
5. ``deltaprop explain`` end to end on a small CSV.
"""

import csv

import numpy as np
import pytest

import deltaprop as dp
from deltaprop import attributions as A
from deltaprop.blocks import Residual
from deltaprop.embedding import Embedding
from deltaprop.errors import DataError, InvalidArgumentError
from deltaprop.norms import BatchNorm, LayerNorm
from deltaprop.sparse import OneHotMatrix
from deltaprop.tabular import DataContract, TabularModel, read_table
from deltaprop.tabular.model import feature_groups

from conftest import ACTIVATIONS, KINK_MARGIN, OUTPUT_LOSS_CASES, kink_distance, make_targets

pytestmark = pytest.mark.usefixtures("one_blas_thread")

#: relative normwise error of input gradients against central differences (float64, h = 1e-6): measured ≤ 1e-8
FD_TOL = 1e-7
H = 1e-6


# ----------------------------------------------------------------------------- helpers
def _fd(f, X, h=H):
    """Central differences of the scalar ``f(X)`` with respect to every entry of ``X``."""
    G = np.empty_like(X)
    for idx in np.ndindex(X.shape):
        Xp, Xm = X.copy(), X.copy()
        Xp[idx] += h
        Xm[idx] -= h
        G[idx] = (f(Xp) - f(Xm)) / (2 * h)
    return G


def _rel(g, ref):
    return float(np.linalg.norm(g - ref) / max(np.linalg.norm(ref), 1e-300))


def _loss_sum(net, y):
    Y = net.prepare_targets(y)
    return lambda X: float(net.loss.value(net.predict(X), Y).sum())


def _output_sum(net, k, logits=False):
    return lambda X: float((net.logits(X) if logits else net.predict(X))[:, k].sum())


def _perturb(net, rng):
    """Parameters off their initial values, running statistics off 0 and 1."""
    net.params += rng.normal(0.0, 0.2, size=net.n_params)
    for name, view in net.tensors().items():
        if name.endswith("running_mean"):
            view[...] = rng.normal(0.0, 0.5, size=view.shape)
        elif name.endswith("running_var"):
            view[...] = rng.uniform(0.5, 2.0, size=view.shape)


def _every_kind(n_in=5, n_out=3, output="softmax"):
    return dp.Network([
        dp.Dense(n_in, 6, activation="tanh", bias=False), BatchNorm(), dp.Activation("gelu"), dp.Dropout(0.3),
        Residual([LayerNorm(), dp.Dense(6, 6, activation="sigmoid", dropout=0.2),
                  Residual([dp.Dense(6, 6, activation="softplus"), dp.Activation("tanh")]), dp.Dense(6, 6)]),
        dp.Dense(6, n_out, activation=output)], dtype="float64", seed=3)


# ----------------------------------------------------------------------------- 1. finite differences
@pytest.mark.parametrize("output, loss, n_out", OUTPUT_LOSS_CASES)
def test_loss_input_gradients_match_finite_differences_for_every_output_and_loss(output, loss, n_out):
    rng = np.random.default_rng(0)
    net = dp.Network([dp.Dense(4, 5, activation="tanh"), dp.Dense(5, n_out, activation=output)], loss=loss,
                     dtype="float64", seed=1)
    _perturb(net, rng)
    X = rng.normal(size=(6, 4))
    y = make_targets(net, X, rng)
    assert kink_distance(net, X, y) > KINK_MARGIN
    g = net.input_gradients(X, y=y)
    assert g.shape == X.shape and g.dtype == np.float64
    assert _rel(g, _fd(_loss_sum(net, y), X)) < FD_TOL


@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("logits", [False, True])
def test_output_input_gradients_match_finite_differences_for_every_hidden_activation(act, logits):
    rng = np.random.default_rng(1)
    net = dp.Network([dp.Dense(4, 6, activation=act), dp.Dense(6, 3, activation="softmax")], dtype="float64",
                     seed=2)
    _perturb(net, rng)
    X = rng.normal(size=(5, 4))
    if act in ("relu", "leaky_relu", "elu"):
        assert kink_distance(net, X, np.zeros(5, dtype=int)) > KINK_MARGIN
    for k in range(3):
        g = net.input_gradients(X, output=k, logits=logits)
        assert _rel(g, _fd(_output_sum(net, k, logits), X)) < FD_TOL


@pytest.mark.parametrize("loss", ["categorical_crossentropy", "hinge", "mean_absolute_error", "huber"])
def test_every_layer_kind_in_prediction_mode(loss):
    rng = np.random.default_rng(2)
    net = _every_kind(output="softmax" if loss == "categorical_crossentropy" else "identity")
    net.loss = dp.losses.get(loss)
    _perturb(net, rng)
    X = rng.normal(size=(6, 5))
    y = rng.integers(0, 3, size=6) if loss in ("categorical_crossentropy", "hinge") else rng.normal(size=(6, 3))
    grads, buffers, params = net.grads.copy(), net.buffers.copy(), net.params.copy()
    assert _rel(net.input_gradients(X, y=y), _fd(_loss_sum(net, y), X)) < FD_TOL
    g = net.input_gradients(X, output=np.array([0, 1, 2, 0, 1, 2]))
    ref = np.vstack([_fd(lambda Z, i=i: float(net.predict(Z)[i, i % 3]), X)[i] for i in range(6)])
    assert _rel(g, ref) < FD_TOL
    # the training state is kept: gradients, running statistics and parameters (dropout off, statistics frozen)
    np.testing.assert_array_equal(net.grads, grads)
    np.testing.assert_array_equal(net.buffers, buffers)
    np.testing.assert_array_equal(net.params, params)


def test_batch_size_does_not_change_the_gradients():
    rng = np.random.default_rng(3)
    net = _every_kind()
    _perturb(net, rng)
    X = rng.normal(size=(11, 5))
    y = rng.integers(0, 3, size=11)
    whole = net.input_gradients(X, y=y)
    np.testing.assert_allclose(net.input_gradients(X, y=y, batch_size=3), whole, rtol=1e-13, atol=1e-15)


def test_sample_weight_scales_each_rows_loss_and_the_mean_loss_divides_by_m():
    rng = np.random.default_rng(4)
    net = dp.Network.from_sizes([3, 4, 2], activation="tanh", loss="binary_crossentropy", dtype="float64", seed=0)
    X, y = rng.normal(size=(5, 3)), rng.integers(0, 2, size=(5, 2)).astype(float)
    w = rng.uniform(0.5, 2.0, size=5)
    g = net.input_gradients(X, y=y)
    np.testing.assert_allclose(net.input_gradients(X, y=y, sample_weight=w), g * w[:, None], rtol=1e-14)
    mean_loss = lambda Z: float(net.loss.value(net.predict(Z), net.prepare_targets(y)).mean())  # noqa: E731
    assert _rel(g / len(X), _fd(mean_loss, X)) < FD_TOL


def test_an_embedding_first_layer_gives_nan_at_codes_and_exact_gradients_elsewhere():
    rng = np.random.default_rng(5)
    net = dp.Network([Embedding([(1, 4, 3), (3, 3, 2)], n_in=4), dp.Dense(7, 5, activation="tanh"),
                      dp.Dense(5, 2, activation="softmax")], dtype="float64", seed=0)
    X = np.column_stack([rng.normal(size=6), rng.integers(0, 4, 6), rng.normal(size=6), rng.integers(0, 3, 6)])
    y = rng.integers(0, 2, size=6)
    g = net.input_gradients(X, y=y)
    assert np.isnan(g[:, [1, 3]]).all() and np.isfinite(g[:, [0, 2]]).all()

    def f(numeric):
        Z = X.copy()
        Z[:, [0, 2]] = numeric
        return _loss_sum(net, y)(Z)

    assert _rel(g[:, [0, 2]], _fd(f, X[:, [0, 2]].copy())) < FD_TOL


@pytest.mark.parametrize("kind", ["onehot", "scipy"])
def test_sparse_inputs_give_the_dense_inputs_gradients(kind):
    rng = np.random.default_rng(6)
    dense, codes = rng.normal(size=(7, 2)), rng.integers(0, 3, size=(7, 2))
    M = OneHotMatrix(dense, codes, [3, 3])
    net = dp.Network.from_sizes([8, 5, 3], activation="tanh", loss="categorical_crossentropy", dtype="float64",
                                seed=0)
    y = rng.integers(0, 3, size=7)
    X = M if kind == "onehot" else pytest.importorskip("scipy.sparse").csr_matrix(M.toarray())
    g = net.input_gradients(X, y=y)
    assert g.shape == (7, 8)  # every column, the zeros of the one-hot blocks included
    np.testing.assert_allclose(g, net.input_gradients(M.toarray(), y=y), rtol=1e-12, atol=1e-15)
    att = A.integrated_gradients(net, X, output=1, steps=32)
    np.testing.assert_allclose(att.values, A.integrated_gradients(net, M.toarray(), output=1, steps=32).values,
                               rtol=1e-10, atol=1e-14)


def test_float32_networks_give_float32_gradients_close_to_float64():
    rng = np.random.default_rng(7)
    net = dp.Network.from_sizes([4, 6, 3], activation="tanh", loss="categorical_crossentropy", seed=0)
    X, y = rng.normal(size=(5, 4)), rng.integers(0, 3, 5)
    g32 = net.input_gradients(X, y=y)
    assert g32.dtype == np.float32
    np.testing.assert_allclose(g32, net.astype("float64").input_gradients(X, y=y), rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("kwargs, match", [
    ({}, "exactly one of y"),
    ({"y": [0, 1], "output": 0}, "got both"),
    ({"y": [0, 1], "logits": True}, "logits=True goes with output"),
    ({"output": 0, "sample_weight": [1, 1]}, "sample_weight goes with y"),
    ({"output": 3}, "out of range"),
    ({"output": True}, "output must be an output index"),
    ({"output": [0, 1, 2]}, "one per row"),
])
def test_bad_arguments_are_refused_with_what_was_given(kwargs, match):
    net = dp.Network.from_sizes([2, 3], loss="categorical_crossentropy", dtype="float64", seed=0)
    with pytest.raises(InvalidArgumentError, match=match):
        net.input_gradients(np.zeros((2, 2)), **kwargs)


# ----------------------------------------------------------------------------- 2. autograd
@pytest.mark.parametrize("seed", range(4))
def test_input_gradients_match_autograd_on_an_independent_forward_pass(seed):
    autograd = pytest.importorskip("autograd")
    from _layer_oracle import oracle_loss

    rng = np.random.default_rng(seed)
    loss, out, n_out = [("categorical_crossentropy", "softmax", 3), ("binary_crossentropy", "sigmoid", 2),
                        ("mean_squared_error", "identity", 2), ("categorical_crossentropy", "softmax", 4)][seed]
    net = dp.Network([dp.Dense(4, 5, activation="tanh"), BatchNorm(), dp.Dropout(0.2),
                      Residual([LayerNorm(), dp.Dense(5, 5, activation="gelu")]), dp.Activation("sigmoid"),
                      dp.Dense(5, n_out, activation=out)], loss=loss, dtype="float64", seed=seed)
    _perturb(net, rng)
    X = rng.normal(size=(4, 4))
    y = rng.normal(size=(4, n_out)) if out == "identity" else rng.integers(0, n_out if out == "softmax" else 2,
                                                                          size=(4,) if out == "softmax" else (4, 2))
    Y = net.prepare_targets(y)
    g = net.input_gradients(X, y=y)
    # a prepended identity layer x ↦ I x + b: for one row, ∂ℓ/∂b is ∂ℓ/∂x
    config = net.get_config()
    config["layers"] = [{"type": "Dense", "n_in": 4, "n_out": 4, "activation": {"name": "identity"}}] + \
        config["layers"]
    flat = np.concatenate([np.eye(4).ravel(), np.zeros(4), net.params])
    ref = np.vstack([autograd.grad(lambda p, i=i: oracle_loss(config, p, X[i:i + 1], Y[i:i + 1], False,
                                                              net.buffers))(flat)[16:20] for i in range(4)])
    assert _rel(g, ref) < FD_TOL


# ----------------------------------------------------------------------------- 3. completeness
def _smooth_net(seed=0):
    net = dp.Network([dp.Dense(5, 8, activation="tanh"), LayerNorm(), dp.Dense(8, 6, activation="gelu"),
                      dp.Dense(6, 3, activation="softmax")], dtype="float64", seed=seed)
    _perturb(net, np.random.default_rng(seed))
    return net


def test_integrated_gradients_are_complete_within_an_error_that_falls_as_steps_grow():
    rng = np.random.default_rng(8)
    net = _smooth_net()
    X = rng.normal(scale=2.0, size=(6, 5))
    gaps = {s: float(np.abs(A.integrated_gradients(net, X, output=2, steps=s).gap).max()) for s in (16, 64, 256)}
    # trapezoid: O(1/steps²); measured 4.1e-4, 3.6e-5, 2.3e-6 (11- and 16-fold)
    assert gaps[16] / gaps[64] > 8 and gaps[64] / gaps[256] > 8, gaps
    assert gaps[256] < 1e-5
    for rule, fall in (("riemann_left", 3), ("riemann_right", 3), ("riemann_middle", 8)):   # O(h), O(h), O(h²)
        g = [float(np.abs(A.integrated_gradients(net, X, output=2, steps=s, method=rule).gap).max())
             for s in (16, 64)]
        assert g[0] / g[1] > fall, (rule, g)
    # Gauss–Legendre: measured 2.8e-13 with 64 nodes
    assert np.abs(A.integrated_gradients(net, X, output=2, steps=64, method="gausslegendre").gap).max() < 1e-10


def test_completeness_holds_for_the_loss_a_baseline_and_the_sum_is_f_x_minus_f_baseline():
    rng = np.random.default_rng(9)
    net = _smooth_net(1)
    X, base = rng.normal(size=(4, 5)), rng.normal(size=5)
    y = rng.integers(0, 3, size=4)
    att = A.integrated_gradients(net, X, baseline=base, y=y, steps=256)
    loss = net.loss.value(net.predict(X), net.prepare_targets(y))
    np.testing.assert_allclose(att.value, loss, rtol=1e-12)
    np.testing.assert_allclose(att.baseline_value, net.loss.value(net.predict(np.tile(base, (4, 1))),
                                                                  net.prepare_targets(y)), rtol=1e-12)
    np.testing.assert_allclose(att.values.sum(axis=1), att.delta, atol=1e-4)  # measured gap 1.3e-5
    assert att.explained is None
    exact = A.integrated_gradients(net, X, baseline=base, y=y, steps=64, method="gausslegendre")
    np.testing.assert_allclose(exact.values.sum(axis=1), exact.delta, atol=1e-12)  # measured 4e-15


def test_gradient_x_input_is_exact_for_an_affine_output_and_gradient_has_no_gap():
    rng = np.random.default_rng(10)
    net = dp.Network([dp.Dense(4, 3)], dtype="float64", seed=0)
    X = rng.normal(size=(5, 4))
    att = A.gradient_x_input(net, X, output=1)
    np.testing.assert_allclose(att.values, X * net.layers[0].W[1], rtol=1e-13)
    assert np.abs(att.gap).max() < 1e-13
    grad = A.attribute(net, X, "gradient", output=1)
    np.testing.assert_allclose(grad.values, np.tile(net.layers[0].W[1], (5, 1)), rtol=1e-13)
    assert np.isnan(grad.gap).all()


def test_integrated_gradients_with_an_embedding_are_complete_in_the_embedded_space():
    rng = np.random.default_rng(11)
    net = dp.Network([Embedding([(0, 5, 3)], n_in=3), dp.Dense(5, 6, activation="tanh"),
                      dp.Dense(6, 2, activation="softmax")], dtype="float64", seed=0)
    X = np.column_stack([rng.integers(0, 5, 6), rng.normal(size=(6, 2))])
    att = A.integrated_gradients(net, X, output=0, steps=256)
    assert np.isfinite(att.values).all() and np.abs(att.gap).max() < 1e-5
    # the baseline is the zero embedding: f(baseline) is the network after the Embedding at 0
    rest = dp.Network([dp.Dense(5, 6, activation="tanh"), dp.Dense(6, 2, activation="softmax")], dtype="float64")
    rest.params[...] = net.params[15:]
    np.testing.assert_allclose(att.baseline_value, rest.predict(np.zeros((1, 5)))[0, 0], rtol=1e-12)
    # gradient × input of the code column: its vector times the gradient there, summed over its dimensions
    gx = A.gradient_x_input(net, X, output=0)
    E = net.layers[0].forward(X).copy()
    g_e = rest.input_gradients(E, output=0)
    np.testing.assert_allclose(gx.values[:, 0], (E[:, 2:] * g_e[:, 2:]).sum(axis=1), rtol=1e-12)
    np.testing.assert_allclose(gx.values[:, 1:], (E[:, :2] * g_e[:, :2]), rtol=1e-12)


def test_attributions_table_names_its_columns_and_avoids_clashes():
    att = A.Attributions(np.array([[1.0, 2.0]]), ["value", "b"], "gradient_x_input", [3.5], [0.5],
                         np.array(["cat"], dtype=object))
    header, rows = att.table()
    assert header == ["value", "b", "explained", "_value", "baseline_value", "gap"]
    assert rows == [[1.0, 2.0, "cat", 3.5, 0.5, 0.0]]
    assert att.to_rows()[0]["_value"] == 3.5
    summed = att.summed([0, 0], ["both"])
    assert summed.values.tolist() == [[3.0]] and summed.gap.tolist() == [0.0]


# ----------------------------------------------------------------------------- 4. per original column
def _frame(n=60, seed=0):
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    a[::7] = np.nan                                   # a missing indicator
    df = pd.DataFrame({"a": a, "colour": rng.choice(list("rgb"), n), "b": rng.normal(10, 3, n),
                       "size": rng.choice(["s", "m", None], n)})
    y = np.where((df["b"] > 10) ^ (df["colour"] == "r"), "yes", np.where(df["size"] == "s", "maybe", "no"))
    return df, y


@pytest.mark.parametrize("categories_as", ["onehot", "codes"])
def test_tabular_attributions_per_column_add_up_to_the_per_input_ones(categories_as):
    df, y = _frame()
    contract = DataContract.fit(read_table(df.assign(y=y)), "y", categories_as=categories_as, min_frequency=1)
    embed = contract.embedding_columns(3) if categories_as == "codes" else None
    net = dp.Network.from_sizes([contract.n_inputs, 8, 3], activation="tanh", loss="categorical_crossentropy",
                                dtype="float64", seed=0, embed=embed)
    model = TabularModel(net, contract)
    att = model.attributions(df, steps=128)
    assert att.columns == ["a", "colour", "b", "size"] and att.values.shape == (len(df), 4)
    assert {"a (missing)"} <= set(model.input_names())  # the indicator exists, and was summed into "a"
    X = contract.inputs(read_table(df), np.float64)
    predicted = net.predict(X).argmax(axis=1)
    per_input = A.integrated_gradients(net, X, output=predicted, steps=128)
    np.testing.assert_allclose(att.values.sum(axis=1), per_input.values.sum(axis=1), rtol=1e-12, atol=1e-14)
    groups, _ = feature_groups(contract)
    np.testing.assert_allclose(att.values, per_input.summed(groups, att.columns).values, rtol=1e-12, atol=1e-14)
    assert np.abs(att.gap).max() < 1e-4
    assert list(att.explained) == [model.classes[k] for k in predicted]
    np.testing.assert_allclose(att.value, net.predict(X)[np.arange(len(df)), predicted], rtol=1e-12)


def test_a_binary_model_explains_class_0_as_one_minus_p():
    df, _ = _frame(seed=1)
    y = np.where(df["b"] > 10, "hi", "lo")
    contract = DataContract.fit(read_table(df.assign(y=y)), "y", min_frequency=1)
    net = dp.Network.from_sizes([contract.n_inputs, 6, 1], activation="tanh", loss="binary_crossentropy",
                                dtype="float64", seed=0)
    model = TabularModel(net, contract)
    hi, lo = (model.attributions(df, "gradient_x_input", output=c) for c in ("hi", "lo"))
    np.testing.assert_allclose(lo.values, -hi.values, rtol=1e-15)
    np.testing.assert_allclose(lo.value, 1 - hi.value, rtol=1e-12)
    np.testing.assert_allclose(lo.gap, -hi.gap, atol=1e-12)
    with pytest.raises(InvalidArgumentError, match="not one of the classes"):
        model.attributions(df, output="mid")


def test_a_regression_model_attributes_in_the_targets_units():
    df, _ = _frame(seed=2)
    y = 100.0 + 20.0 * df["b"].to_numpy()
    contract = DataContract.fit(read_table(df.assign(y=y)), "y", min_frequency=1)
    net = dp.Network.from_sizes([contract.n_inputs, 6, 1], activation="tanh", dtype="float64", seed=0)
    model = TabularModel(net, contract)
    att = model.attributions(df, steps=256)
    np.testing.assert_allclose(att.value, model.predict(df), rtol=1e-12)
    assert np.abs(att.gap).max() < 1e-5 * contract.target.scale   # measured 3e-6 of the scale
    assert set(att.explained) == {"y"}


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")   # three epochs, on purpose
def test_estimators_attribute_per_original_column_or_per_column_of_X():
    from deltaprop.estimators import DeltapropClassifier, DeltapropRegressor

    df, y = _frame(n=80, seed=3)
    clf = DeltapropClassifier(hidden_layer_sizes=(6,), epochs=3, random_state=0, dtype="float64").fit(df, y)
    att = clf.attributions(df.iloc[:10], steps=64)
    assert att.columns == ["a", "colour", "b", "size"] and att.values.shape == (10, 4)
    assert list(att.explained) == list(clf.predict(df.iloc[:10]))
    # the gap is the trapezoid rule's; ReLU's kinks make the integrand jump, so it falls as 1/steps (measured 5x)
    finer = clf.attributions(df.iloc[:10], steps=256)
    assert np.abs(finer.gap).max() < np.abs(att.gap).max() / 3
    X = np.random.default_rng(0).normal(size=(30, 3))
    reg = DeltapropRegressor(hidden_layer_sizes=(5,), epochs=3, random_state=0, dtype="float64")
    reg.fit(X, X @ [1.0, -2.0, 0.5])
    att = reg.attributions(X[:5], method="gradient_x_input")
    assert att.columns == ["x0", "x1", "x2"]
    np.testing.assert_allclose(att.value, reg.predict(X[:5]), rtol=1e-12)


# ----------------------------------------------------------------------------- 5. the command line
def test_explain_command_end_to_end(tmp_path, capsys):
    from deltaprop.cli import main

    rng = np.random.default_rng(12)
    rows = tmp_path / "rows.csv"
    with open(rows, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["island", "bill", "mass", "species"])
        for i in range(120):
            island, bill = rng.choice(["Biscoe", "Dream", "Torgersen"]), rng.normal(44, 5)
            species = "Gentoo" if bill > 46 else ("Chinstrap" if island == "Dream" else "Adelie")
            w.writerow(["" if i % 17 == 0 else island, "" if i % 13 == 0 else f"{bill:.1f}",
                        f"{rng.normal(4200, 600):.0f}", species])
    model = tmp_path / "m.safetensors"
    assert main(["train", "--data", str(rows), "--target", "species", "--epochs", "3", "--hidden", "6",
                 "--dtype", "float64", "--out", str(model), "--quiet", "--plot", "none"]) == 0
    capsys.readouterr()
    assert main(["explain", str(model), "--data", str(rows), "--steps", "128"]) == 0
    out = list(csv.reader(capsys.readouterr().out.splitlines()))
    assert out[0] == ["island", "bill", "mass", "explained", "value", "baseline_value", "gap"]
    assert len(out) == 121
    body = np.array([[float(v) for v in r[:3] + r[4:]] for r in out[1:]])
    np.testing.assert_allclose(body[:, :3].sum(axis=1) - (body[:, 3] - body[:, 4]), body[:, 5], atol=1e-12)
    assert np.abs(body[:, 5]).max() < 1e-2   # ReLU (the default): the quadrature error falls as 1/steps
    assert set(r[3] for r in out[1:]) <= {"Adelie", "Chinstrap", "Gentoo"}
    written = tmp_path / "att.csv"
    assert main(["explain", str(model), "--data", str(rows), "--method", "gradxinput", "--output", "Gentoo",
                 "--out", str(written)]) == 0
    assert "wrote" in capsys.readouterr().out
    again = list(csv.reader(written.read_text().splitlines()))
    assert len(again) == 121 and {r[3] for r in again[1:]} == {"Gentoo"}
    assert main(["explain", str(model), "--data", str(rows), "--out", str(rows)]) != 0   # never over an input
    assert rows.read_text().startswith("island,bill,mass,species")
    assert main(["explain", str(model), "--data", str(rows), "--output", "Emu"]) == 2
    assert "not one of the classes" in capsys.readouterr().err


def test_a_data_error_names_the_rows():
    net = dp.Network.from_sizes([2, 3], loss="categorical_crossentropy", dtype="float64", seed=0)
    with pytest.raises(DataError, match="3 samples but y has 2"):
        net.input_gradients(np.zeros((3, 2)), y=[0, 1])
    with pytest.raises(DataError, match="baseline"):
        A.integrated_gradients(net, np.zeros((3, 2)), baseline=np.zeros((2, 2)), output=0)
