"""``deltaprop train``'s data: read, split, fit the data contract on the training rows, and encode.

Two roads lead to the same :class:`Prepared` record:

- **Tables** (CSV, Parquet, Feather): read as named raw columns
  (:func:`deltaprop.tabular.read_table`), the target found by name, rows with a
  missing target dropped (and counted), split, and the
  :class:`~deltaprop.tabular.DataContract` fitted on the training rows: imputation,
  scaling, one-hot categories. The network's input is a
  :class:`~deltaprop.sparse.OneHotMatrix` when there are categories.
- **Arrays** (the built-in data sets, NPY, NPZ, IDX): numbers already, possibly
  a memory-mapped file larger than memory; split and scaled a block of rows at
  a time as before, and described by a numeric contract.

Either way the model file carries the contract, so ``evaluate``, ``predict``
and :func:`deltaprop.load` read new rows the way training read these.
"""

import dataclasses
import os

import numpy as np

from .. import losses
from ..checks import input_file
from ..data import Labels, Scaler, detect_format, infer_task
from ..errors import DataError, DeltapropError
from ..tabular import DataContract, Target, drop_missing_targets, numeric_contract, read_table
from ..tabular.scores import loss_targets
from .common import gather, is_builtin, label_values, load_dataset, split_rows
from .config import ConfigError

__all__ = ["Prepared", "prepare", "is_table_source"]


@dataclasses.dataclass
class Prepared:
    """Everything training needs of the data, encoded for the network.

    ``X_train`` is (n_train, n_inputs) in the network's dtype (an ndarray, a
    memmap of a scratch file, or a OneHotMatrix); ``t_train`` the targets as
    the loss takes them; ``validation`` ``(X_val, t_val)`` or None; ``test``
    ``(X_test, encoded targets)`` or None, where ``X_test`` may still need
    ``test_scaler`` (the array road keeps the raw rows of a large file).
    """

    name: str
    task: str
    n_classes: object
    n_targets: int
    output_activation: str
    loss: str
    n_out: int
    target_encoding: str
    n_samples: int
    n_columns: int
    contract: DataContract
    X_train: object
    t_train: object
    validation: object
    test: object
    official_test: bool
    split_sizes: tuple
    notes: list
    test_scaler: object = None


def is_table_source(spec):
    """Whether ``--data`` names a file read as a table (CSV, Parquet, Feather), not arrays or a built-in set."""
    if not os.path.exists(spec) and is_builtin(spec):
        return False
    if not os.path.isfile(spec):
        return False  # load_dataset names the problem
    return detect_format(spec) == "csv"  # Parquet and Feather are not NPY/NPZ/IDX either


def _output_head(cfg, task, n_classes, n_targets):
    try:
        return losses.choose_output(task, n_classes, n_targets, cfg["output_activation"], cfg["loss"])
    except DeltapropError as exc:
        raise ConfigError(str(exc)) from None


def prepare(cfg, dtype, scratch=None, max_validation=None, say=print):
    """The run's :class:`Prepared` data (see the module's docstring).

    A pipe (``--data <(...)``) is copied once into a temporary file (bounded
    by the data cap), whose format is then recognised like any file's.
    """
    path = cfg["data"]
    if path is not None and os.path.exists(path) and not os.path.isfile(path) and not os.path.isdir(path):
        with input_file(path, "data file") as real:
            data = prepare({**cfg, "data": real}, dtype, scratch, max_validation, say)
        data.name = os.path.basename(path)
        return data
    if cfg["data"] is not None and is_table_source(cfg["data"]):
        data = _prepare_table(cfg, dtype, say)
    else:
        for key in ("features", "drop", "categorical", "na_values"):
            if cfg[key]:
                raise ConfigError(f"--{key.replace('_', '-')} applies to CSV, Parquet and Feather files, not to "
                                  f"{cfg['data']!r}")
        data = _prepare_arrays(cfg, dtype, scratch, max_validation)
    if cfg["embed_categories"] and not data.contract.schema.categorical:
        data.notes.append("--embed-categories has nothing to embed: no column is categorical (one-hot and "
                          "embeddings apply to text, true/false and --categorical columns)")
    return data


# ---------------------------------------------------------------- tables
def _prepare_table(cfg, dtype, say):
    if cfg["labels"] is not None:
        raise ConfigError("--labels goes with NPY or IDX features; a table holds its target column (--target)")
    table = read_table(cfg["data"], na_values=cfg["na_values"] or (), categorical=cfg["categorical"])
    notes = list(table.notes)
    target_name = _target_name(table, cfg["target"])
    keep = None if cfg["features"] is None else [n for n in cfg["features"] if n != target_name] + [target_name]
    table = table.select(features=keep, drop=cfg["drop"])
    if target_name not in table.columns:
        raise ConfigError(f"--drop removes the target column {target_name!r}")
    table, n_dropped = drop_missing_targets(table, target_name)
    if n_dropped:
        notes.append(f"dropped {n_dropped} row{'s' if n_dropped != 1 else ''} whose target {target_name!r} "
                     f"is missing")
    target = Target.fit(table.columns[target_name], target_name, task=cfg["task"], scale_target="none")
    if target.hint and cfg["task"] is None:
        notes.append(target.hint)
    codes = target.encode(table.columns[target_name]) if target.task == "classification" else None
    train, val, test = split_rows(table.n_rows, codes, cfg, False)
    contract = DataContract.fit(table, target_name, rows=train, task=target.task, categorical=cfg["categorical"],
                                scale=cfg["scale"], scale_target=cfg["scale_target"],
                                max_categories=cfg["max_categories"], min_frequency=cfg["min_frequency"],
                                na_values=cfg["na_values"] or (),
                                categories_as="codes" if cfg["embed_categories"] else "onehot")
    target = contract.target
    n_classes = len(target.classes) if target.task == "classification" else None
    n_targets = 1
    head = _output_head(cfg, target.task, n_classes, n_targets)
    report = contract.new_report()

    def encoded(rows):
        return None if rows is None else (contract.inputs(table, dtype, rows=rows, report=report),
                                          contract.targets(table, rows=rows))

    (X_train, y_train), validation, test_set = encoded(train), encoded(val), encoded(test)
    for note in report.messages():
        notes.append(note)
    net_stub = _LossView(head, dtype)
    t_train = loss_targets(net_stub, target.task, y_train)
    if validation is not None:
        validation = (validation[0], loss_targets(net_stub, target.task, validation[1]))
    name = os.path.basename(cfg["data"])
    sizes = (len(train), 0 if val is None else len(val), 0 if test is None else len(test))
    return Prepared(name, target.task, n_classes, n_targets, *head, table.n_rows,
                    len(contract.schema.names), contract, X_train, t_train, validation, test_set, False, sizes,
                    notes)


