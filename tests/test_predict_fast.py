"""The fast path of prediction (issue 16): the same bits as a plain forward pass, and every check still there.

``predict`` on a few rows skips what only large inputs need (an output array
filled chunk by chunk, a second check of a checked matrix, scikit-learn's
``validate_data`` for a finite float array of the fitted width, a sort of
the categories of a few rows, a column-by-column transform). Each test here
compares a prediction on 1, 10, 1000 and 5000 rows with a reference forward
pass computed without any of that machinery, with ``assert_array_equal``; and
a bad input (NaN, another width, an object array, a missing column) must
still raise the error it always raised. No test times anything.

The reference is a forward pass per chunk of ``batch_size`` rows (one pass
when the rows fit in one): BLAS may round a row differently when it is part
of a product with another number of rows, so a chunked prediction is compared
with the same chunks.
"""

import warnings
from contextlib import nullcontext

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from sklearn.exceptions import ConvergenceWarning

import deltaprop as dp
from deltaprop.errors import DataError, InvalidArgumentError, InvalidTypeError
from deltaprop.estimators import DeltapropClassifier, DeltapropRegressor
from deltaprop.sparse import OneHotMatrix
from deltaprop.tabular import DataContract, TabularModel, read_table
from deltaprop.tabular import schema as schema_module
from deltaprop.tabular.scores import network_outputs
from deltaprop.tabular.stats import FEW_ROWS

pd = pytest.importorskip("pandas")
pytestmark = pytest.mark.usefixtures("one_blas_thread")  # tests/conftest.py

SIZES = (1, 10, 1000, 5000)


def reference(net, X, batch_size=4096, logits=False):
    """Output activations (or ``Z_L``) by plain forward passes over chunks of ``batch_size`` rows: (n, n_out)."""
    parts = []
    for start in range(0, len(X), batch_size):
        rows = X[start:start + batch_size]
        rows = rows if isinstance(rows, OneHotMatrix) else np.ascontiguousarray(rows, dtype=net.dtype)
        a = net.forward(rows)
        parts.append((net.layers[-1].z if logits else a).copy())
    return np.concatenate(parts)


def _fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y)


# ------------------------------------------------------------------ Network
@pytest.fixture(scope="module", params=["float32", "float64"])
def network(request):
    net = dp.Network.from_sizes([20, 16, 8, 3], loss="categorical_crossentropy", dtype=request.param, seed=0)
    X = np.random.default_rng(1).standard_normal((5000, 20))
    return net, X.astype(net.dtype)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("batch_size", [4096, 1024])
def test_network_predict_is_a_plain_forward_pass(network, n, batch_size):
    net, X = network
    X = X[:n]
    out = net.predict(X, batch_size=batch_size)
    assert out.dtype == net.dtype and out.shape == (n, 3) and out.flags.c_contiguous and out.flags.owndata
    assert_array_equal(out, reference(net, X, batch_size))
    assert_array_equal(net.logits(X, batch_size=batch_size), reference(net, X, batch_size, logits=True))


def test_network_predict_returns_its_own_array(network):
    net, X = network
    first = net.predict(X[:2])
    kept = first.copy()
    net.predict(X[2:4])  # the next pass overwrites the workspaces, never a returned array
    assert_array_equal(first, kept)


@pytest.mark.parametrize("n", [1, 10, 1000])
def test_network_converted_inputs_give_the_same_bits(network, n):
    net, X = network
    expected = reference(net, X[:n])
    assert_array_equal(net.predict(np.asfortranarray(X[:n])), expected)
    assert_array_equal(net.predict(X[:n].tolist()), expected)
    other = np.float64 if net.dtype == np.float32 else np.float32
    wide = X[:n].astype(other)
    assert_array_equal(net.predict(wide), reference(net, wide.astype(net.dtype)))


@pytest.mark.parametrize("n", SIZES)
def test_network_onehot_input_is_checked_once_and_predicts_the_same(n):
    rng = np.random.default_rng(2)
    sizes = [4, 7]
    matrix = OneHotMatrix(rng.standard_normal((n, 3)), np.column_stack([rng.integers(0, s, n) for s in sizes]), sizes)
    net = dp.Network.from_sizes([3 + sum(sizes), 8, 2], loss="categorical_crossentropy", dtype="float64", seed=0)
    assert_array_equal(net.predict(matrix, batch_size=1024), reference(net, matrix, 1024))


