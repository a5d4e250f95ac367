"""Layers beyond Dense: LayerNorm, BatchNorm, Embedding, Residual, Dropout, Activation and a user's own layer.

1. Gradients against float64 fourth-order central differences
   (``deltaprop.gradcheck``) for every layer kind in several positions, in
   prediction and training mode: relative error below 1e-7 per block (the
   gradcheck metric; it measures 6e-11 to 7e-9 on these networks). Blocks whose
   exact gradient is structurally zero (a bias right before a BatchNorm in
   training mode) are checked to be zero instead.
2. ``autograd`` differentiating an independent forward pass
   (``tests/_layer_oracle.py``, which reads only ``get_config()`` and the
   flat arrays) for 20 seeded random architectures mixing every kind, in both
   modes, dropout masks reproduced from the same seed: relative error below
   1e-7 per block and the same loss to 1e-12.
3. ``[Dense(p=0), Dropout(p)]`` trains bit-identically to ``Dense(dropout=p)``.
4. An Embedding is the one-hot product: forward (exactly), table gradient,
   and training under Adam with coupled weight decay; bad codes are
   DataErrors naming the column; unseen rows get exactly zero gradient.
5. Files: save/load, checkpoint and resume, early stopping, pickle, deepcopy
   and ``astype`` keep parameters and running statistics bit for bit.
6. Hostile model files are ModelFileErrors that name the problem.
7. A user-registered layer trains, checks and round-trips through a file.
8. BatchNorm: batches of one row refused before training, PyTorch's
   running-statistics convention, prediction on running statistics.
9. gradcheck's report names every block (``gamma``, ``tables.0``, ``layers.1.W``...).

Every random draw comes from ``numpy.random.default_rng(seed)``.
"""

import copy
import json
import pickle
import re
import warnings

import numpy as np
import pytest

import deltaprop as dp
from deltaprop import layers as dp_layers
from deltaprop.errors import DataError, InvalidArgumentError, ModelFileError
from deltaprop.gradcheck import gradcheck

autograd = pytest.importorskip("autograd")
from _layer_oracle import oracle_loss  # noqa: E402  (needs autograd)

pytestmark = pytest.mark.usefixtures("one_blas_thread")

#: gradcheck's relative error per block (float64, fourth-order differences, h = 1e-5): measured 6e-11 to 7e-9 here
FD_TOL = 1e-7
#: backprop against autograd, both float64: measured at most 1.3e-10 (a near-zero block against 1e-6 of the largest)
AUTOGRAD_TOL = 1e-7

SMOOTH = ["identity", "sigmoid", "tanh", "gelu", "softplus"]
ACTS = SMOOTH + ["relu", {"name": "leaky_relu", "alpha": 0.1}, {"name": "elu", "alpha": 0.7}, "softmax"]


# ----------------------------------------------------------------------------- helpers
def _targets(net, rng, m):
    """Targets in the loss's natural form for the network's loss."""
    name, k = net.loss.name, net.n_out
    if name == "categorical_crossentropy":
        return rng.integers(0, k, size=m)
    if name == "binary_crossentropy":
        y = rng.integers(0, 2, size=(m, k)).astype(float)
        return y[:, 0] if k == 1 else y
    return rng.normal(size=(m, k))


def _one_hot_targets(net, y):
    return np.asarray(net.prepare_targets(y), dtype=np.float64)


def _perturb(net, rng, scale=0.2):
    """Move every parameter off its initial value (γ off 1, β and biases off 0) and set non-trivial running stats."""
    net.params += rng.normal(0.0, scale, size=net.n_params).astype(net.dtype)
    for name, view in net.tensors().items():
        if name.endswith("running_mean"):
            view[...] = rng.normal(0.0, 0.5, size=view.shape)
        elif name.endswith("running_var"):
            view[...] = rng.uniform(0.5, 2.0, size=view.shape)


def _blocks(net):
    """``[(layer index, block name, slice of params)]`` in flat-store order (each layer's ``param_shapes``)."""
    out, at = [], 0
    for i, layer in enumerate(net.layers):
        for name, shape in layer.param_shapes().items():
            k = int(np.prod(shape))
            out.append((i, name, slice(at, at + k)))
            at += k
    assert at == net.n_params
    return out


def _backprop(net, X, y, training, seed=0):
    """``(loss, grads)`` of a float64 copy in the mode gradcheck checks (dropout masks from ``default_rng(seed)``)."""
    copy64 = net.astype("float64")
    copy64.rng = np.random.default_rng(seed)
    loss = copy64.loss_and_gradients(X, y, training=training)
    return loss, copy64.grads.copy()


def _coded(rng, m, cats=(4, 3)):
    """Five columns: numeric, a code of ``cats[0]`` categories, numeric, a code of ``cats[1]``, numeric."""
    X = rng.normal(size=(m, 5))
    X[:, 1] = rng.integers(0, cats[0], size=m)
    X[:, 3] = rng.integers(0, cats[1], size=m)
    return X


def _every_kind(dtype="float32", seed=1, p=(0.2, 0.1, 0.25)):
    """A network with every built-in layer kind; layer 1 is a BatchNorm (``layers.1.running_mean``)."""
    return dp.Network([
        dp.Embedding([(1, 4, 2), (3, 3, 3)], n_in=5),                       # 0: 3 numeric + 2 + 3 = 8
        dp.BatchNorm(),                                                      # 1
        dp.Dense(8, 6, activation="tanh"),                                   # 2
        dp.LayerNorm(),                                                      # 3
        dp.Residual([dp.BatchNorm(momentum=0.3), dp.Dense(6, 6, activation="relu", dropout=p[0]),
                     dp.Dropout(p[1]), dp.Residual([dp.LayerNorm(), dp.Dense(6, 6, activation="tanh")]),
                     dp.Dense(6, 6)]),                                       # 4
        dp.Activation("gelu"),                                               # 5
        dp.Dropout(p[2]),                                                    # 6
        dp.Dense(6, 3, activation="softmax"),                                # 7
    ], dtype=dtype, seed=seed)


def _every_kind_data(seed=0, n=40):
    rng = np.random.default_rng(seed)
    X = _coded(rng, n)
    y = ((X[:, 0] + (X[:, 1] == 2) - X[:, 4] * (X[:, 3] == 1)) > 0).astype(int) + (X[:, 2] > 0.9)
    return X, y


def _fit_kwargs(**extra):
    kw = dict(batch_size=8, optimizer={"name": "adam", "learning_rate": 0.02}, verbose=0)
    kw.update(extra)
    return kw


def _worst(report, skip=()):
    return max(v for row in report for k, v in row.items() if k != "layer" and (row["layer"] - 1, k) not in skip)


