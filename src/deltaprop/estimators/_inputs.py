"""What an estimator's ``X`` becomes: arrays and sparse matrices as they are, tables through a data contract.

Three kinds of ``X`` reach :class:`DeltapropClassifier` and :class:`DeltapropRegressor`:

- a NumPy array, or a DataFrame that scikit-learn's ``validate_data``
  accepts as it is (every column numeric or bool, no missing value): checked
  by ``validate_data`` and used as its ``to_numpy()``, exactly as
  scikit-learn's MLP would;
- a scipy sparse matrix (any format; CSR or CSC after ``validate_data``):
  wrapped in :class:`deltaprop.sparse.SparseRows`, so the first layer
  multiplies its stored values only and the matrix is never densified;
- a pandas or polars DataFrame with categorical (category, string, object)
  columns or missing values, or with an explicit ``categorical_features``
  list: read by :func:`deltaprop.tabular.read_table` and mapped to network
  inputs by a :class:`deltaprop.tabular.DataContract` fitted on the training
  rows (median imputation with missing indicators, standard scaling of the
  numeric columns, one-hot categories with rare ones pooled), given to the
  network as a :class:`deltaprop.sparse.OneHotMatrix`.

DataFrames are found by duck typing: neither pandas nor polars is imported.
"""

import numbers

import numpy as np
from sklearn.utils.validation import _check_feature_names, _check_y, check_consistent_length, validate_data

from ..checks import CHUNK_ELEMENTS, check_dtype, chunk_rows
from ..errors import DeltapropError, InvalidArgumentError, InvalidTypeError, ModelFileError, describe
from ..sparse import SparseRows, is_scipy_sparse
from ..tabular.contract import DataContract
from ..tabular.schema import Schema
from ..tabular.table import read_table

__all__ = ["FLOAT_DTYPES", "SPARSE_FORMATS", "is_dataframe", "check_categorical_features", "check_preprocess",
           "wants_contract", "fit_contract", "fit_inputs", "contract_inputs", "as_rows", "contract_from_state",
           "plain_rows"]

FLOAT_DTYPES = [np.float64, np.float32]
#: sparse formats that validate_data passes through (others become CSR); the network takes them as SparseRows
SPARSE_FORMATS = ("csr", "csc")

#: numeric kinds that scikit-learn's validation turns into floats as they are (bool becomes 0/1)
_NUMERIC_KINDS = frozenset("biuf")


def _module_of(obj):
    return type(obj).__module__ or ""


def _is_pandas(X):
    return _module_of(X).startswith("pandas") and hasattr(X, "iloc") and hasattr(X, "dtypes")


def _is_polars(X):
    return _module_of(X).startswith("polars") and hasattr(X, "get_column") and hasattr(X, "schema")


def is_dataframe(X):
    """Whether ``X`` is a pandas or polars DataFrame (duck typing: neither library is imported)."""
    return _is_pandas(X) or _is_polars(X)


def _column_names(X):
    """The DataFrame's column names as Python values (ints stay ints: pandas allows them)."""
    return list(X.columns)


def _non_numeric_and_missing(X):
    """``(names of the columns that are not numeric or bool, whether any cell is missing)`` of a DataFrame."""
    if _is_pandas(X):
        kinds = [getattr(dt, "kind", "O") for dt in X.dtypes]
        other = [name for name, kind in zip(_column_names(X), kinds) if kind not in _NUMERIC_KINDS]
        missing = bool(np.asarray(X.isna()).any())
        return other, missing
    other, missing = [], False
    for name, dt in zip(X.columns, X.dtypes):
        numeric = dt.is_numeric() or str(dt) == "Boolean"
        if not numeric:
            other.append(name)
        column = X.get_column(name)
        if column.null_count() or (numeric and dt.is_float() and bool(column.is_nan().any())):
            missing = True
    return other, missing