@pytest.mark.parametrize("n", [1, 10])
def test_network_bad_rows_still_raise(network, n):
    net, X = network
    bad = X[:n].copy()
    bad[n - 1, 5] = np.nan
    with pytest.raises(DataError, match=rf"X holds 1 NaN or infinite value\(s\); the first is at \(row, column\) "
                                        rf"\({n - 1}, 5\)"):
        net.predict(bad)
    with pytest.raises(DataError, match="X has 19 features but the network expects 20"):
        net.predict(X[:n, :19])
    with pytest.raises(InvalidTypeError, match="X must hold numbers, got dtype object"):
        net.predict(X[:n].astype(object))
    with pytest.raises(DataError, match="must be 2-D"):
        net.predict(X[0])
    with pytest.raises(DataError, match="0 samples"):
        net.predict(X[:0])
    with pytest.raises(DataError, match="too large for float32") if net.dtype == np.float32 else nullcontext():
        net.predict(np.full((n, 20), 1e300))


@pytest.mark.parametrize("batch_size, error", [(0, InvalidArgumentError), (2.5, InvalidTypeError),
                                               (-3, InvalidArgumentError), (True, InvalidTypeError)])
def test_network_refuses_a_bad_batch_size(network, batch_size, error):
    net, X = network
    with pytest.raises(error, match="batch_size must be a positive integer"):
        net.predict(X[:1], batch_size=batch_size)


def test_a_matrix_still_needs_a_dense_first_layer():
    net = dp.Network.from_sizes([5, 4, 2], loss="categorical_crossentropy", seed=0, embed=[(4, 3, 2)])
    matrix = OneHotMatrix(np.zeros((2, 2)), np.zeros((2, 1), dtype=int), [3])
    with pytest.raises(InvalidTypeError, match="only a Dense first layer reads"):
        net.predict(matrix)


# --------------------------------------------------------------- estimators
@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X5 = np.concatenate([X] * 3)[:5000]
    clf = _fit(DeltapropClassifier(hidden_layer_sizes=(32,), epochs=3, random_state=0), X, y)
    binary = _fit(DeltapropClassifier(hidden_layer_sizes=(8,), epochs=2, random_state=0, dtype="float32"), X, y % 2)
    reg = _fit(DeltapropRegressor(hidden_layer_sizes=(8,), epochs=2, random_state=0, dtype="float32"), X, X[:, 20])
    return X5, clf, binary, reg


@pytest.mark.parametrize("n", SIZES)
def test_estimators_predict_a_plain_forward_pass(digits, n):
    X5, clf, binary, reg = digits
    X = X5[:n]
    p = reference(clf.network_, X)
    assert_array_equal(clf.predict_proba(X), p)
    assert_array_equal(clf.predict(X), clf.classes_[p.argmax(axis=1)])
    z = reference(clf.network_, X, logits=True)
    z = z - z.max(axis=1, keepdims=True)
    assert_array_equal(clf.predict_log_proba(X), z - np.log(np.exp(z).sum(axis=1, keepdims=True)))
    q = reference(binary.network_, X)
    assert_array_equal(binary.predict_proba(X), np.hstack([1.0 - q, q]))
    assert_array_equal(binary.predict(X), binary.classes_[(q[:, 0] > 0.5).astype(int)])
    assert_array_equal(reg.predict(X), reference(reg.network_, X)[:, 0])


@pytest.mark.parametrize("n", [1, 10, 1000])
def test_estimator_fast_and_checked_paths_agree(digits, n):
    """A float array of the fitted width skips validate_data; anything else takes it, with the same results."""
    X5, clf, _, reg = digits
    X = X5[:n]
    expected = clf.predict_proba(X)
    # digits are whole numbers: as int64 they are the same values
    for other in (np.asfortranarray(X), X.tolist(), X.astype(">f8"), X.astype(np.int64), pd.DataFrame(X)):
        assert_array_equal(clf.predict_proba(other), expected)
    assert_array_equal(reg.predict(X.astype(np.float32)), reference(reg.network_, X.astype(np.float32))[:, 0])


