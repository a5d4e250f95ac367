"""Inputs that are not dense arrays (deltaprop.sparse): one-hot blocks as codes, and scipy sparse matrices.

Tolerances. The products add the same non-zero terms as a dense product of
``toarray()``, in another order, so they differ from it by rounding only: the
largest difference relative to the largest entry of the product is held to
1e-12 in float64 and 1e-5 in float32. Three epochs of training on a matrix
and on its ``toarray()`` end with parameters within 1e-10 (float64), the
rounding differences carried through Adam's steps. The same input twice gives
bit-identical parameters.
"""

import numpy as np
import pytest
import scipy.sparse as sp

from deltaprop import training
from deltaprop.errors import DataError, InvalidArgumentError, InvalidTypeError
from deltaprop.gradcheck import gradcheck
from deltaprop.network import FeedForward
from deltaprop.sparse import BLOCK_RATIO, OneHotMatrix, SparseRows, as_input, is_matrix_like

#: (d, sizes): dense columns and categorical sizes (k = 0 and d = 0 included; a 1,000-category column)
LAYOUTS = [(5, [3, 1000, 2]), (0, [4]), (0, [1000, 7]), (6, []), (0, [1]), (2, [2, 2, 2, 300])]
RTOL = {np.float32: 1e-5, np.float64: 1e-12}


def onehot(n, d, sizes, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    dense = rng.normal(size=(n, d)).astype(dtype)
    codes = np.stack([rng.integers(0, s, n) for s in sizes], axis=1) if sizes else np.zeros((n, 0), np.int64)
    return OneHotMatrix(dense, codes, sizes)


def rel_err(got, want):
    return np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-300)


# ------------------------------------------------------------------ products
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("d,sizes", LAYOUTS)
@pytest.mark.parametrize("m", [1, 37, 256])
def test_onehot_products_equal_dense(dtype, d, sizes, m):
    X = onehot(m, d, sizes, dtype, seed=m)
    A = X.toarray().astype(np.float64)
    rng = np.random.default_rng(1)
    p = 19
    # M as the network hands it: W.T of a column-major W, here also a non-contiguous view
    M = np.asfortranarray(rng.normal(size=(X.shape[1], 2 * p)).astype(dtype))[:, ::2]
    delta = rng.normal(size=(m, p)).astype(dtype)
    out = np.full((m, p), np.nan, dtype=dtype)
    assert X.matmul_into(M, out) is out
    assert rel_err(out, A @ M.astype(np.float64)) <= RTOL[dtype]
    g = np.full((X.shape[1], p), np.nan, dtype=dtype)
    assert X.tmatmul_into(delta, g) is g
    assert rel_err(g, A.T @ delta.astype(np.float64)) <= RTOL[dtype]


