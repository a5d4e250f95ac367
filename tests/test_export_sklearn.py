"""skl2onnx converts DeltapropClassifier and DeltapropRegressor, alone and in scikit-learn pipelines.

Every ONNX output is compared with what the fitted estimator (or pipeline)
computes on the same rows: labels exactly, probabilities, margins and
values within ``tol · max(1, max |expected|)`` in the max norm, with
``tol = 1e-6`` for a float32 network and ``1e-12`` for a float64 one. Each
converted model passes ``onnx.checker.check_model(full_check=True)``.
"""

import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

pytest.importorskip("skl2onnx")
ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from numpy.testing import assert_array_equal  # noqa: E402
from skl2onnx import to_onnx  # noqa: E402
from skl2onnx.common.data_types import (  # noqa: E402
    DoubleTensorType,
    FloatTensorType,
    Int64TensorType,
    StringTensorType,
)
from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.datasets import make_blobs, make_multilabel_classification, make_regression  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.pipeline import Pipeline, make_pipeline  # noqa: E402
from sklearn.preprocessing import OneHotEncoder, StandardScaler  # noqa: E402

import deltaprop as dp  # noqa: E402
from deltaprop.errors import InvalidArgumentError  # noqa: E402
from deltaprop.estimators import DeltapropClassifier, DeltapropRegressor, _onnx, register_skl2onnx  # noqa: E402

TOL = {np.dtype(np.float32): 1e-6, np.dtype(np.float64): 1e-12}
NUMERIC = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
CATEGORICAL = ["island", "sex"]
FAST = dict(epochs=30, tol=0.0, n_iter_no_change=10**6, random_state=0)


@pytest.fixture(autouse=True)
def _registered():
    register_skl2onnx()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


# ------------------------------------------------------------------ helpers
def _session(proto):
    onnx.checker.check_model(proto, full_check=True)
    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])


def _run(proto, feeds):
    return _session(proto).run(None, feeds)


def _assert_close(got, expected, dtype):
    """``max |got - expected| <= tol · max(1, max |expected|)`` for the network's dtype; returns the error."""
    got, expected = np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    assert got.shape == expected.shape
    scale = max(1.0, float(np.abs(expected).max()))
    err = float(np.abs(got - expected).max()) / scale
    assert err <= TOL[np.dtype(dtype)], f"normwise error {err:.3g} above {TOL[np.dtype(dtype)]:g}"
    return err


def _penguins():
    """Penguins (palmerpenguins) with numeric and string columns, or a synthetic table like it."""
    try:
        from palmerpenguins import load_penguins

        frame = load_penguins().dropna().reset_index(drop=True)
        frame[NUMERIC] = frame[NUMERIC].astype(np.float64)
        return frame[NUMERIC + CATEGORICAL], frame["species"].to_numpy(dtype=object)
    except ImportError:
        pd = pytest.importorskip("pandas")
        rng = np.random.default_rng(0)
        species = rng.choice(["Adelie", "Chinstrap", "Gentoo"], 300)
        shift = {"Adelie": 0.0, "Chinstrap": 1.0, "Gentoo": 2.0}
        frame = pd.DataFrame({c: rng.normal(size=300) + np.array([shift[s] for s in species]) * (j + 1)
                              for j, c in enumerate(NUMERIC)})
        frame["island"] = rng.choice(["Biscoe", "Dream", "Torgersen"], 300)
        frame["sex"] = rng.choice(["male", "female"], 300)
        return frame, species.astype(object)


def _column_feeds(frame, numeric_dtype):
    feeds = {c: frame[c].to_numpy().astype(numeric_dtype).reshape(-1, 1) for c in NUMERIC}
    feeds.update({c: frame[c].to_numpy().astype(object).reshape(-1, 1) for c in CATEGORICAL})
    return feeds


def _column_types(numeric_type):
    return [(c, numeric_type([None, 1])) for c in NUMERIC] + [(c, StringTensorType([None, 1])) for c in CATEGORICAL]