# ============================================================================ 1. finite differences
def _norms_first_and_last():
    return dp.Network([dp.LayerNorm(n_in=4), dp.Dense(4, 5, activation="tanh"), dp.BatchNorm(),
                       dp.Dense(5, 5, activation="sigmoid"), dp.LayerNorm(), dp.Dense(5, 3, activation="softmax")],
                      dtype="float64", seed=1), 4


def _batchnorm_first():
    return dp.Network([dp.BatchNorm(n_in=4), dp.Dense(4, 4, activation="gelu"), dp.BatchNorm(momentum=0.3, eps=1e-3),
                       dp.Activation("tanh"), dp.Dense(4, 2, activation="sigmoid")], dtype="float64", seed=2), 4


def _batchnorm_after_linear():
    # Dense(identity) -> BatchNorm: in training mode the batch mean cancels the bias exactly (zero gradient)
    return dp.Network([dp.Dense(4, 5), dp.BatchNorm(), dp.Activation("softplus"), dp.Dense(5, 4, activation="tanh"),
                       dp.LayerNorm(), dp.Dense(4, 2)], loss="mse", dtype="float64", seed=3), 4


def _embedding():
    return dp.Network([dp.Embedding([(1, 4, 2), (3, 3, 3)], n_in=5), dp.Dense(8, 5, activation="tanh"),
                       dp.Dense(5, 3, activation="softmax")], dtype="float64", seed=4), "coded"


def _embedding_then_norm_and_dropout():
    return dp.Network([dp.Embedding([(3, 3, 1), (1, 4, 3)], n_in=5), dp.BatchNorm(), dp.Dropout(0.3),
                       dp.Dense(7, 4, activation="sigmoid"), dp.LayerNorm(), dp.Dense(4, 2, activation="sigmoid")],
                      dtype="float64", seed=5), "coded"


def _residual():
    return dp.Network([
        dp.Dense(4, 5),
        dp.Residual([dp.LayerNorm(), dp.Dense(5, 5, activation="tanh", dropout=0.3), dp.Dense(5, 5), dp.Dropout(0.2)]),
        dp.Residual([dp.BatchNorm(), dp.Dense(5, 5, activation="gelu"),
                     dp.Residual([dp.LayerNorm(), dp.Dense(5, 5, activation="sigmoid")]), dp.Dropout(0.4)]),
        dp.Activation("tanh"), dp.Dense(5, 3, activation="softmax")], dtype="float64", seed=6), 4


def _residual_after_embedding():
    return dp.Network([dp.Embedding([(2, 3, 2)], n_in=3),
                       dp.Residual([dp.Dense(4, 4, activation="tanh"), dp.LayerNorm()]),
                       dp.BatchNorm(), dp.Dense(4, 1, activation="sigmoid")], dtype="float64", seed=7), "coded3"


def _dropout():
    return dp.Network([dp.Dense(4, 6, activation="tanh"), dp.Dropout(0.5), dp.Dense(6, 5, activation="sigmoid",
                                                                                    dropout=0.3),
                       dp.Dropout(0.2), dp.Dense(5, 2)], loss="mse", dtype="float64", seed=8), 4


def _activations():
    return dp.Network([dp.Dense(4, 5), dp.Activation("tanh"), dp.Activation("softmax"), dp.Dense(5, 4),
                       dp.Activation("gelu"), dp.Activation("sigmoid"), dp.Dense(4, 3, activation="softmax")],
                      dtype="float64", seed=9), 4


FD_CASES = {
    "norms-first-and-last": _norms_first_and_last,
    "batchnorm-first": _batchnorm_first,
    "batchnorm-after-linear": _batchnorm_after_linear,
    "embedding": _embedding,
    "embedding-then-norm-and-dropout": _embedding_then_norm_and_dropout,
    "residual-nested": _residual,
    "residual-after-embedding": _residual_after_embedding,
    "dropout": _dropout,
    "activations-softmax-mid-network": _activations,
}
#: (layer index, block) whose exact training-mode gradient is zero: a shift that a BatchNorm's batch mean cancels
STRUCTURALLY_ZERO = {("batchnorm-after-linear", True): {(0, "b")},
                     ("residual-after-embedding", True): {(1, "layers.1.beta")}}


def _fd_problem(name, m=7):
    net, inputs = FD_CASES[name]()
    rng = np.random.default_rng(len(name))
    _perturb(net, rng)
    if inputs == "coded":
        X = _coded(rng, m)
    elif inputs == "coded3":
        X = rng.normal(size=(m, 3))
        X[:, 2] = rng.integers(0, 3, size=m)
    else:
        X = rng.normal(size=(m, inputs))
    return net, X, _targets(net, rng, m)


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("name", list(FD_CASES))
def test_gradcheck_every_layer_kind(name, training):
    net, X, y = _fd_problem(name)
    zero = STRUCTURALLY_ZERO.get((name, training), set())
    loss, g = _backprop(net, X, y, training)
    floor = 1e-4 * max(1.0, abs(loss))          # gradcheck's floor: a block below it would be judged in absolute terms
    for i, block, sl in _blocks(net):
        biggest = np.abs(g[sl]).max()
        if (i, block) in zero:
            # exactly zero in exact arithmetic; rounding leaves ~1e-17 against gradients of order 1e-2
            assert biggest < 1e-13 * np.abs(g).max(), (i, block, biggest)
        else:
            assert biggest > floor, f"block {i}.{block} has a degenerate gradient {biggest}"
    report = gradcheck(net, X, y, training=training)
    assert _worst(report, skip=zero) < FD_TOL, report


def test_structurally_zero_bias_is_a_real_property():
    # The same bias in prediction mode (running statistics) has a gradient well above the floor:
    # the zero above comes from the batch mean, not from a dead network.
    net, X, y = _fd_problem("batchnorm-after-linear")
    _, g_eval = _backprop(net, X, y, training=False)
    _, g_train = _backprop(net, X, y, training=True)
    b = [sl for i, name, sl in _blocks(net) if (i, name) == (0, "b")][0]
    assert np.abs(g_eval[b]).max() > 1e-2
    assert np.abs(g_train[b]).max() < 1e-15


def test_gradcheck_catches_a_wrong_norm_backward(monkeypatch):
    # A LayerNorm backward that forgets the variance term: gradcheck must see it (so 1e-7 above is meaningful).
    def wrong(self, grad, need_input_grad=True):
        self._param_grads(grad)
        grad *= self.gamma
        grad -= grad.mean(axis=1, keepdims=True)
        grad *= self.inv_std
        return grad

    net, X, y = _fd_problem("norms-first-and-last")
    monkeypatch.setattr(dp.LayerNorm, "backward", wrong)
    report = gradcheck(net, X, y)
    assert report[1]["W"] > 1e-3                 # the Dense layer below the wrong LayerNorm


