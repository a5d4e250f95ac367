"""The estimators on real tables: DataFrames with categories and gaps, scipy sparse X, ConvergenceWarning, files.

Every fit is seeded; comparisons are exact (``assert_array_equal``) unless a
tolerance is stated.
"""

import json
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import deltaprop as dp
from deltaprop.errors import DataError, InvalidArgumentError, ModelFileError
from deltaprop.estimators import DeltapropClassifier, DeltapropRegressor
from deltaprop.sparse import OneHotMatrix

pd = pytest.importorskip("pandas")
sp = pytest.importorskip("scipy.sparse")

#: no run of all epochs stops on the n_iter_no_change rule
ALL_EPOCHS = dict(tol=0.0, n_iter_no_change=10**6)


pytestmark = pytest.mark.usefixtures("one_blas_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def penguins():
    """palmerpenguins: strings (island, sex, species) and NaN; a stratified 75/25 split."""
    palmerpenguins = pytest.importorskip("palmerpenguins")
    df = palmerpenguins.load_penguins()
    X, y = df.drop(columns="species"), df["species"]
    assert X["sex"].isna().any() and X["bill_length_mm"].isna().any()  # the gaps this file is about
    return train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)


def _clf(**kw):
    params = dict(hidden_layer_sizes=(16,), epochs=30, learning_rate=0.01, random_state=0, **ALL_EPOCHS)
    params.update(kw)
    return DeltapropClassifier(**params)


def _fit_quiet(est, X, y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y, **kw)


@pytest.fixture(scope="module")
def fitted(penguins):
    Xtr, Xte, ytr, yte = penguins
    return _fit_quiet(_clf(), Xtr, ytr)


# ---------------------------------------------------------------- DataFrames
def test_penguins_dataframe_fits_and_scores(penguins, fitted):
    Xtr, Xte, ytr, yte = penguins
    clf = fitted
    assert clf.score(Xte, yte) > 0.9
    assert clf.n_features_in_ == 7  # DataFrame columns, not network inputs
    assert list(clf.feature_names_in_) == list(Xtr.columns)
    schema = clf.contract_.schema
    assert clf.network_.n_in == schema.n_inputs > clf.n_features_in_
    assert [c.name for c in schema.categorical] == ["island", "sex"]
    assert list(clf.classes_) == ["Adelie", "Chinstrap", "Gentoo"]
    # an "other" slot that pooled no category starts (and, never active in training, stays) at zero weight
    unused = schema.unused_inputs()
    assert len(unused) == 2
    assert_array_equal(clf.network_.layers[0].W[:, unused], 0.0)


def test_reordered_and_extra_columns_give_identical_predictions(penguins, fitted):
    Xte = penguins[1]
    proba = fitted.predict_proba(Xte)
    shuffled = Xte[list(Xte.columns[::-1])].assign(comment="ignored")
    assert_array_equal(fitted.predict_proba(shuffled), proba)
    assert_array_equal(fitted.predict(shuffled), fitted.predict(Xte))


def test_missing_column_is_an_error_naming_it(penguins, fitted):
    with pytest.raises(DataError, match="'flipper_length_mm'"):
        fitted.predict(penguins[1].drop(columns="flipper_length_mm"))


def test_unseen_category_and_nan_at_predict_time(penguins, fitted):
    Xte = penguins[1].iloc[:5].copy()
    base = fitted.predict_proba(Xte)
    odd = Xte.copy()
    odd["island"] = "Atlantis"  # never seen
    odd["bill_depth_mm"] = np.nan  # none missing in training for some rows
    odd.loc[odd.index[0], "sex"] = None
    proba = fitted.predict_proba(odd)
    assert proba.shape == base.shape and np.isfinite(proba).all()
    assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    # an unseen category's one-hot slot has zero weight: the same output as "no island at all"
    W = fitted.network_.layers[0].W
    schema = fitted.contract_.schema
    other = schema.input_names().index("island (other)")
    assert_array_equal(W[:, other], 0.0)


def test_polars_gives_the_pandas_predictions(penguins, fitted):
    pl = pytest.importorskip("polars")
    Xtr, Xte, ytr, yte = penguins
    assert_array_equal(fitted.predict_proba(pl.from_pandas(Xte)), fitted.predict_proba(Xte))
    twin = _fit_quiet(_clf(), pl.from_pandas(Xtr), ytr.to_numpy())
    assert_array_equal(twin.network_.params, fitted.network_.params)
    assert list(twin.feature_names_in_) == list(Xtr.columns)