class _LossView:
    """What :func:`loss_targets` reads of a network before the network exists: its loss, n_out and dtype."""

    def __init__(self, head, dtype):
        self.loss = losses.get(head[1])
        self.n_out, self.dtype = head[2], dtype


def _target_name(table, target):
    """The target column's name: ``--target`` by name or index, else the last column."""
    names = table.names
    if target is None:
        return names[-1]
    if isinstance(target, int):
        if not -len(names) <= target < len(names):
            raise DataError(f"{table.source}: target column index {target} is out of range for {len(names)} "
                            f"columns")
        return names[target]
    if target not in table.columns:
        raise DataError(f"{table.source}: no column named {target!r}; the columns are {names[:20]}"
                        + (f" and {len(names) - 20} more" if len(names) > 20 else ""))
    return target


# ---------------------------------------------------------------- arrays
def _prepare_arrays(cfg, dtype, scratch, max_validation):
    ds = load_dataset(cfg["data"], cfg["labels"], cfg["target"])
    task = cfg["task"] or ds.task or infer_task(ds.y)
    X, y = ds.X, np.asarray(ds.y)
    codes = labels = n_classes = None
    n_targets = 1
    if task == "classification":
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise DataError(f"classification needs one target column, got targets of shape {y.shape}")
        labels = Labels()
        codes = labels.fit_transform(y)
        n_classes = len(labels.classes_)
        if n_classes < 2:
            raise DataError(f"classification needs at least two classes; the targets hold only "
                            f"{label_values(labels.classes_)[0]!r}")
    else:
        if y.dtype.kind not in "biuf":
            raise DataError(f"regression needs numeric targets, got {y.dtype} values such as {y.flat[0]!r}")
        n_targets = 1 if y.ndim == 1 else y.shape[1]
    head = _output_head(cfg, task, n_classes, n_targets)
    train, val, test = split_rows(X.shape[0], codes, cfg, ds.X_test is not None, max_validation)
    X_train = gather(X, train, dtype, scratch, "train")
    scaler = Scaler(cfg["scale"]).fit(X_train)
    scaler.transform(X_train, dtype=dtype, out=X_train)
    target_scaler = None
    if task == "regression" and cfg["scale_target"] == "standard":
        target_scaler = Scaler("standard").fit(np.asarray(y[train], dtype=np.float64).reshape(-1, n_targets))
    names = list(ds.feature_names) if ds.feature_names is not None else None
    classes = None if labels is None else label_values(labels.classes_)
    if task == "regression" and n_targets > 1:
        raise DataError(f"{ds.name}: {n_targets} target columns; deltaprop's models predict one target (train one "
                        f"model per target)")
    contract = numeric_contract(scaler, names, X.shape[1], ds.target_name or "target", task, classes,
                                target_scaler, class_names=ds.class_names)
    stub = _LossView(head, dtype)

    def encoded(values, rows=None):
        """Class indices, or values (n, k) scaled as the network is trained on them."""
        if task == "classification":
            return codes[rows] if rows is not None else labels.transform(values)
        values = np.asarray(values if rows is None else y[rows], dtype=np.float64).reshape(-1, n_targets)
        return values if target_scaler is None else target_scaler.transform(values, dtype=np.float64)

    t_train = loss_targets(stub, task, encoded(None, train))
    validation = None
    if val is not None:
        validation = (scaler.transform(np.asarray(X[val]), dtype=dtype), loss_targets(stub, task, encoded(None, val)))
    test_set, official = None, ds.X_test is not None
    if official:
        test_set = (ds.X_test, encoded(np.asarray(ds.y_test)))
    elif test is not None:
        test_set = (_Rows(X, test), encoded(None, test))
    sizes = (len(train), 0 if val is None else len(val),
             len(ds.y_test) if official else (0 if test is None else len(test)))
    n_samples = X.shape[0] + (len(ds.y_test) if official else 0)
    return Prepared(ds.name, task, n_classes, n_targets, *head, n_samples, X.shape[1], contract, X_train, t_train,
                    validation, test_set, official, sizes, [], test_scaler=scaler)


class _Rows:
    """Rows ``rows`` of a (possibly memory-mapped) array, read a chunk at a time by the test pass."""

    def __init__(self, X, rows):
        self.X, self.rows = X, rows
        self.shape = (len(rows), X.shape[1])

    def __getitem__(self, item):
        return self.X[self.rows[item]]