# ============================================================================ 2. autograd oracle
def _random_layer(rng, d, depth, kinds):
    choices = ["layernorm", "batchnorm", "activation", "dropout", "dense"] + (["residual"] if depth < 2 else [])
    kind = str(rng.choice(choices))
    kinds.add(kind if depth == 0 else f"{kind}@{depth}")
    if kind == "layernorm":
        return dp.LayerNorm(eps=float(rng.choice([1e-5, 1e-3])))
    if kind == "batchnorm":
        return dp.BatchNorm(momentum=float(rng.choice([0.1, 0.3])), eps=float(rng.choice([1e-5, 1e-3])))
    if kind == "activation":
        return dp.Activation(ACTS[int(rng.integers(len(ACTS)))])
    if kind == "dropout":
        return dp.Dropout(float(rng.choice([0.0, 0.2, 0.5])))
    if kind == "dense":
        return dp.Dense(d, d, activation=ACTS[int(rng.integers(len(ACTS)))], dropout=float(rng.choice([0.0, 0.3])))
    return dp.Residual([_random_layer(rng, d, depth + 1, kinds) for _ in range(int(rng.integers(1, 4)))])


def _random_case(seed):
    """A seeded random network mixing every kind, float64, with data, targets and the kinds it holds."""
    rng = np.random.default_rng(seed)
    m = int(rng.integers(5, 9))
    kinds = set()
    n_num = int(rng.integers(1, 4))
    layers = []
    if rng.random() < 0.6:
        n_coded = int(rng.integers(1, 3))
        n_in = n_num + n_coded
        positions = [int(j) for j in rng.permutation(n_in)[:n_coded]]
        columns = [(j, int(rng.integers(2, 6)), int(rng.integers(1, 4))) for j in positions]
        layers.append(dp.Embedding(columns, n_in=n_in))
        kinds.add("embedding")
        width = n_num + sum(c[2] for c in columns)
    else:
        n_in, columns, width = n_num, [], n_num
    X = rng.normal(size=(m, n_in))
    for j, n_cat, _ in columns:
        X[:, j] = rng.integers(0, n_cat, size=m)
    d = int(rng.integers(3, 7))
    layers.append(dp.Dense(width, d, activation=ACTS[int(rng.integers(len(ACTS)))]))
    for _ in range(int(rng.integers(1, 5))):
        layers.append(_random_layer(rng, d, 0, kinds))
    loss = str(rng.choice(["categorical_crossentropy", "binary_crossentropy", "mean_squared_error"]))
    out_act = {"categorical_crossentropy": "softmax", "binary_crossentropy": "sigmoid"}.get(loss, "identity")
    n_out = int(rng.integers(2 if out_act == "softmax" else 1, 4))
    layers.append(dp.Dense(d, n_out, activation=out_act))
    net = dp.Network(layers, loss=loss, dtype="float64", seed=seed)
    _perturb(net, rng)
    return net, X, _targets(net, rng, m), kinds


def _block_errors(net, g, ref):
    """Largest per-block ``max|g − ref| / max(max|ref|, 1e-6 max|ref over all|)``."""
    scale = np.abs(ref).max()
    errors = {}
    for i, name, sl in _blocks(net):
        denom = max(np.abs(ref[sl]).max(), np.abs(g[sl]).max(), 1e-6 * scale)
        errors[(i, name)] = float(np.abs(g[sl] - ref[sl]).max() / denom)
    return errors


SEEDS = range(20)


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("seed", SEEDS)
def test_backprop_matches_autograd_on_random_architectures(seed, training):
    net, X, y, _ = _random_case(seed)
    config, params, buffers = net.get_config(), net.params.copy(), net.buffers.copy()
    Y = _one_hot_targets(net, y)
    value, ref = autograd.value_and_grad(lambda p: oracle_loss(config, p, X, Y, training, buffers, seed=100 + seed))(
        params)
    net.rng = np.random.default_rng(100 + seed)               # the masks the oracle draws
    loss = net.loss_and_gradients(X, y, training=training)
    assert abs(loss - value) <= 1e-12 * max(1.0, abs(value)), (loss, value)
    assert np.abs(ref).max() > 1e-3                           # not a dead network
    errors = _block_errors(net, net.grads, ref)
    assert max(errors.values()) < AUTOGRAD_TOL, {k: v for k, v in errors.items() if v >= AUTOGRAD_TOL}
    if not training:
        np.testing.assert_array_equal(net.buffers, buffers)  # prediction mode leaves the running statistics alone


def test_random_architectures_cover_every_kind():
    kinds, dropout_trained = set(), False
    for seed in SEEDS:
        net, _, _, found = _random_case(seed)
        kinds |= found
        dropout_trained |= bool(re.search(r'"(p|dropout)": 0\.[1-9]', json.dumps(net.get_config())))
    assert {"embedding", "layernorm", "batchnorm", "activation", "dropout", "dense", "residual"} <= kinds, kinds
    assert any(k.endswith("@1") for k in kinds) and any(k.startswith("residual@") for k in kinds), kinds
    assert dropout_trained


def test_oracle_sees_a_wrong_batchnorm_backward(monkeypatch):
    # The oracle comparison fails when BatchNorm's training backward drops the variance term.
    net = dp.Network([dp.Dense(3, 4, activation="tanh"), dp.BatchNorm(), dp.Dense(4, 2, activation="softmax")],
                     dtype="float64", seed=0)
    rng = np.random.default_rng(0)
    _perturb(net, rng)
    X, y = rng.normal(size=(6, 3)), rng.integers(0, 2, 6)
    original = dp.BatchNorm.backward

    def wrong(self, grad, need_input_grad=True):
        xhat = self.xc * self.inv_std
        out = original(self, grad, need_input_grad)
        if out is not None and self.count is not None:
            out += xhat * 0.01
        return out

    monkeypatch.setattr(dp.BatchNorm, "backward", wrong)
    params = net.params.copy()
    buffers = net.buffers.copy()
    ref = autograd.grad(lambda p: oracle_loss(net.get_config(), p, X, _one_hot_targets(net, y), True, buffers))(params)
    net.loss_and_gradients(X, y, training=True)
    assert max(_block_errors(net, net.grads, ref).values()) > 1e-4