def test_numeric_dataframe_is_its_to_numpy(penguins):
    """A DataFrame that scikit-learn takes as it is (numbers, no gaps) trains exactly like its .to_numpy()."""
    Xtr, _, ytr, _ = penguins
    num = Xtr[["bill_length_mm", "bill_depth_mm", "flipper_length_mm"]].dropna()
    num = (num - num.mean()) / num.std()
    y = ytr.loc[num.index]
    a = _fit_quiet(_clf(epochs=5), num, y)
    b = _fit_quiet(_clf(epochs=5), num.to_numpy(), y)
    assert a.contract_ is None
    assert_array_equal(a.network_.params, b.network_.params)
    assert list(a.feature_names_in_) == list(num.columns)
    # an explicit categorical_features list (empty here) asks for the contract: scaling, columns by name
    c = _fit_quiet(_clf(epochs=5, categorical_features=[]), num, y)
    assert c.contract_ is not None and c.contract_.schema.categorical == []
    assert_array_equal(c.predict_proba(num[num.columns[::-1]]), c.predict_proba(num))


def test_categorical_features_by_name_and_index(penguins):
    Xtr, _, ytr, _ = penguins
    by_name = _fit_quiet(_clf(epochs=2, categorical_features=["year"]), Xtr, ytr)
    by_index = _fit_quiet(_clf(epochs=2, categorical_features=[6]), Xtr, ytr)
    assert [c.name for c in by_name.contract_.schema.categorical] == ["island", "sex", "year"]
    assert_array_equal(by_name.network_.params, by_index.network_.params)


def test_categorical_features_none_refuses_text_and_preprocess_none_uses_validate_data(penguins):
    Xtr, _, ytr, _ = penguins
    with pytest.raises(InvalidArgumentError, match=r"not numeric \(\['island', 'sex'\]\).*categorical_features=None"):
        _clf(categorical_features=None).fit(Xtr, ytr)
    with pytest.raises(ValueError):
        _clf(preprocess=None).fit(Xtr, ytr)  # scikit-learn's own error for strings
    with pytest.raises(InvalidArgumentError, match="preprocess must be 'auto' or None"):
        _clf(preprocess="always").fit(Xtr, ytr)
    with pytest.raises(InvalidArgumentError, match="categorical_features must"):
        _clf(categorical_features="island").fit(Xtr, ytr)
    with pytest.raises(InvalidArgumentError, match="names columns of a pandas or polars DataFrame"):
        _clf(categorical_features=[0]).fit(np.zeros((4, 2)), [0, 1, 0, 1])


def test_partial_fit_fits_the_contract_once(penguins):
    Xtr, Xte, ytr, yte = penguins
    clf = DeltapropClassifier(hidden_layer_sizes=(16,), learning_rate=0.01, random_state=0)
    first, second = Xtr.iloc[:120], Xtr.iloc[120:]
    clf.partial_fit(first, ytr.iloc[:120], classes=["Adelie", "Chinstrap", "Gentoo"])
    contract = clf.contract_
    state = json.dumps(contract.state())
    for _ in range(20):
        clf.partial_fit(second[second.columns[::-1]], ytr.iloc[120:])
        clf.partial_fit(first, ytr.iloc[:120])
    assert clf.contract_ is contract and json.dumps(clf.contract_.state()) == state
    assert clf.score(Xte, yte) > 0.9


def test_regressor_on_a_dataframe_with_gaps(penguins):
    Xtr, Xte, _, _ = penguins
    keep_tr, keep_te = Xtr["body_mass_g"].notna(), Xte["body_mass_g"].notna()
    y = (Xtr.loc[keep_tr, "body_mass_g"] - 4200.0) / 800.0
    reg = DeltapropRegressor(hidden_layer_sizes=(16,), epochs=60, learning_rate=0.01, random_state=0, **ALL_EPOCHS)
    _fit_quiet(reg, Xtr.loc[keep_tr].drop(columns="body_mass_g"), y)
    assert reg.contract_ is not None and reg.n_features_in_ == 6
    yte = (Xte.loc[keep_te, "body_mass_g"] - 4200.0) / 800.0
    assert reg.score(Xte.loc[keep_te], yte) > 0.7  # the target column, present here, is an extra: ignored