def _penguin_pipeline(**params):
    frame, y = _penguins()
    pre = ColumnTransformer([("num", StandardScaler(), NUMERIC),
                             ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), CATEGORICAL)])
    pipe = Pipeline([("pre", pre), ("clf", DeltapropClassifier(hidden_layer_sizes=(16, 8), **FAST, **params))])
    return pipe.fit(frame, y), frame


def _blobs(n_classes, n=120, labels=None):
    X, y = make_blobs(n_samples=n, centers=n_classes, n_features=5, random_state=0)
    return X, (y if labels is None else np.asarray(labels)[y])


def _matrix_onnx(estimator, X, zipmap=False, **kwargs):
    """Convert ``estimator`` alone with one input ``X`` of X's dtype, and run it on ``X``."""
    kind = DoubleTensorType if X.dtype == np.float64 else FloatTensorType
    options = {id(estimator): {"zipmap": zipmap}} if isinstance(estimator, DeltapropClassifier) else None
    proto = to_onnx(estimator, initial_types=[("X", kind([None, X.shape[1]]))], options=options, **kwargs)
    return proto, _run(proto, {"X": X})


# ---------------------------------------------------------------- pipelines
@pytest.mark.parametrize("numeric_type", [FloatTensorType, DoubleTensorType])
def test_penguin_pipeline_without_zipmap(numeric_type):
    pipe, frame = _penguin_pipeline(dtype="float32")
    clf = pipe[-1]
    proto = to_onnx(pipe, initial_types=_column_types(numeric_type), options={id(clf): {"zipmap": False}})
    label, proba = _run(proto, _column_feeds(frame, np.float32 if numeric_type is FloatTensorType else np.float64))
    assert_array_equal(label, pipe.predict(frame))
    assert label.dtype == object and proba.shape == (len(frame), 3)
    assert proba.dtype == (np.float32 if numeric_type is FloatTensorType else np.float64)
    _assert_close(proba, pipe.predict_proba(frame), np.float32)


def test_penguin_pipeline_with_zipmap():
    pipe, frame = _penguin_pipeline(dtype="float32")
    proto = to_onnx(pipe, initial_types=_column_types(FloatTensorType))
    assert any(node.op_type == "ZipMap" for node in proto.graph.node)
    label, dicts = _run(proto, _column_feeds(frame, np.float32))
    assert_array_equal(label, pipe.predict(frame))
    assert isinstance(dicts, list) and sorted(dicts[0]) == sorted(pipe.classes_)
    proba = np.array([[row[c] for c in pipe.classes_] for row in dicts])
    _assert_close(proba, pipe.predict_proba(frame), np.float32)


def test_zipmap_columns_and_nocl():
    pipe, frame = _penguin_pipeline(dtype="float32")
    clf = pipe[-1]
    feeds = _column_feeds(frame, np.float32)
    proto = to_onnx(pipe, initial_types=_column_types(FloatTensorType), options={id(clf): {"zipmap": "columns"}})
    label, *columns = _run(proto, feeds)
    assert_array_equal(label, pipe.predict(frame))
    _assert_close(np.stack(columns, axis=1), pipe.predict_proba(frame), np.float32)
    proto = to_onnx(pipe, initial_types=_column_types(FloatTensorType),
                    options={id(clf): {"zipmap": False, "nocl": True}})
    index, _ = _run(proto, feeds)
    assert index.dtype == np.int64
    assert_array_equal(clf.classes_[index], pipe.predict(frame))


def test_regressor_pipeline_float64():
    X, y = make_regression(n_samples=150, n_features=6, noise=0.1, random_state=0)
    pipe = make_pipeline(StandardScaler(), DeltapropRegressor(hidden_layer_sizes=(16,), dtype="float64", **FAST))
    pipe.fit(X, y)
    proto = to_onnx(pipe, initial_types=[("X", DoubleTensorType([None, 6]))])
    (values,) = _run(proto, {"X": X})
    assert values.shape == (len(X), 1) and values.dtype == np.float64  # skl2onnx writes one target as (N, 1)
    _assert_close(values[:, 0], pipe.predict(X), np.float64)