@pytest.mark.parametrize("first", ["batchnorm", "layernorm", "dropout", "activation", "residual", "embedding"])
def test_sparse_input_is_refused_unless_the_first_layer_is_dense(first):
    # Only Dense multiplies a OneHotMatrix / SparseRows without densifying it; any other first layer used to
    # fail with an AttributeError (LayerNorm, BatchNorm) or pass it on (Dropout at prediction time).
    from deltaprop.sparse import OneHotMatrix

    layer = {"batchnorm": dp.BatchNorm(n_in=4), "layernorm": dp.LayerNorm(n_in=4), "dropout": dp.Dropout(0.2, n_in=4),
             "activation": dp.Activation("tanh", n_in=4), "residual": dp.Residual([dp.Dense(4, 4)], n_in=4),
             "embedding": dp.Embedding([(0, 2, 1)], n_in=4)}[first]
    net = dp.Network([layer, dp.Dense(4, 2, activation="softmax")], seed=0)
    X = OneHotMatrix(np.random.default_rng(0).normal(size=(6, 1)), np.array([[0], [1], [2], [0], [1], [2]]), [3])
    assert X.shape == (6, 4)
    for attempt in (lambda: net.predict(X), lambda: net.fit(X, [0, 1] * 3, epochs=1, batch_size=3, verbose=0)):
        with pytest.raises(dp.errors.InvalidTypeError, match=r"X is a sparse matrix, which only a Dense first layer "
                                                               r"reads.*X\.toarray\(\)"):
            attempt()
    dense = dp.Network([dp.Dense(4, 2, activation="softmax")], seed=0)
    assert dense.predict(X).shape == (6, 2)                     # a Dense first layer still reads it


# ============================================================================ 3. Dropout layer ≡ Dense dropout
def test_dropout_layer_trains_bit_identically_to_dense_dropout():
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(45, 4)), rng.integers(0, 3, 45)
    split = dp.Network([dp.Dense(4, 8, activation="relu"), dp.Dropout(0.3), dp.Dense(8, 6, activation="tanh"),
                        dp.Dropout(0.5), dp.Dense(6, 3, activation="softmax")], seed=7)
    fused = dp.Network([dp.Dense(4, 8, activation="relu", dropout=0.3), dp.Dense(8, 6, activation="tanh", dropout=0.5),
                        dp.Dense(6, 3, activation="softmax")], seed=7)
    plain = dp.Network([dp.Dense(4, 8, activation="relu"), dp.Dense(8, 6, activation="tanh"),
                        dp.Dense(6, 3, activation="softmax")], seed=7)
    assert np.array_equal(split.params, fused.params)         # Dropout has no parameters: the same layout
    kw = _fit_kwargs(epochs=3, validation_split=0.2)
    h_split, h_fused = split.fit(X, y, **kw), fused.fit(X, y, **kw)
    plain.fit(X, y, **kw)
    assert np.array_equal(split.params, fused.params)
    assert [r["loss"] for r in h_split.rows] == [r["loss"] for r in h_fused.rows]
    assert np.array_equal(split.predict(X), fused.predict(X))
    assert not np.array_equal(plain.params, fused.params)   # the masks did change the run


# ============================================================================ 4. Embedding ≡ one-hot
def _onehot(codes, k):
    out = np.zeros((len(codes), k))
    out[np.arange(len(codes)), codes.astype(int)] = 1.0
    return out


def test_embedding_forward_and_table_gradient_are_the_onehot_products():
    net = dp.Network([dp.Embedding([(3, 5, 2), (1, 4, 3)], n_in=5), dp.Dense(8, 2)], dtype="float64", seed=0)
    emb = net.layers[0]
    rng = np.random.default_rng(1)
    X = _coded(rng, 9, cats=(4, 5))
    X[:3, 1] = 2                                               # a code repeated: its row sums three gradients
    out = emb.forward(X).copy()
    T0, T1 = emb.tables
    expected = np.hstack([X[:, [0, 2, 4]], _onehot(X[:, 3], 5) @ T0, _onehot(X[:, 1], 4) @ T1])
    assert out.shape == (9, 8) and emb.passthrough == [0, 2, 4]
    np.testing.assert_array_equal(out, expected)               # one nonzero term per entry: exact
    G = rng.normal(size=(9, 8))
    g_in = emb.backward(G.copy(), need_input_grad=True)
    # sums of up to 9 terms in another order: within a few ulps
    np.testing.assert_allclose(emb.grad_tables[0], _onehot(X[:, 3], 5).T @ G[:, 3:5], rtol=0, atol=1e-14)
    np.testing.assert_allclose(emb.grad_tables[1], _onehot(X[:, 1], 4).T @ G[:, 5:8], rtol=0, atol=1e-14)
    np.testing.assert_array_equal(g_in[:, [0, 2, 4]], G[:, :3])  # numeric columns pass the gradient through
    np.testing.assert_array_equal(g_in[:, [1, 3]], 0.0)          # codes have none