def check_preprocess(preprocess):
    """``preprocess`` must be "auto" or None."""
    if preprocess is not None and preprocess != "auto":
        raise InvalidArgumentError(f"preprocess must be 'auto' or None, got {describe(preprocess)}")


def check_categorical_features(spec):
    """``categorical_features``: "from_dtype", None, or a list of column names or indices."""
    if spec is None or (isinstance(spec, str) and spec == "from_dtype"):
        return
    if isinstance(spec, (str, bytes, dict, set)) or not hasattr(spec, "__iter__"):
        raise InvalidArgumentError(
            f"categorical_features must be 'from_dtype', None or a list of column names or indices, "
            f"got {describe(spec)}"
        )
    for item in spec:
        if not (isinstance(item, str) or (isinstance(item, numbers.Integral) and not isinstance(item, bool))):
            raise InvalidArgumentError(
                f"categorical_features must list column names (str) or indices (int), got {describe(item)} "
                f"in {describe(spec)}"
            )


def wants_contract(X, categorical_features, preprocess):
    """Whether a first fit on ``X`` goes through a data contract (see the module's docstring).

    Raises
    ------
    InvalidArgumentError
        ``categorical_features=None`` with a DataFrame column that is not
        numeric; a ``categorical_features`` list with an array.
    """
    explicit = categorical_features is not None and not isinstance(categorical_features, str)
    if preprocess is None or not is_dataframe(X):
        if explicit and preprocess is not None and not is_dataframe(X):
            raise InvalidArgumentError(
                f"categorical_features={describe(categorical_features)} names columns of a pandas or polars "
                f"DataFrame, but X is {describe(X)}; pass a DataFrame, or categorical_features='from_dtype'"
            )
        return False
    if explicit:
        return True
    other, missing = _non_numeric_and_missing(X)
    if other and categorical_features is None:
        raise InvalidArgumentError(
            f"X has columns that are not numeric ({describe([str(c) for c in other])}) but "
            f"categorical_features=None treats none as categorical; use categorical_features='from_dtype' "
            f"or encode them"
        )
    return bool(other) or missing


def _forced_names(X, categorical_features):
    """A ``categorical_features`` list as the DataFrame's column names (indices looked up)."""
    if categorical_features is None or isinstance(categorical_features, str):
        return None
    names = _column_names(X)
    out = []
    for item in categorical_features:
        if isinstance(item, str):
            out.append(item)
            continue
        if not -len(names) <= item < len(names):
            raise InvalidArgumentError(
                f"categorical_features holds the column index {item}, but X has {len(names)} columns"
            )
        out.append(str(names[item]))
    return out


def fit_contract(estimator, X, categorical_features, dtype):
    """Fit a feature contract on the DataFrame ``X``; set ``n_features_in_`` and ``feature_names_in_``.

    Returns
    -------
    contract : DataContract
        Without a target: the estimators keep their own labels and targets.
    inputs : ndarray or OneHotMatrix of shape (n_samples, contract.n_inputs)
    """
    table = read_table(X)
    schema = Schema.fit(table, categorical=_forced_names(X, categorical_features))
    contract = DataContract(schema, categories_as="codes" if estimator.embed_categories else "onehot")
    _check_feature_names(estimator, X, reset=True)  # scikit-learn's rule: string names only
    estimator.n_features_in_ = int(X.shape[1])
    return contract, contract.inputs(table, dtype)