def test_cross_val_score_grid_search_clone(penguins):
    Xtr, _, ytr, _ = penguins
    est = _clf(epochs=20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        scores = cross_val_score(est, Xtr, ytr, cv=StratifiedKFold(3, shuffle=True, random_state=0))
    assert scores.shape == (3,) and scores.min() > 0.9
    twin = clone(est)
    assert "contract_" not in vars(twin) and twin.get_params() == est.get_params()
    grid = GridSearchCV(_clf(epochs=20), {"hidden_layer_sizes": [(4,), (16,)]}, cv=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        grid.fit(Xtr, ytr)
    assert grid.best_score_ > 0.9
    assert grid.best_estimator_.contract_ is not None


# ------------------------------------------------------------------- files
def test_save_load_keeps_the_contract(tmp_path, penguins, fitted):
    Xte = penguins[1]
    path = tmp_path / "penguins.safetensors"
    fitted.save(path)
    back = DeltapropClassifier.load(path)
    assert back.n_features_in_ == 7 and list(back.feature_names_in_) == list(Xte.columns)
    assert json.dumps(back.contract_.state()) == json.dumps(fitted.contract_.state())
    assert_array_equal(back.predict_proba(Xte), fitted.predict_proba(Xte))
    assert_array_equal(back.predict_proba(Xte[Xte.columns[::-1]]), fitted.predict_proba(Xte))
    assert isinstance(dp.load(path), dp.Network)  # still a plain model file


def _rewrite_record(src, dst, change):
    from deltaprop.io import load, save

    net = load(src)
    record = json.loads(net.metadata["sklearn_estimator"])
    change(record)
    save(net, dst, classes=net.classes, config=json.loads(net.metadata["config"]),
         extra={"sklearn_estimator": record})


@pytest.mark.parametrize("change, match", [
    (lambda r: r["contract"]["schema"]["columns"][1].update(scale=-1.0), "data contract is invalid"),
    (lambda r: r.update(contract=[1, 2]), "sklearn_estimator.contract: expected null or an object"),
    (lambda r: r["contract"]["schema"]["columns"].pop(), "data contract"),
    (lambda r: r.update(n_features_in=2), "n_features_in"),
])
def test_malformed_contract_is_a_model_file_error(tmp_path, fitted, change, match):
    good, bad = tmp_path / "good.safetensors", tmp_path / "bad.safetensors"
    fitted.save(good)
    _rewrite_record(good, bad, change)
    with pytest.raises(ModelFileError, match=f"bad.safetensors.*{match}"):
        DeltapropClassifier.load(bad)


# ------------------------------------------------------------------ sparse X
def _grunfeld_pipeline(sparse, dtype):
    ct = ColumnTransformer([("num", StandardScaler(), ["value", "capital", "year"]),
                            ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=sparse), ["firm"])],
                           sparse_threshold=1.0 if sparse else 0.0)
    reg = DeltapropRegressor(hidden_layer_sizes=(16,), epochs=30, learning_rate=0.01, random_state=0, dtype=dtype,
                             **ALL_EPOCHS)
    return make_pipeline(ct, reg)


@pytest.mark.parametrize("dtype, atol", [("float64", 1e-10), ("float32", 1e-6)])
def test_sparse_one_hot_pipeline_matches_dense(dtype, atol):
    """The user's grunfeld case: OneHotEncoder's sparse output trains and predicts, as its dense output does."""
    grunfeld = pytest.importorskip("statsmodels.datasets.grunfeld")
    df = grunfeld.load_pandas().data
    X, y = df.drop(columns="invest"), df["invest"].to_numpy()
    y = (y - y.mean()) / y.std()
    sparse = _fit_quiet(_grunfeld_pipeline(True, dtype), X, y)
    dense = _fit_quiet(_grunfeld_pipeline(False, dtype), X, y)
    assert sp.issparse(sparse[0].transform(X))
    assert sparse.score(X, y) > 0.8
    # float32 predictions are O(1): atol 1e-6 with rtol 1e-6 (a few float32 ulps after 30 epochs of rounding)
    assert_allclose(sparse.predict(X), dense.predict(X), rtol=1e-6 if dtype == "float32" else 0.0, atol=atol)


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
def test_sparse_formats_predict_like_dense(fmt):
    rng = np.random.default_rng(0)
    X = sp.random(60, 12, density=0.3, format=fmt, random_state=0, dtype=np.float64)
    y = rng.integers(0, 3, 60)
    clf = _fit_quiet(_clf(epochs=5), X, y)
    dense = _fit_quiet(_clf(epochs=5), X.toarray(), y)
    assert_allclose(clf.network_.params, dense.network_.params, rtol=0, atol=1e-12)
    assert_allclose(clf.predict_proba(X), clf.predict_proba(X.toarray()), rtol=0, atol=1e-12)
    assert clf.n_features_in_ == 12