def test_embedding_trains_as_a_onehot_dense_layer_under_adam_with_weight_decay():
    # The one-hot formulation written with autograd: z = [x0, onehot(c) T] Wᵀ + b, and deltaprop's Adam run on the
    # flat arrays by hand, decay on T and W (not b). Rows 2 and 5 never appear: only the decay moves them.
    import autograd.numpy as anp

    K, dim, m, steps = 6, 3, 10, 5
    rng = np.random.default_rng(2)
    X = np.column_stack([rng.normal(size=m), rng.choice([0, 1, 3, 4], size=m)])
    y = rng.integers(0, 3, m)
    net = dp.Network([dp.Embedding([(1, K, dim)], n_in=2), dp.Dense(1 + dim, 3, activation="softmax")],
                     dtype="float64", seed=3)
    T0 = net.layers[0].tables[0].copy()
    W0, b0 = net.layers[1].W.copy(), net.layers[1].b.copy()
    Y, H = _onehot(y, 3), _onehot(X[:, 1], K)

    def loss(flat):
        T = anp.reshape(flat[:K * dim], (K, dim))
        W = anp.reshape(flat[K * dim:K * dim + 3 * (1 + dim)], (3, 1 + dim))
        b = flat[K * dim + 3 * (1 + dim):]
        z = anp.dot(anp.concatenate([X[:, :1], anp.dot(H, T)], axis=1), W.T) + b
        z = z - anp.max(z, axis=1, keepdims=True)
        return -anp.mean(anp.sum(Y * (z - anp.log(anp.sum(anp.exp(z), axis=1, keepdims=True))), axis=1))

    flat = np.concatenate([T0.ravel(), W0.ravel(), b0])
    mask = np.concatenate([np.ones(K * dim + 3 * (1 + dim)), np.zeros(3)])
    opt = dp.Adam(learning_rate=0.05, weight_decay=0.01)
    opt.init(flat, decay_mask=mask)
    for _ in range(steps):
        opt.step(flat, autograd.grad(loss)(flat))
    net.fit(X, y, epochs=steps, batch_size=m, shuffle=False, optimizer={"name": "adam", "learning_rate": 0.05,
                                                                         "weight_decay": 0.01}, verbose=0)
    T, W = flat[:K * dim].reshape(K, dim), flat[K * dim:K * dim + 3 * (1 + dim)].reshape(3, 1 + dim)
    # both exact float64 computations of the same steps: agreement to rounding (measured ~1e-16)
    np.testing.assert_allclose(net.layers[0].tables[0], T, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(net.layers[1].W, W, rtol=1e-12, atol=1e-14)
    unseen = [2, 5]
    # decayed, not skipped: Adam on g = λT alone moves every entry of those rows towards 0
    assert np.all(np.abs(net.layers[0].tables[0][unseen]) < np.abs(T0[unseen]))


@pytest.mark.parametrize("bad", [2.5, -1.0, 4.0, -0.5, 1e20, -1e20, 2.0 ** 63])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bad_codes_are_a_data_error_naming_the_column(bad, dtype):
    net = dp.Network([dp.Embedding([(3, 3, 2), (1, 4, 2)], n_in=5), dp.Dense(7, 2, activation="softmax")],
                     dtype=dtype, seed=0)
    X = _coded(np.random.default_rng(0), 6)
    X[4, 1] = bad
    with warnings.catch_warnings():
        warnings.simplefilter("error")                          # no RuntimeWarning from a cast on the way
        for attempt in (lambda: net.predict(X), lambda: net.loss_and_gradients(X, [0] * 6)):
            with pytest.raises(DataError, match=r"Embedding column 1 must hold category codes 0\.\.3; row 4 has ") \
                    as info:
                attempt()
            assert repr(float(np.asarray(bad, dtype=dtype))) in str(info.value)
            assert "np.float" not in str(info.value)


def test_unseen_rows_get_exactly_zero_gradient_after_a_decayed_optimizer_step():
    net = dp.Network([dp.Embedding([(0, 6, 2)], n_in=2), dp.Dense(3, 2, activation="softmax")], dtype="float64",
                     seed=0)
    emb = net.layers[0]
    first = np.array([[0, 0.3], [1, -1.0], [2, 0.5], [3, 0.1]])
    second = np.array([[4, 0.3], [5, -1.0], [4, 0.5]])
    opt = dp.SGD(learning_rate=0.1, weight_decay=0.5)
    opt.init(net.params, decay_mask=net.weight_mask())
    net.loss_and_gradients(first, [0, 1, 0, 1])
    assert np.all(emb.grad_tables[0][:4] != 0)
    opt.step(net.params, net.grads)                             # coupled decay writes λ·T into every row's gradient
    assert np.all(emb.grad_tables[0] != 0)
    net.loss_and_gradients(second, [1, 0, 1])
    np.testing.assert_array_equal(emb.grad_tables[0][:4], 0.0)   # rows 0..3 are not in this batch
    assert np.all(emb.grad_tables[0][4:] != 0)


# ============================================================================ 5. files and copies
def _trained_every_kind(dtype="float32", epochs=3):
    X, y = _every_kind_data()
    net = _every_kind(dtype)
    net.fit(X, y, epochs=epochs, **_fit_kwargs())
    rv = [v for k, v in net.tensors().items() if k.endswith("running_var")]
    assert all(np.all(v != 1) for v in rv)                      # running statistics have moved
    return net, X, y


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_save_load_every_kind_is_bit_identical(tmp_path, dtype):
    net, X, _ = _trained_every_kind(dtype)
    path = tmp_path / "m.safetensors"
    dp.save(net, path)
    loaded = dp.load(path)
    assert loaded.get_config() == net.get_config()
    assert list(loaded.tensors()) == list(net.tensors())
    assert {"layers.1.running_mean", "layers.1.running_var", "layers.0.tables.1",
            "layers.4.layers.3.layers.0.gamma", "layers.4.layers.0.running_var"} <= set(loaded.tensors())
    assert np.array_equal(loaded.params, net.params) and np.array_equal(loaded.buffers, net.buffers)
    assert np.array_equal(loaded.predict(X), net.predict(X))
    fresh = _every_kind(dtype)
    fresh.params[...] = net.params                              # same weights, initial running statistics:
    assert not np.array_equal(fresh.predict(X), net.predict(X))  # the statistics are what the file had to carry


from test_checkpoint import _CtrlC  # noqa: E402  (Ctrl-C, a real SIGINT, after a given step)


def test_checkpoint_and_resume_every_kind_is_bit_identical(tmp_path):
    X, y = _every_kind_data(n=48)
    kw = _fit_kwargs(validation_split=0.25, schedule={"name": "step", "step_size": 5, "gamma": 0.7})
    straight = _every_kind()
    h_straight = straight.fit(X, y, epochs=6, **kw)
    # after whole epochs: 3 done, resumed to 6
    first = _every_kind()
    first.fit(X, y, epochs=3, checkpoint_dir=tmp_path / "a", **kw)
    assert not np.array_equal(first.buffers, straight.buffers)
    resumed = _every_kind()
    h = resumed.fit(X, y, epochs=6, resume_from=tmp_path / "a", **kw)
    assert np.array_equal(resumed.params, straight.params) and np.array_equal(resumed.buffers, straight.buffers)
    assert [r["loss"] for r in h.rows] == [r["loss"] for r in h_straight.rows]
    # mid-epoch (36 training rows in batches of 8: 5 steps an epoch): Ctrl-C after step 7
    interrupted = _every_kind()
    with pytest.raises(KeyboardInterrupt, match="checkpoint written to"):
        interrupted.fit(X, y, epochs=6, callbacks=[_CtrlC(7)], checkpoint_dir=tmp_path / "b", checkpoint_unit="step",
                        checkpoint_every=10_000, **kw)
    resumed = _every_kind()
    resumed.fit(X, y, epochs=6, resume_from=tmp_path / "b", **kw)
    assert np.array_equal(resumed.params, straight.params) and np.array_equal(resumed.buffers, straight.buffers)


def test_resume_refuses_a_checkpoint_with_a_negative_running_variance(tmp_path):
    X, y = _every_kind_data()
    _every_kind().fit(X, y, epochs=1, checkpoint_dir=tmp_path / "good", **_fit_kwargs())
    (good,) = (tmp_path / "good").iterdir()
    (tmp_path / "bad").mkdir()
    _edit(good, tmp_path / "bad" / good.name, body=_poke("buffers", 9, -3.0))    # layers.1.running_var[1]
    with pytest.raises(ModelFileError, match="running_var"):
        _every_kind().fit(X, y, epochs=2, resume_from=tmp_path / "bad", **_fit_kwargs())


class _Recorder(dp.Callback):
    def __init__(self):
        self.params, self.buffers = [], []

    def on_epoch_end(self, run, epoch, logs):
        self.params.append(run.network.params.copy())
        self.buffers.append(run.network.buffers.copy())


def test_early_stopping_restores_running_statistics_too():
    X, y = _every_kind_data(n=48)
    net, rec = _every_kind(), _Recorder()
    # mode="max" on val_loss: the best epoch is an early one, so a restore must go back several epochs
    stop = dp.EarlyStopping(monitor="val_loss", patience=2, mode="max")
    history = net.fit(X, y, epochs=20, callbacks=[rec], early_stopping=stop, **_fit_kwargs(validation_split=0.25))
    assert len(history) < 20 and stop.best_epoch < len(rec.buffers) - 1
    assert np.array_equal(net.params, rec.params[stop.best_epoch])
    assert np.array_equal(net.buffers, rec.buffers[stop.best_epoch])
    assert not np.array_equal(net.buffers, rec.buffers[-1])


def test_pickle_and_deepcopy_keep_buffers_and_the_run():
    net, X, y = _trained_every_kind()
    for clone in (pickle.loads(pickle.dumps(net)), copy.deepcopy(net)):
        assert np.array_equal(clone.params, net.params) and np.array_equal(clone.buffers, net.buffers)
        assert clone.buffers is not net.buffers
        assert np.array_equal(clone.predict(X), net.predict(X))
        assert np.shares_memory(clone.layers[1].running_mean, clone.buffers)      # views of the clone's own store
        assert np.shares_memory(clone.layers[4].layers[0].running_var, clone.buffers)
    a, b = pickle.loads(pickle.dumps(net)), copy.deepcopy(net)
    a.fit(X, y, epochs=2, **_fit_kwargs())
    b.fit(X, y, epochs=2, **_fit_kwargs())                      # the generator travels too: the same dropout masks
    assert np.array_equal(a.params, b.params) and np.array_equal(a.buffers, b.buffers)


def test_astype_keeps_buffers():
    net, X, _ = _trained_every_kind("float64")
    n32 = net.astype("float32")
    assert n32.buffers.dtype == np.float32 and n32.params.dtype == np.float32
    assert np.array_equal(n32.buffers, net.buffers.astype(np.float32))
    assert np.shares_memory(n32.layers[1].running_var, n32.buffers)
    # float32 rounding of parameters and activations through 8 layers: well within 1e-4
    np.testing.assert_allclose(n32.predict(X), net.predict(X), rtol=0, atol=1e-4)
    back = n32.astype("float64")
    assert np.array_equal(back.buffers, n32.buffers.astype(np.float64))


# ============================================================================ 6. hostile files
from test_io import _parts, _write  # noqa: E402  (the safetensors header codec of the file tests)


def _edit(path, out, header=None, meta=None, body=None):
    """Copy ``path`` to ``out`` with edits (as tests/test_io.py): header dict, metadata JSON, body bytes."""
    h, b = _parts(path)
    for key, fn in (meta or {}).items():
        h["__metadata__"][key] = json.dumps(fn(json.loads(h["__metadata__"][key])))
    if header is not None:
        header(h)
    _write(out, h, body(h, b) if body else b)
    return out


def _poke(name, index, value):
    """A body edit writing ``value`` into entry ``index`` of tensor ``name`` (float32)."""
    def body(h, b):
        start = h[name]["data_offsets"][0] + 4 * index
        assert h[name]["dtype"] == "F32"
        return b[:start] + np.float32(value).tobytes() + b[start + 4:]
    return body


def _drop(name):
    """Header and body edits removing tensor ``name`` cleanly (its bytes cut, later offsets shifted)."""
    def header(h):
        start, end = h.pop(name)["data_offsets"]
        for key, entry in h.items():
            if key != "__metadata__" and entry["data_offsets"][0] >= end:
                entry["data_offsets"] = [entry["data_offsets"][0] - (end - start), entry["data_offsets"][1] - (end - start)]
        header.cut = (start, end)

    def body(h, b):
        start, end = header.cut
        return b[:start] + b[end:]
    return dict(header=header, body=body)


def _add(name, values):
    """Header and body edits appending a float32 tensor ``name``."""
    values = np.asarray(values, dtype=np.float32)

    def header(h):
        end = max(e["data_offsets"][1] for k, e in h.items() if k != "__metadata__")
        h[name] = {"dtype": "F32", "shape": list(values.shape), "data_offsets": [end, end + values.nbytes]}

    def body(h, b):
        return b + values.tobytes()
    return dict(header=header, body=body)


def _arch(fn):
    def edit(arch):
        fn(arch["layers"])
        return arch
    return {"architecture": edit}


def _set(path, value):
    def fn(layers):
        target = layers
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return fn


HOSTILE = {
    "negative running_var": (dict(body=_poke("layers.1.running_var", 2, -1.0)),
                             r"layer 1 \(BatchNorm\): running_var\[2\] is -1\.0; a variance is never negative"),
    "negative nested running_var": (dict(body=_poke("layers.4.layers.0.running_var", 0, -0.5)),
                                    r"layer 4 \(Residual\): layers\.0: running_var\[0\] is -0\.5"),
    "unknown layer type": (dict(meta=_arch(_set([3, "type"], "NoSuchLayer"))),
                           r"layer 3 has unknown type 'NoSuchLayer'.*deltaprop\.layers\.register"),
    "unknown nested layer type": (dict(meta=_arch(_set([4, "layers", 3, "layers", 0, "type"], "Mystery"))),
                                  r"unknown type 'Mystery'"),
    "embedding index beyond the input": (dict(meta=_arch(_set([0, "columns", 1, 0], 9))),
                                         r"Embedding reads input column 9, but the input has 5 columns"),
    "residual that changes the width": (dict(meta=_arch(_set([4, "layers", 4, "n_out"], 7))),
                                        r"a Residual block must keep its width: it takes 6 and its layers give 7"),
    "missing running_mean": (_drop("layers.1.running_mean"), r"tensors \['layers\.1\.running_mean'\] are missing"),
    "embedding after the first layer": (dict(meta=_arch(_set([6], {"type": "Embedding", "columns": [[0, 1, 1]]})),
                                             **_add("layers.6.tables.0", [[0.5]])),
                                        r"architecture is invalid: layers\[6\] is Embedding.*can only be the first layer"),
    "residual holding an embedding": (dict(meta=_arch(_set([4, "layers", 2], {"type": "Embedding",
                                                                               "columns": [[0, 2, 6]]}))),
                                      r"can only be a network's first layer"),
    "bad batchnorm momentum": (dict(meta=_arch(_set([1, "momentum"], 5.0))), r"momentum"),
    "empty residual": (dict(meta=_arch(_set([4, "layers"], []))), r"empty 'layers' list"),
}


@pytest.fixture(scope="module")
def every_kind_file(tmp_path_factory):
    net, _, _ = _trained_every_kind()
    path = tmp_path_factory.mktemp("hostile") / "good.safetensors"
    dp.save(net, path)
    return path


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_file_is_a_model_file_error_naming_the_problem(tmp_path, every_kind_file, case):
    edits, message = HOSTILE[case]
    bad = _edit(every_kind_file, tmp_path / "bad.safetensors", **edits)
    with pytest.raises(ModelFileError, match=message) as info:
        dp.load(bad)
    assert str(bad) in str(info.value)


def test_the_untouched_file_loads(every_kind_file):
    dp.load(every_kind_file)   # the hostile cases fail because of their edit alone


# ============================================================================ 7. a user's own layer
class Scale(dp_layers.Layer):
    """``y = s ⊙ x`` with a learned ``s`` (starts at 1 plus noise)."""

    _transient = ("x",)

    def __init__(self, n_in=None):
        self.n_in = n_in
        self.x = None

    def param_shapes(self):
        return {"s": (self.n_in,)}

    def initialize(self, rng):
        self.s[...] = 1.0 + 0.3 * rng.standard_normal(self.n_in)

    def forward(self, a_prev, training=False, rng=None, need_input_grad=True):
        self.x = a_prev
        return a_prev * self.s

    def backward(self, grad, need_input_grad=True):
        np.sum(grad * self.x, axis=0, out=self.grad_s)
        return grad * self.s if need_input_grad else None

    def get_config(self):
        return {"type": "test_layers_scale", "n_in": self.n_in}


@pytest.fixture
def scale_registered():
    dp_layers.register("test_layers_scale", Scale)
    yield
    dp_layers.REGISTRY.pop("test_layers_scale", None)


def _scale_net():
    return dp.Network([Scale(n_in=4), dp.Dense(4, 5, activation="tanh"),
                       dp.Residual([dp.LayerNorm(), Scale(), dp.Dense(5, 5, activation="sigmoid")]), Scale(),
                       dp.Dense(5, 3, activation="softmax")], dtype="float64", seed=11)


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_user_layer_gradcheck(scale_registered, training):
    net = _scale_net()
    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(7, 4)), rng.integers(0, 3, 7)
    report = gradcheck(net, X, y, training=training)
    assert set(report[0]) == {"layer", "s"} and "layers.1.s" in report[2]
    assert _worst(report) < FD_TOL, report