@pytest.mark.parametrize("n", [1, 10])
def test_estimator_bad_rows_still_raise_scikit_learns_errors(digits, n):
    X5, clf, _, reg = digits
    bad = X5[:n].copy()
    bad[0, 3] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        clf.predict(bad)
    bad[0, 3] = np.inf
    with pytest.raises(ValueError, match="Input X contains infinity"):
        clf.predict_proba(bad)
    with pytest.raises(ValueError, match="X has 63 features, but DeltapropClassifier is expecting 64 features"):
        clf.predict(X5[:n, :63])
    with pytest.raises(ValueError, match="could not convert string to float"):
        clf.predict(np.full((n, 64), "a", dtype=object))
    with pytest.raises(ValueError, match="Expected 2D array, got 1D array instead"):
        clf.predict(X5[0])
    with pytest.raises(ValueError, match=r"Found array with 0 sample\(s\)"):
        clf.predict(X5[:0])
    with pytest.raises(DataError, match="too large for float32"):
        reg.predict(np.full((n, 64), 1e300))


def test_estimator_fitted_on_names_still_warns_about_an_array(digits):
    X5, *_ = digits
    names = [f"f{i}" for i in range(64)]
    est = _fit(DeltapropClassifier(hidden_layer_sizes=(8,), epochs=2, random_state=0), pd.DataFrame(X5[:500],
                                                                                                   columns=names),
               np.arange(500) % 3)
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        est.predict(X5[:1])
    with pytest.raises(ValueError, match="The feature names should match"):
        est.predict(pd.DataFrame(X5[:1], columns=[f"g{i}" for i in range(64)]))


def test_unfitted_estimator_still_says_so(digits):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError, match="not fitted yet"):
        DeltapropClassifier().predict(digits[0][:1])