def fit_inputs(est, X, y, reuse):
    """``(X, y, dtype, contract)`` for fitting ``est``: ``X`` as network inputs (array, SparseRows or OneHotMatrix).

    A first fit (``reuse`` False) decides whether ``X`` goes through a data
    contract (:func:`wants_contract`) and fits it on these rows; later
    ``partial_fit`` and warm-started calls reuse the estimator's
    ``contract_``. Without a contract ``X`` and ``y`` are checked by
    scikit-learn's ``validate_data``, as they always were.
    """
    regression = est._task == "regression"
    contract = getattr(est, "contract_", None) if reuse else None
    if not reuse and wants_contract(X, est.categorical_features, est.preprocess):
        dtype = np.dtype(np.float64) if est.dtype is None else check_dtype(est.dtype)
        contract, X = fit_contract(est, X, est.categorical_features, dtype)
    elif contract is not None:
        dtype = est.network_.dtype
        X = contract_inputs(contract, X, dtype)
    else:
        X, y = validate_data(est, X, y, reset=not reuse, dtype=FLOAT_DTYPES, multi_output=True,
                             y_numeric=regression, accept_sparse=SPARSE_FORMATS)
        dtype = est.network_.dtype if reuse else est._resolve_dtype(X)
        return as_rows(X, dtype), y, dtype, None
    y = _check_y(y, multi_output=True, y_numeric=regression, estimator=est)
    check_consistent_length(X, y)
    return X, y, dtype, contract


def contract_inputs(contract, X, dtype):
    """``X`` (a DataFrame, or an array matched by position) mapped by ``contract`` to network inputs.

    Columns are matched by name (order does not matter, extra ones are
    ignored, a missing one is a DataError that names it); unseen
    categories and missing cells are encoded, never an error.
    """
    if is_scipy_sparse(X):
        raise InvalidTypeError(
            "this estimator was fitted on a DataFrame through its data contract and reads columns by name; "
            "pass a pandas or polars DataFrame, not a scipy sparse matrix"
        )
    return contract.inputs(contract.read(X), dtype)


def plain_rows(est, X):
    """``X`` itself when scikit-learn's ``validate_data(est, X, reset=False, dtype=FLOAT_DTYPES)`` would pass it
    unchanged without a word, else None.

    That is: a NumPy array (not a subclass) of shape (n_samples, n_features_in_) with ``n_samples >= 1``, dtype
    float64 or float32 in native byte order, every value finite, for an estimator fitted without feature names.
    For such an ``X`` ``validate_data`` converts nothing, warns of nothing and raises nothing, and its fixed cost is
    most of a one-row prediction, so predicting skips it. For anything else (another width, NaN, a DataFrame, a
    list, a sparse matrix, ...) the caller runs ``validate_data``, which raises or warns exactly as it always did.

    Parameters
    ----------
    est : fitted DeltapropClassifier or DeltapropRegressor
    X : object

    Returns
    -------
    ndarray of shape (n_samples, n_features_in_), or None
    """
    if type(X) is not np.ndarray or X.ndim != 2 or not (X.dtype == np.float64 or X.dtype == np.float32):
        return None
    if X.shape[0] == 0 or X.shape[1] != getattr(est, "n_features_in_", None):
        return None
    if getattr(est, "feature_names_in_", None) is not None:
        return None  # fitted on named columns: validate_data warns about an array without names
    if X.size <= CHUNK_ELEMENTS:
        return X if np.isfinite(X).all() else None
    step = chunk_rows(X.shape[1])
    finite = all(np.isfinite(X[start:start + step]).all() for start in range(0, X.shape[0], step))
    return X if finite else None


def as_rows(X, dtype):
    """A checked array as it is, or a scipy sparse matrix as SparseRows in ``dtype`` (never densified)."""
    if is_scipy_sparse(X):
        return SparseRows(X, dtype=dtype)
    return X.astype(dtype, copy=False)


def contract_from_state(path, state, network):
    """The contract of a model file's estimator record (None when there is none); ModelFileError naming ``path``."""
    if state is None:
        return None
    try:
        contract = DataContract.from_state(state)
    except (DeltapropError, TypeError, ValueError, KeyError, AttributeError) as exc:  # a malformed field
        raise ModelFileError(f"{path}: the estimator's data contract is invalid: {exc}") from None
    if contract.target is not None:
        raise ModelFileError(f"{path}: an estimator's data contract has no target, but this one has "
                             f"{contract.target.name!r}")
    try:
        contract.check_network(network)
    except DeltapropError as exc:
        raise ModelFileError(f"{path}: {exc}") from None
    return contract