def test_scatter_paths_agree_with_dense_sum_exactly_in_float64_when_integer_valued():
    # Integer-valued Δ: every sum is exact, so the block product, the rounds of
    # row scatters and the dense product give the very same numbers.
    m = 64
    X = onehot(m, 0, [m // BLOCK_RATIO, 10 * m, 3], seed=3)   # one block column, one wide, one narrow
    delta = np.random.default_rng(4).integers(-5, 6, size=(m, 8)).astype(np.float64)
    g = X.tmatmul_into(delta, np.empty((X.shape[1], 8)))
    np.testing.assert_array_equal(g, X.toarray().T @ delta)


def test_onehot_empty_batch_products():
    X = onehot(10, 2, [5, 100])[np.arange(0)]
    assert X.shape == (0, 107)
    g = X.tmatmul_into(np.empty((0, 3)), np.full((107, 3), np.nan))
    np.testing.assert_array_equal(g, 0)
    assert X.matmul_into(np.ones((107, 3)), np.empty((0, 3))).shape == (0, 3)


@pytest.mark.parametrize("kind", ["csr_matrix", "csr_array", "coo_matrix", "csc_matrix"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sparse_rows_products_equal_dense(kind, dtype):
    rng = np.random.default_rng(5)
    A = sp.random(120, 300, density=0.02, random_state=6, format="csr")
    S = SparseRows(getattr(sp, kind)(A), dtype=dtype)
    D = A.toarray()
    M = np.asfortranarray(rng.normal(size=(300, 11)).astype(dtype))
    delta = rng.normal(size=(120, 11)).astype(dtype)
    assert S.dtype == dtype and S.shape == (120, 300)
    assert rel_err(S.matmul_into(M, np.empty((120, 11), dtype)), D @ M.astype(np.float64)) <= RTOL[dtype]
    assert rel_err(S.tmatmul_into(delta, np.empty((300, 11), dtype)), D.T @ delta.astype(np.float64)) <= RTOL[dtype]


# ------------------------------------------------------------ the array face
def test_row_selection_matches_dense_rows():
    X = onehot(50, 3, [4, 20])
    A = X.toarray()
    idx = np.array([7, 3, 3, 49, 0])
    np.testing.assert_array_equal(X[idx].toarray(), A[idx])
    np.testing.assert_array_equal(X[10:20].toarray(), A[10:20])
    np.testing.assert_array_equal(X[A[:, 0] > 0].toarray(), A[A[:, 0] > 0])
    S = SparseRows(sp.csr_matrix(A))
    np.testing.assert_array_equal(S[idx].toarray(), A[idx])
    np.testing.assert_array_equal(S[5:9].toarray(), A[5:9])
    assert len(X) == len(S) == 50 and X.ndim == S.ndim == 2
    np.testing.assert_array_equal(X.codes[:, 1], X.cols[:, 1] - 7)


@pytest.mark.parametrize("key", [3, (slice(None), 2), None, "a"])
def test_row_selection_refuses_anything_else(key):
    with pytest.raises(InvalidTypeError, match="selects rows"):
        onehot(5, 1, [2])[key]


@pytest.mark.parametrize("make", [lambda: onehot(5, 1, [3]), lambda: SparseRows(sp.eye(5, format="csr"))])
def test_never_densified_implicitly(make):
    with pytest.raises(InvalidTypeError, match=r"not turned into a dense array implicitly.*toarray\(\)"):
        np.asarray(make())


def test_codes_out_of_range_name_column_row_and_value():
    with pytest.raises(DataError, match=r"codes\[:, 1\] must lie in 0\.\.4 \(sizes\[1\] = 5\); 2 do not, "
                                        r"the first is 5 at row 2"):
        OneHotMatrix(None, [[0, 0], [1, 4], [2, 5], [0, -1]], [3, 5])


def test_constructor_messages():
    with pytest.raises(InvalidTypeError, match="codes must be integers, got dtype float64"):
        OneHotMatrix(None, np.zeros((3, 1)), [2])
    with pytest.raises(InvalidArgumentError, match=r"sizes\[0\] must be a positive integer, got 0"):
        OneHotMatrix(None, np.zeros((3, 1), int), [0])
    with pytest.raises(DataError, match=r"codes must have shape \(n_samples, 2\)"):
        OneHotMatrix(None, np.zeros((3, 1), int), [2, 2])
    with pytest.raises(DataError, match="with the 3 rows of codes"):
        OneHotMatrix(np.zeros((4, 2)), np.zeros((3, 1), int), [2])
    with pytest.raises(DataError, match="at least one column"):
        OneHotMatrix(None, np.zeros((3, 0), int), [])
    X = OneHotMatrix(np.ones((3, 2), np.int32), [1, 0, 1], [2])   # 1-D codes: one column; int dense -> float64
    assert X.shape == (3, 4) and X.dtype == np.float64


def test_as_input_checks_columns_rows_finiteness_and_dtype():
    dense = np.zeros((4, 2))
    dense[2, 1] = np.nan
    X = OneHotMatrix(dense, [[0], [1], [2], [0]], [3])
    with pytest.raises(DataError, match=r"X holds 1 NaN or infinite value\(s\); the first is at \(row, column\) \(2, 1\)"):
        as_input(X, np.float64, n_features=5)
    with pytest.raises(DataError, match="X has 5 features but the network expects 6"):
        as_input(X, np.float64, n_features=6)
    with pytest.raises(DataError, match="X has 0 samples"):
        as_input(X[:0], np.float64, n_features=5)
    big = OneHotMatrix(np.full((2, 1), 1e300), [[0], [1]], [2])
    with pytest.raises(DataError, match="too large for float32"):
        as_input(big, np.float32)
    assert as_input(np.zeros((2, 2)), np.float64) is None and as_input([[1.0]], np.float64) is None
    ok = as_input(OneHotMatrix(np.ones((2, 1)), [[0], [1]], [2]), np.float32)
    assert is_matrix_like(ok) and ok.dtype == np.float32


def test_scipy_values_checked_once_with_their_position():
    A = sp.csr_matrix(np.array([[0.0, 1.0, 0.0], [0.0, 0.0, np.inf]]))
    with pytest.raises(DataError, match=r"X_val holds 1 NaN or infinite value\(s\); the first is at \(row, column\) \(1, 2\)"):
        as_input(A, np.float64, name="X_val")
    with pytest.raises(DataError, match="too large for float32"):
        as_input(sp.csr_matrix(np.array([[0.0, 1e300]])), np.float32)
    with pytest.raises(InvalidTypeError, match="complex"):
        as_input(sp.csr_matrix(np.array([[1j]])), np.float64)
    S = as_input(sp.csr_matrix(np.array([[1, 0], [0, 2]], dtype=np.int64)), np.float32)
    assert isinstance(S, SparseRows) and S.dtype == np.float32 and S.nnz == 2


# ----------------------------------------------------------------- training
def _net(n_in, dtype="float64", dropout=0.0, activation="relu"):
    return FeedForward.from_sizes([n_in, 24, 16, 3], activation=activation, loss="categorical_crossentropy",
                                  dropout=dropout, dtype=dtype, seed=11)


def _fit(X, y, **kw):
    net = _net(X.shape[1], dropout=0.1)
    hist = training.fit(net, X, y, epochs=3, batch_size=32, verbose=0, **kw)
    return net, hist


def test_training_on_onehot_equals_training_on_its_dense_array():
    X = onehot(400, 4, [5, 1000, 2], seed=8)
    y = np.random.default_rng(9).integers(0, 3, 400)
    w = np.random.default_rng(10).random(400)
    a, ha = _fit(X, y, sample_weight=w, validation_split=0.2)
    b, hb = _fit(X.toarray(), y, sample_weight=w, validation_split=0.2)
    assert np.max(np.abs(a.params - b.params)) <= 1e-10
    assert abs(ha["val_loss"][-1] - hb["val_loss"][-1]) <= 1e-10
    assert np.max(np.abs(a.predict(X, batch_size=50) - b.predict(X.toarray()))) <= 1e-10
    ea, eb = training.evaluate(a, X, y), training.evaluate(b, X.toarray(), y)
    assert abs(ea["loss"] - eb["loss"]) <= 1e-10 and ea["accuracy"] == eb["accuracy"]
    c, _ = _fit(X, y, sample_weight=w, validation_split=0.2)   # the same input again: bit-identical
    np.testing.assert_array_equal(a.params, c.params)


@pytest.mark.parametrize("kind", ["csr_matrix", "csr_array", "coo_matrix"])
def test_training_on_scipy_equals_training_on_its_dense_array(kind):
    A = sp.random(300, 500, density=0.01, random_state=12, format="csr")
    y = np.random.default_rng(13).integers(0, 3, 300)
    a, _ = _fit(getattr(sp, kind)(A), y, validation_split=0.2)
    b, _ = _fit(A.toarray(), y, validation_split=0.2)
    assert np.max(np.abs(a.params - b.params)) <= 1e-10
    assert np.max(np.abs(a.logits(A) - b.logits(A.toarray()))) <= 1e-10


def test_float32_network_takes_float64_onehot():
    X = onehot(200, 3, [50], seed=14)
    y = np.random.default_rng(15).integers(0, 3, 200)
    a, b = _net(53, dtype="float32"), _net(53, dtype="float32")
    training.fit(a, X, y, epochs=2, batch_size=16, verbose=0)
    training.fit(b, X.toarray(), y, epochs=2, batch_size=16, verbose=0)
    assert rel_err(a.params, b.params) <= 1e-4
    assert a.predict(X).dtype == np.float32


def test_nothing_densifies_more_than_a_few_sampled_rows(monkeypatch):
    # The run's data fingerprint (deltaprop.run) densifies at most 64 sampled rows; nothing else may.
    seen = []
    original = OneHotMatrix.toarray

    def spy(self):
        seen.append(self.shape[0])
        return original(self)

    monkeypatch.setattr(OneHotMatrix, "toarray", spy)
    X = onehot(500, 2, [1000])
    net = _net(1002)
    training.fit(net, X, np.zeros(500, int), epochs=1, batch_size=64, verbose=0, validation_split=0.2)
    net.predict(X)
    training.evaluate(net, X, np.zeros(500, int))
    assert max(seen, default=0) <= 64


# ---------------------------------------------------------------- gradients
def test_gradients_with_onehot_input_match_finite_differences():
    X = onehot(30, 3, [4, 60], seed=16)
    y = np.random.default_rng(17).integers(0, 3, 30)
    net = _net(67, activation="tanh")
    for row in gradcheck(net, X, y, max_entries=60, seed=1):
        assert row["W"] <= 1e-7 and row["b"] <= 1e-7, row
    # and the backpropagated gradient equals the dense input's
    net.loss_and_gradients(X, y, training=False)
    g = net.grads.copy()
    net.loss_and_gradients(X.toarray(), y, training=False)
    assert rel_err(g, net.grads) <= 1e-12


def test_loss_and_gradients_with_scipy_input():
    A = sp.random(40, 80, density=0.05, random_state=18, format="csr")
    y = np.random.default_rng(19).integers(0, 3, 40)
    net = _net(80, activation="tanh")
    la = net.loss_and_gradients(A, y, training=False)
    g = net.grads.copy()
    lb = net.loss_and_gradients(A.toarray(), y, training=False)
    assert abs(la - lb) <= 1e-13 and rel_err(g, net.grads) <= 1e-12