def test_sparse_is_not_densified_for_training(monkeypatch):
    """The network receives SparseRows (CSR), never the dense array."""
    from deltaprop import training
    from deltaprop.sparse import SparseRows

    seen = []
    real_fit = training.fit

    def spy(network, X, y, **kw):
        seen.append(type(X))
        return real_fit(network, X, y, **kw)

    monkeypatch.setattr(training, "fit", spy)
    X = sp.random(40, 30, density=0.1, format="csr", random_state=1)
    _fit_quiet(_clf(epochs=2, early_stopping=True), X, np.arange(40) % 2)
    assert seen == [SparseRows]


def test_dataframe_inputs_reach_the_network_as_one_hot(monkeypatch, penguins):
    from deltaprop import training

    seen = []
    real_fit = training.fit
    monkeypatch.setattr(training, "fit", lambda net, X, y, **kw: (seen.append(type(X)), real_fit(net, X, y, **kw)))
    Xtr, _, ytr, _ = penguins
    _fit_quiet(_clf(epochs=1), Xtr, ytr)
    assert seen == [OneHotMatrix]


# ------------------------------------------------------- ConvergenceWarning
def test_convergence_warning_at_max_epochs(penguins):
    Xtr, _, ytr, _ = penguins
    with pytest.warns(ConvergenceWarning, match=r"maximum number of epochs \(3\) was reached"):
        DeltapropClassifier(hidden_layer_sizes=(8,), epochs=3, random_state=0).fit(Xtr, ytr)


def test_no_convergence_warning_when_the_rule_stopped_it(penguins):
    Xtr, _, ytr, _ = penguins
    clf = DeltapropClassifier(hidden_layer_sizes=(8,), epochs=500, learning_rate=0.01, early_stopping=True,
                              n_iter_no_change=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf.fit(Xtr, ytr)
    assert clf.stopped_early_ and clf.n_iter_ < 500


def test_no_convergence_warning_from_partial_fit(penguins):
    Xtr, _, ytr, _ = penguins
    clf = DeltapropClassifier(hidden_layer_sizes=(8,), epochs=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf.partial_fit(Xtr, ytr, classes=np.unique(ytr))
        clf.partial_fit(Xtr, ytr)


def test_dataframe_with_float32_early_stopping_and_sample_weight(penguins):
    Xtr, Xte, ytr, yte = penguins
    clf = _fit_quiet(_clf(dtype="float32", early_stopping=True), Xtr, ytr)
    assert clf.network_.dtype == np.float32 and clf.predict_proba(Xte).dtype == np.float32
    assert len(clf.validation_scores_) == 30
    plain = _fit_quiet(_clf(epochs=5), Xtr, ytr)
    weighted = _fit_quiet(_clf(epochs=5), Xtr, ytr, sample_weight=np.ones(len(ytr)))
    assert_array_equal(weighted.network_.params, plain.network_.params)  # weights of 1: the unweighted fit
    with pytest.raises(ValueError, match="sample_weight"):
        _clf(epochs=1).fit(Xtr, ytr, sample_weight=np.ones(3))


def test_polars_numeric_frame_uses_the_contract_only_with_gaps():
    pl = pytest.importorskip("polars")
    rng = np.random.default_rng(0)
    values = rng.normal(size=(40, 3))
    y = np.arange(40) % 2
    clean = pl.DataFrame({"a": values[:, 0], "b": values[:, 1], "c": values[:, 2]})
    plain = _fit_quiet(_clf(epochs=2), clean, y)
    assert plain.contract_ is None
    assert_array_equal(plain.network_.params, _fit_quiet(_clf(epochs=2), values, y).network_.params)
    for gap in (clean.with_columns(pl.when(pl.int_range(40) == 3).then(None).otherwise(pl.col("a")).alias("a")),
                clean.with_columns(pl.when(pl.int_range(40) == 3).then(float("nan")).otherwise(pl.col("b"))
                                   .alias("b"))):
        est = _fit_quiet(_clf(epochs=2), gap, y)
        assert est.contract_ is not None and est.contract_.schema.categorical == []
        assert np.isfinite(est.predict_proba(gap)).all()