def test_regressor_several_targets_float_input():
    X, y = make_regression(n_samples=100, n_features=4, n_targets=3, random_state=1)
    reg = DeltapropRegressor(hidden_layer_sizes=(8,), dtype="float32", **FAST).fit(X.astype(np.float32), y)
    _, (values,) = _matrix_onnx(reg, X.astype(np.float32))
    assert values.shape == (len(X), 3) and values.dtype == np.float32
    _assert_close(values, reg.predict(X.astype(np.float32)), np.float32)


# ----------------------------------------------------------- target kinds
def test_binary_string_classes():
    X, y = _blobs(2, labels=["no", "yes"])
    clf = DeltapropClassifier(hidden_layer_sizes=(8,), **FAST).fit(X, y)
    proto, (label, proba) = _matrix_onnx(clf, X)
    assert label.dtype == object
    assert_array_equal(label, clf.predict(X))
    _assert_close(proba, clf.predict_proba(X), np.float64)
    assert proto.graph.output[1].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE


@pytest.mark.parametrize("opset", [13, 17, None])
def test_multiclass_int_classes(opset):
    X, y = _blobs(4, labels=[3, 7, 11, 20])
    clf = DeltapropClassifier(hidden_layer_sizes=(8,), norm="layer", **FAST).fit(X, y)
    _, (label, proba) = _matrix_onnx(clf, X, target_opset=opset)
    assert label.dtype == np.int64
    assert_array_equal(label, clf.predict(X))
    _assert_close(proba, clf.predict_proba(X), np.float64)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_hinge_margins(n_classes):
    X, y = _blobs(n_classes)
    clf = DeltapropClassifier(hidden_layer_sizes=(8,), loss="hinge", **FAST).fit(X, y)
    _, (label, scores) = _matrix_onnx(clf, X)
    assert_array_equal(label, clf.predict(X))
    margins = clf.decision_function(X)
    if n_classes == 2:  # [-m, m], as skl2onnx writes a binary linear classifier
        assert scores.shape == (len(X), 2)
        _assert_close(scores[:, 0], -margins, np.float64)
        margins, scores = margins, scores[:, 1]
    _assert_close(scores, margins, np.float64)
    X32 = X.astype(np.float32)  # ONNX's ZipMap takes float only; the margins too, two columns for two classes
    label_z, dicts = _run(to_onnx(clf, initial_types=[("X", FloatTensorType([None, 5]))]), {"X": X32})
    assert_array_equal(label_z, clf.predict(X32))
    assert len(dicts[0]) == n_classes


def test_multilabel():
    X, Y = make_multilabel_classification(n_samples=120, n_features=6, n_classes=3, random_state=0)
    clf = DeltapropClassifier(hidden_layer_sizes=(8,), **FAST).fit(X.astype(np.float32), Y.astype(np.int32))
    _, (label, proba) = _matrix_onnx(clf, X.astype(np.float32))
    expected = clf.predict(X.astype(np.float32))
    assert label.dtype == expected.dtype == np.int32 and label.shape == (len(X), 3)
    assert_array_equal(label, expected)
    _assert_close(proba, clf.predict_proba(X.astype(np.float32)), np.float32)


def test_bool_classes_and_int_input():
    X, y = _blobs(2)
    X = np.rint(X * 3)
    clf = DeltapropClassifier(hidden_layer_sizes=(8,), dtype="float32", **FAST).fit(X, y.astype(bool))
    proto = to_onnx(clf, initial_types=[("X", Int64TensorType([None, 5]))], options={id(clf): {"zipmap": False}})
    label, proba = _run(proto, {"X": X.astype(np.int64)})
    assert label.dtype == np.bool_
    assert_array_equal(label, clf.predict(X))
    _assert_close(proba, clf.predict_proba(X), np.float32)