# ------------------------------------------------------------ TabularModel
def _frame(n, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(n)
    return pd.DataFrame({
        "a": a,
        "b": np.where(rng.random(n) < 0.1, np.nan, rng.uniform(0, 100, n)),
        "c": rng.integers(0, 7, n).astype(float),
        "colour": rng.choice(list("rgbyk"), n).astype(object),
        "size": pd.Series(rng.choice(["s", "m", "l", None], n), dtype=object),
    }), np.where(a > 0.5, "high", np.where(rng.random(n) < 0.3, "red", "low"))


@pytest.fixture(scope="module")
def tabular():
    df, label = _frame(600)
    contract = DataContract.fit(read_table(df.assign(label=label)), "label")
    net = dp.Network.from_sizes([contract.n_inputs, 16, 3], loss="categorical_crossentropy", seed=0)
    contract.silence_unused(net)
    rows, _ = _frame(5000, seed=1)
    rows.loc[3, "colour"] = "purple"   # unseen
    rows.loc[4, "colour"] = None       # missing where training had none
    rows.loc[5, "c"] = np.nan          # likewise
    return TabularModel(net, contract), rows


@pytest.mark.parametrize("n", SIZES)
def test_tabular_predict_is_a_plain_forward_pass(tabular, n):
    model, rows = tabular
    df = rows.iloc[:n].reset_index(drop=True)
    table = model.contract.read(df)
    p = reference(model.network, model.contract.inputs(table, model.network.dtype))
    assert_array_equal(model.predict_proba(df), p)
    labels = np.asarray(model.target.decode(p.argmax(axis=1)))
    assert_array_equal(model.predict(df), labels)
    assert_array_equal(model.predict({k: df[k].to_numpy() for k in df.columns}), labels)
    assert_array_equal(network_outputs(model, table, chunk=7 if n <= 10 else 1000), p)  # in several chunks


@pytest.mark.parametrize("n", [1, 3, FEW_ROWS, FEW_ROWS + 1, 300])
def test_transform_at_once_equals_column_by_column(tabular, monkeypatch, n):
    """The numeric block at once and the few-rows category lookup give the codes, inputs and report of the
    column-by-column transform with a sort of the categories."""
    model, rows = tabular
    schema = model.contract.schema
    df = rows.iloc[:n].reset_index(drop=True).copy()
    df.loc[::4, "colour"] = ["zz", "aa"] * (len(df.loc[::4]) // 2) + ["zz"] * (len(df.loc[::4]) % 2)
    df.loc[1::5, "size"] = None
    df.loc[::3, "c"] = np.nan
    for source in (df, df.assign(colour=np.where(np.arange(n) % 2, 1.5, -2.0), size=np.nan)):
        table = model.contract.read(source)
        report = schema_module.TransformReport()
        fast = schema.transform(table, np.float32, report)
        fast_report = (report.messages(), repr(report), report.unseen_examples)
        with monkeypatch.context() as m:
            m.setattr(schema_module._NumericLayout, "into", lambda self, dense, columns: None)
            m.setattr(schema_module, "few_codes", lambda values, index: None)
            report = schema_module.TransformReport()
            slow = schema.transform(table, np.float32, report)
        for a, b in zip(fast[:2], slow[:2]):
            assert a.dtype == b.dtype
            assert_array_equal(a, b)
        assert fast_report == (report.messages(), repr(report), report.unseen_examples)


def test_tabular_reports_and_errors_on_one_row(tabular):
    model, rows = tabular
    one = rows.iloc[[3]].reset_index(drop=True)
    model.predict(one)
    assert model.last_report.unseen == {"colour": 1} and model.last_report.unseen_examples == {"colour": ["purple"]}
    model.predict(rows.iloc[[4]].reset_index(drop=True))
    assert model.last_report.missing == {"colour": 1}
    with pytest.raises(DataError, match="missing 1 column the model needs: 'b'"):
        model.predict(one.drop(columns=["b"]))
    with pytest.raises(DataError, match="missing 1 column the model needs: 'b'"):
        model.predict({k: one[k].to_numpy() for k in one.columns if k != "b"})
    with pytest.raises(DataError, match=r"row 0, column 'a': 'x' is not a number"):
        model.predict({**{k: one[k].to_numpy() for k in one.columns}, "a": np.array(["x"], dtype=object)})
    with pytest.raises(DataError, match="too large for float32"):
        model.predict(one.assign(b=1e300))
    with pytest.raises(DataError, match="duplicate column name 'a'"):
        model.predict(pd.concat([one, one[["a"]]], axis=1))
    with pytest.raises(DataError, match="cannot use values of type"):
        model.predict(one.assign(c=pd.to_datetime(["2024-01-01"])))


def test_estimator_with_a_contract_predicts_a_plain_forward_pass(tabular):
    _, rows = tabular
    df, label = _frame(600)
    est = _fit(DeltapropClassifier(hidden_layer_sizes=(8,), epochs=2, random_state=0,
                                   categorical_features="from_dtype"), df, label)
    for n in (1, 10, 1000):
        X = est.contract_.inputs(est.contract_.read(rows.iloc[:n]), est.network_.dtype)
        assert_array_equal(est.predict_proba(rows.iloc[:n]), reference(est.network_, X))
    with pytest.raises(DataError, match="missing 1 column the model needs: 'a'"):
        est.predict(rows.iloc[:1].drop(columns=["a"]))


@pytest.mark.parametrize("na_values", [None, ["-", "zz"]])
def test_text_columns_read_without_a_test_per_value_read_the_same(monkeypatch, na_values):
    """Text with gaps (None, NaN, pd.NA, NaT) skips the per-value type tests; the table is the same."""
    from deltaprop.tabular import sources

    text = ["a", " b ", None, "zz", "-", "a", "NA", "3"]
    frames = {
        "object": pd.DataFrame({"t": pd.Series(text, dtype=object)}),
        "nan": pd.DataFrame({"t": pd.Series([np.nan if v is None else v for v in text], dtype=object)}),
        "pd.NA": pd.DataFrame({"t": pd.Series(text, dtype="string")}),
        "NaT": pd.DataFrame({"t": pd.Series([pd.NaT if v is None else v for v in text], dtype=object)}),
        "numbers among text": pd.DataFrame({"t": pd.Series([1.5 if v is None else v for v in text], dtype=object)}),
        "all missing": pd.DataFrame({"t": pd.Series([None, np.nan], dtype=object)}),
    }
    sources_ = list(frames.values()) + [{"t": np.array(text, dtype=object)}, {"t": ["x", None, " y"]}]
    fast = [read_table(s, na_values=na_values) for s in sources_]
    monkeypatch.setattr(sources, "_plain_text", lambda values: False)
    slow = [read_table(s, na_values=na_values) for s in sources_]
    for a, b in zip(fast, slow):
        assert a.kinds == b.kinds and a.declared == b.declared
        assert a.columns["t"].dtype == b.columns["t"].dtype
        assert_array_equal(a.columns["t"], b.columns["t"])
        assert [type(v) for v in a.columns["t"]] == [type(v) for v in b.columns["t"]]