def test_user_layer_trains_saves_and_loads(scale_registered, tmp_path):
    net = _scale_net()
    rng = np.random.default_rng(5)
    X, y = rng.normal(size=(32, 4)), rng.integers(0, 3, 32)
    s0 = net.layers[0].s.copy()
    net.fit(X, y, epochs=2, **_fit_kwargs())
    assert not np.array_equal(net.layers[0].s, s0)
    assert dp_layers.lookup("test_layers_scale") is Scale
    path = tmp_path / "scale.safetensors"
    dp.save(net, path)
    loaded = dp.load(path)
    assert isinstance(loaded.layers[0], Scale) and isinstance(loaded.layers[2].layers[1], Scale)
    assert "layers.2.layers.1.s" in loaded.tensors()
    assert np.array_equal(loaded.predict(X), net.predict(X))
    dp_layers.REGISTRY.pop("test_layers_scale")
    with pytest.raises(ModelFileError, match=r"unknown type 'test_layers_scale'.*register"):
        dp.load(path)


# ============================================================================ 8. BatchNorm
@pytest.mark.parametrize("n, batch_size", [(41, 8), (40, 13), (1, 4)])
def test_batchnorm_refuses_a_batch_of_one_row_before_training(n, batch_size):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(n, 3)), rng.integers(0, 2, n)
    net = dp.Network([dp.Dense(3, 4), dp.BatchNorm(), dp.Activation("relu"), dp.Dense(4, 2, activation="softmax")],
                     seed=0)
    params, buffers = net.params.copy(), net.buffers.copy()
    with pytest.raises(InvalidArgumentError, match=r"batch of 1; choose another batch_size"):
        net.fit(X, y, epochs=1, batch_size=batch_size, verbose=0)
    assert np.array_equal(net.params, params) and np.array_equal(net.buffers, buffers)   # nothing ran
    if n > 1:
        net.fit(X[:-1], y[:-1], epochs=1, batch_size=batch_size, verbose=0)              # one row less is fine