# ------------------------------------------------------- dp.export_onnx
def test_export_onnx_estimators(tmp_path):
    X, y = _blobs(3, labels=["a", "b", "c"])
    clf = DeltapropClassifier(hidden_layer_sizes=(8,), dtype="float32", **FAST).fit(X, y)
    dp.export_onnx(clf, tmp_path / "clf.onnx")
    session = ort.InferenceSession(str(tmp_path / "clf.onnx"), providers=["CPUExecutionProvider"])
    label, proba = session.run(None, dp.export.onnx_feeds(clf, X))
    assert_array_equal(label, clf.predict(X))
    _assert_close(proba, clf.predict_proba(X), np.float32)
    clf.save(tmp_path / "clf.safetensors")  # an estimator loaded from its model file exports the same
    label, _ = _run(dp.export.to_onnx(DeltapropClassifier.load(tmp_path / "clf.safetensors")),
                    dp.export.onnx_feeds(clf, X))
    assert_array_equal(label, clf.predict(X))

    Xr, yr = make_regression(n_samples=100, n_features=5, random_state=0)
    reg = DeltapropRegressor(hidden_layer_sizes=(8,), **FAST).fit(Xr, yr)
    proto = dp.export_onnx(reg, tmp_path / "reg.onnx")
    (values,) = _run(proto, {"X": Xr})
    assert values.shape == (len(Xr),)  # as predict: (N,) for a 1-D y
    _assert_close(values, reg.predict(Xr), np.float64)


def test_export_onnx_binary_and_hinge(tmp_path):
    X, y = _blobs(2, labels=[-1, 1])
    for loss in ("log_loss", "hinge"):
        clf = DeltapropClassifier(hidden_layer_sizes=(8,), loss=loss, **FAST).fit(X, y)
        proto = dp.export_onnx(clf, tmp_path / f"{loss}.onnx")
        label, second = _run(proto, {"X": X})
        assert_array_equal(label, clf.predict(X))
        if loss == "hinge":
            assert [o.name for o in proto.graph.output] == ["label", "scores"]
            _assert_close(second[:, 0], clf.decision_function(X), np.float64)
        else:
            _assert_close(second, clf.predict_proba(X), np.float64)


def test_unfitted_estimator_is_refused():
    with pytest.raises(Exception, match="not fitted"):
        dp.export.to_onnx(DeltapropClassifier())


# --------------------------------------------------- layers and data contract
@pytest.mark.parametrize("options", [dict(norm="batch"), dict(residual=True, norm="layer"),
                                     dict(residual=True, norm="batch", dropout=0.2)])
def test_resnet_options(options):
    X, y = _blobs(3)
    clf = DeltapropClassifier(hidden_layer_sizes=(8, 8), dtype="float32", **FAST, **options).fit(X, y)
    X32 = X.astype(np.float32)
    _, (label, proba) = _matrix_onnx(clf, X32)
    assert_array_equal(label, clf.predict(X32))
    _assert_close(proba, clf.predict_proba(X32), np.float32)
    Xr, yr = make_regression(n_samples=120, n_features=5, random_state=0)
    reg = DeltapropRegressor(hidden_layer_sizes=(8, 8), **FAST, **options).fit(Xr, yr)
    pipe = make_pipeline(StandardScaler(), reg).fit(Xr, yr)
    (values,) = _run(to_onnx(pipe, initial_types=[("X", DoubleTensorType([None, 5]))]), {"X": Xr})
    _assert_close(values[:, 0], pipe.predict(Xr), np.float64)


def test_data_contract_columns():
    frame, y = _penguins()
    clf = DeltapropClassifier(hidden_layer_sizes=(8,), **FAST).fit(frame, y)
    assert clf.contract_ is not None
    proto = to_onnx(clf, initial_types=_column_types(DoubleTensorType), options={id(clf): {"zipmap": False}})
    label, proba = _run(proto, _column_feeds(frame, np.float64))
    assert_array_equal(label, clf.predict(frame))
    _assert_close(proba, clf.predict_proba(frame), np.float64)
    label, proba = _run(to_onnx(clf, X=frame[:1], options={id(clf): {"zipmap": False}}),  # types from the frame
                        dp.export.onnx_feeds(clf, frame))
    assert_array_equal(label, clf.predict(frame))
    _assert_close(proba, clf.predict_proba(frame), np.float64)
    label, proba = _run(dp.export.to_onnx(clf), dp.export.onnx_feeds(clf, frame))  # deltaprop's own route
    assert_array_equal(label, clf.predict(frame))
    _assert_close(proba, clf.predict_proba(frame), np.float64)
    with pytest.raises(InvalidArgumentError, match="data contract"):
        to_onnx(clf, initial_types=[("X", DoubleTensorType([None, 6]))])


def test_data_contract_numeric_matrix():
    pd = pytest.importorskip("pandas")
    X, y = make_regression(n_samples=120, n_features=4, random_state=0)
    X[::7, 1] = np.nan  # a gap: the contract imputes it
    frame = pd.DataFrame(X, columns=list("abcd"))
    reg = DeltapropRegressor(hidden_layer_sizes=(8,), **FAST).fit(frame, y)
    assert reg.contract_ is not None
    (values,) = _run(to_onnx(reg, initial_types=[("X", DoubleTensorType([None, 4]))]), {"X": X})
    _assert_close(values[:, 0], reg.predict(frame), np.float64)


def test_wrong_width_is_refused():
    X, y = _blobs(2)
    clf = DeltapropClassifier(hidden_layer_sizes=(4,), **FAST).fit(X, y)
    with pytest.raises(InvalidArgumentError, match="fitted on 5 features"):
        to_onnx(clf, initial_types=[("X", DoubleTensorType([None, 3]))])


# ------------------------------------------------------------- registration
def test_unregistered_conversion_says_what_to_call(monkeypatch):
    X, y = _blobs(2)
    clf = DeltapropClassifier(hidden_layer_sizes=(4,), **FAST).fit(X, y)
    from skl2onnx._parse import sklearn_parsers_map
    from skl2onnx._supported_operators import sklearn_operator_name_map

    monkeypatch.setattr(_onnx, "_registered", False)  # as before register_skl2onnx (restored afterwards)
    monkeypatch.delitem(sklearn_operator_name_map, DeltapropClassifier)
    monkeypatch.delitem(sklearn_parsers_map, DeltapropClassifier)
    with pytest.raises(RuntimeError, match=r"register_skl2onnx\(\)"):
        to_onnx(clf, initial_types=[("X", DoubleTensorType([None, 5]))])
    _onnx.register_if_loaded()  # skl2onnx is loaded: registers
    assert _onnx._registered


@pytest.mark.slow  # a fresh interpreter: about 5 s importing scikit-learn and skl2onnx
def test_import_does_not_load_skl2onnx_and_registration_is_explicit():
    code = textwrap.dedent("""
        import sys
        import numpy as np
        import deltaprop.estimators as est
        assert "skl2onnx" not in sys.modules and "onnx" not in sys.modules
        from skl2onnx import to_onnx
        from skl2onnx.common.data_types import DoubleTensorType
        X = np.arange(40.0).reshape(20, 2) % 7
        reg = est.DeltapropRegressor(hidden_layer_sizes=(3,), epochs=2).fit(X, X[:, 0])
        types = [("X", DoubleTensorType([None, 2]))]
        try:
            to_onnx(reg, initial_types=types)
        except RuntimeError as exc:
            assert "register_skl2onnx()" in str(exc), exc
        else:
            raise AssertionError("converted before register_skl2onnx()")
        est.register_skl2onnx()
        est.register_skl2onnx()
        to_onnx(reg, initial_types=types)
        print("ok")
    """)
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