def test_batchnorm_in_a_residual_also_refuses_and_layernorm_does_not():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(17, 3)), rng.integers(0, 2, 17)
    blocked = dp.Network([dp.Dense(3, 4), dp.Residual([dp.BatchNorm(), dp.Dense(4, 4)]),
                          dp.Dense(4, 2, activation="softmax")], seed=0)
    with pytest.raises(InvalidArgumentError, match="batch_size"):
        blocked.fit(X, y, epochs=1, batch_size=8, verbose=0)
    fine = dp.Network([dp.Dense(3, 4), dp.Residual([dp.LayerNorm(), dp.Dense(4, 4)]),
                       dp.Dense(4, 2, activation="softmax")], seed=0)
    fine.fit(X, y, epochs=1, batch_size=8, verbose=0)
    # a direct training pass on one row is refused by the layer itself
    with pytest.raises(DataError, match="at least 2 rows"):
        blocked.loss_and_gradients(X[:1], y[:1], training=True)


@pytest.mark.parametrize("momentum", [0.1, 0.35])
def test_batchnorm_running_statistics_follow_pytorch(momentum):
    rng = np.random.default_rng(6)
    bn = dp.BatchNorm(n_in=3, momentum=momentum) if momentum != 0.1 else dp.BatchNorm(n_in=3)  # 0.1: the default
    net = dp.Network([bn, dp.Dense(3, 2)], dtype="float64", seed=0)
    mean0, var0 = rng.normal(size=3), rng.uniform(0.5, 2.0, size=3)
    bn.running_mean[...], bn.running_var[...] = mean0, var0
    X = rng.normal(2.0, 3.0, size=(6, 3))
    net.loss_and_gradients(X, rng.normal(size=(6, 2)), training=True)
    # one update by hand: momentum weighs the new value, the variance is the unbiased one (ddof=1)
    np.testing.assert_allclose(bn.running_mean, (1 - momentum) * mean0 + momentum * X.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(bn.running_var, (1 - momentum) * var0 + momentum * X.var(axis=0, ddof=1), rtol=1e-14)
    # the training output used the batch's biased variance
    xhat = (X - X.mean(axis=0)) / np.sqrt(X.var(axis=0) + 1e-5)
    np.testing.assert_allclose(bn.forward(X, training=False), (X - bn.running_mean) / np.sqrt(bn.running_var + 1e-5)
                               * bn.gamma + bn.beta, rtol=1e-14)
    bn.running_mean[...], bn.running_var[...] = mean0, var0
    np.testing.assert_allclose(bn.forward(X, training=True), xhat * bn.gamma + bn.beta, rtol=1e-13, atol=1e-15)


def test_batchnorm_predicts_with_running_statistics():
    net = dp.Network([dp.BatchNorm(n_in=3), dp.Dense(3, 2)], dtype="float64", seed=0)
    rng = np.random.default_rng(7)
    _perturb(net, rng)
    bn, out = net.layers
    X = rng.normal(size=(5, 3))
    buffers = net.buffers.copy()
    expected = ((X - bn.running_mean) / np.sqrt(bn.running_var + 1e-5) * bn.gamma + bn.beta) @ out.W.T + out.b
    np.testing.assert_allclose(net.predict(X), expected, rtol=1e-13)
    # a row's prediction does not depend on the rest of the batch (running statistics, not the batch's)
    np.testing.assert_allclose(net.predict(X[:1]), net.predict(X)[:1], rtol=1e-14)
    net.evaluate(X, rng.normal(size=(5, 2)))
    gradcheck(net, X, rng.normal(size=(5, 2)), training=True)  # works on a copy
    np.testing.assert_array_equal(net.buffers, buffers)        # predict, evaluate and gradcheck change nothing


# ============================================================================ 9. gradcheck's report
def test_gradcheck_report_names_every_block():
    X, y = _every_kind_data(n=7)
    report = gradcheck(_every_kind("float64", p=(0.0, 0.0, 0.0)), X, y, training=True)
    assert [row["layer"] for row in report] == list(range(1, 9))
    keys = [set(row) - {"layer"} for row in report]
    assert keys[0] == {"tables.0", "tables.1"}
    assert keys[1] == keys[3] == {"gamma", "beta"}
    assert keys[2] == keys[7] == {"W", "b"}
    assert keys[4] == {"layers.0.gamma", "layers.0.beta", "layers.1.W", "layers.1.b", "layers.3.layers.0.gamma",
                       "layers.3.layers.0.beta", "layers.3.layers.1.W", "layers.3.layers.1.b", "layers.4.W",
                       "layers.4.b"}
    assert keys[5] == keys[6] == set()                          # Activation and Dropout have no parameters
    # ReLU inside the block, dropout off: the data are far from its kink at this seed; all blocks check out
    assert _worst(report) < FD_TOL, report


# ---------------------------------------------------------------- no bias before a BatchNorm
def test_from_sizes_leaves_out_the_biases_a_batchnorm_cancels():
    """Before each BatchNorm, and on the ResNet's stream (which reaches nothing but BatchNorms)."""
    plain = dp.Network.from_sizes([4, 6, 6, 2], loss="categorical_crossentropy", norm="batch", seed=0)
    before_bn = [a for a, b in zip(plain.layers, plain.layers[1:]) if isinstance(b, dp.BatchNorm)]
    assert len(before_bn) == 2 and all(isinstance(a, dp.Dense) and not a.bias for a in before_bn)
    assert plain.layers[-1].bias
    layer_norm = dp.Network.from_sizes([4, 6, 2], loss="categorical_crossentropy", norm="layer", seed=0)
    assert all(layer.bias for layer in layer_norm.layers if isinstance(layer, dp.Dense))  # LayerNorm keeps them
    resnet = dp.Network.from_sizes([4, 6, 6, 2], loss="categorical_crossentropy", norm="batch", residual=True,
                                   seed=0)
    stem, block = resnet.layers[0], resnet.layers[1]
    assert not stem.bias and block.layers[1].bias and not block.layers[2].bias
    with_dropout = dp.Network.from_sizes([4, 6, 2], loss="categorical_crossentropy", norm="batch", residual=True,
                                         dropout=0.2, seed=0)
    assert with_dropout.layers[1].layers[2].bias  # dropout scales a bias unit by unit: not a constant shift


def test_a_dense_layer_without_bias_checks_saves_and_reads_old_records(tmp_path):
    net = dp.Network([dp.Dense(3, 5, bias=False), dp.BatchNorm(), dp.Activation("tanh"),
                      dp.Dense(5, 2, "softmax")], dtype="float64", seed=0)
    assert net.layers[0].b is None and net.n_params == 15 + 10 + 12
    X = np.random.default_rng(1).standard_normal((9, 3))
    y = np.arange(9) % 2
    for training in (False, True):
        report = gradcheck(net, X, y, training=training)
        assert set(report[0]) == {"layer", "W"} and report[0]["W"] < 1e-7
    path = tmp_path / "nb.safetensors"
    dp.save(net, path)
    back = dp.load(path)
    assert not back.layers[0].bias and np.array_equal(back.predict(X), net.predict(X))
    record = dp.Dense(3, 5).get_config()
    assert "bias" not in record and dp_layers.from_config(record).bias  # records of earlier versions: a bias
    with pytest.raises(dp.InvalidTypeError, match="bias must be True or False"):
        dp.Dense(3, 5, bias="no")


def test_a_residual_network_starts_from_pytorchs_linear_initialisation():
    """Every Dense of a ResNet: U(±1/sqrt(fan_in)) unless an initializer is given; a plain MLP keeps He."""
    resnet = dp.Network.from_sizes([40, 64, 64, 3], loss="categorical_crossentropy", norm="batch", residual=True,
                                   seed=0)
    dense = [x for layer in resnet.layers for x in getattr(layer, "layers", [layer]) if isinstance(x, dp.Dense)]
    assert len(dense) == 2 + 2 * 2
    for layer in dense:
        assert layer.initializer.name == "fan_in_uniform"
        assert np.abs(layer.W).max() <= 1 / np.sqrt(layer.n_in)
    plain = dp.Network.from_sizes([40, 64, 3], loss="categorical_crossentropy", seed=0)
    assert plain.layers[0].initializer.name == "he_uniform"
    given = dp.Network.from_sizes([40, 64, 3], loss="categorical_crossentropy", residual=True, seed=0,
                                  initializer="glorot_uniform")
    assert {x.initializer.name for layer in given.layers for x in getattr(layer, "layers", [layer])
            if isinstance(x, dp.Dense)} == {"glorot_uniform"}
