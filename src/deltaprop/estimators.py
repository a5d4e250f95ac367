r"""scikit-learn compatible estimators: :class:`DeltapropClassifier` and :class:`DeltapropRegressor`.

Drop-in replacements for scikit-learn's ``MLPClassifier`` and ``MLPRegressor``
backed by a :class:`deltaprop.Network` trained with
:meth:`deltaprop.Network.fit`, with what scikit-learn's MLP lacks: dropout,
class weights, every deltaprop activation (one per layer if wanted), Huber,
absolute-error and hinge losses, every deltaprop optimizer and schedule, the
validation loss curve, ``partial_fit`` together with early stopping, float32
training, and model files without pickle::

    from deltaprop.estimators import DeltapropClassifier
    clf = DeltapropClassifier(hidden_layer_sizes=(128, 64), dropout=0.2,
                              class_weight="balanced", early_stopping=True)
    clf.fit(X, y)
    clf.save("model.safetensors")
    clf = DeltapropClassifier.load("model.safetensors")

Why these names: ``DeltapropClassifier`` says which library does the work;
an ``MLPClassifier`` of ours would shadow scikit-learn's in user code, in
``repr`` and in tracebacks, and its parameters are not all the same.

How scikit-learn's parameters map
---------------------------------
``learning_rate_init`` is ``learning_rate`` here (the step size η, as
everywhere in deltaprop), scikit-learn's ``learning_rate`` schedule is
``schedule`` (``"adaptive"`` included), ``solver``/``beta_1``/... are
``optimizer`` (a name or ``{"name": "sgd", "momentum": 0.9}``) and
``max_iter`` is ``epochs``: the number of passes over the data, never steps.

``alpha`` is scikit-learn's L2 term: each mini-batch objective is

.. math::
    L_B = \frac{Σ_{i∈B} w_i ℓ_i}{Σ_{i∈B} w_i} + \frac{α}{2\,Σ_{i∈B} w_i} Σ_l ‖W_l‖²

(``w_i = 1`` without sample weights, so the denominator is the batch size), so
the gradient of the weights gains ``(α / Σ_{i∈B} w_i) W`` (never the biases).
It is applied as the optimizer's coupled ``weight_decay``, reset before every
batch to ``α / Σ_{i∈B} w_i``. deltaprop's squared error has no factor ½ (its
gradient is ``2 (a - y) / n_out``), so the same ``alpha`` regularises half as
strongly relative to the data term as in ``MLPRegressor``.

This is the only module that imports scikit-learn (the ``sklearn`` extra);
the core never does.
"""

import copy
import json
import math
import numbers
import os

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.model_selection import train_test_split
    from sklearn.utils import check_random_state
    from sklearn.utils.class_weight import compute_sample_weight
    from sklearn.utils.metaestimators import available_if
    from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
    from sklearn.utils.validation import _check_sample_weight, check_is_fitted, column_or_1d, validate_data
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "deltaprop.estimators needs scikit-learn >= 1.6 (pip install 'deltaprop[sklearn]'); "
        f"importing it failed: {exc}"
    ) from None

from . import losses as _losses
from . import optimizers as _optimizers
from . import schedules as _schedules
from .callbacks import Callback
from .errors import InvalidArgumentError, InvalidTypeError, ModelFileError, describe
from .layers import Dense
from .network import Network, resolve_dtype

__all__ = ["DeltapropClassifier", "DeltapropRegressor", "expected_failed_checks"]

#: metadata key of a model file that holds the estimator's state
ESTIMATOR_KEY = "sklearn_estimator"
ESTIMATOR_FORMAT_VERSION = 1
_FLOAT_DTYPES = [np.float64, np.float32]
_CLASS_DTYPES = {"int64", "int32", "int16", "int8", "uint8", "uint16", "uint32", "uint64", "float64", "float32",
                 "bool", "str", "object"}


# ------------------------------------------------------------------ helpers
def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise InvalidArgumentError(f"{name} must be a positive integer, got {describe(value)}")
    return int(value)


def _real(value, name, low=None, high=None, low_open=False, high_open=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise InvalidArgumentError(f"{name} must be a finite number, got {describe(value)}")
    value = float(value)
    if low is not None and (value <= low if low_open else value < low):
        raise InvalidArgumentError(f"{name} must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and (value >= high if high_open else value > high):
        raise InvalidArgumentError(f"{name} must be {'<' if high_open else '<='} {high}, got {value!r}")
    return value


def _per_layer(value, n, name):
    """One value for every hidden layer, or a list/tuple with one per layer."""
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise InvalidArgumentError(
                f"{name} has {len(value)} entries but hidden_layer_sizes has {n} layers; give one {name} "
                f"or one per hidden layer"
            )
        return list(value)
    return [value] * n


def _jsonable(value):
    """A parameter value as JSON data, or raise TypeError (for the parameters in a model file).

    Tuples become ``{"__tuple__": [...]}`` and dicts with keys that are not
    all strings (``class_weight={0: 2.0}``) ``{"__items__": [[key, value], ...]}``,
    so that :func:`_from_json` gives back equal values; objects with
    ``get_config`` (an optimizer, a schedule, a loss) become their config.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, tuple):
        return {"__tuple__": [_jsonable(v) for v in value]}
    if isinstance(value, (list, np.ndarray)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and not {"__tuple__", "__items__"} & set(value):
            return {k: _jsonable(v) for k, v in value.items()}
        return {"__items__": [[_jsonable(k), _jsonable(v)] for k, v in value.items()]}
    if callable(getattr(value, "get_config", None)):
        return _jsonable(value.get_config())
    raise TypeError(f"not JSON data: {describe(value)}")


def _from_json(value):
    """Inverse of :func:`_jsonable`; TypeError for a malformed marker."""
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"__tuple__"}:
        if not isinstance(value["__tuple__"], list):
            raise TypeError("__tuple__ must hold a list")
        return tuple(_from_json(v) for v in value["__tuple__"])
    if set(value) == {"__items__"}:
        items = value["__items__"]
        if not isinstance(items, list) or not all(isinstance(kv, list) and len(kv) == 2 for kv in items):
            raise TypeError("__items__ must hold [key, value] pairs")
        return {_from_json(k): _from_json(v) for k, v in items}  # an unhashable key raises TypeError
    return {k: _from_json(v) for k, v in value.items()}


class _OffsetSchedule(_schedules.Schedule):
    """A schedule whose clock continues across ``fit``/``partial_fit`` calls.

    :func:`deltaprop.training.fit` counts steps from 0 in every call; this
    wrapper adds the steps already taken, so a decaying rate keeps decaying
    over successive ``partial_fit`` calls.
    """

    name = "offset"

    def __init__(self, inner, offset=0):
        self.inner = inner
        self.offset = offset
        super().__init__()

    @property
    def steps_per_epoch(self):
        return getattr(self.inner, "steps_per_epoch", 1)

    @steps_per_epoch.setter
    def steps_per_epoch(self, value):
        if isinstance(getattr(self, "inner", None), _schedules.Schedule):
            self.inner.steps_per_epoch = value

    def __call__(self, step, base_lr):
        return self.inner(step + self.offset, base_lr)


class _Monitor(Callback):
    """scikit-learn's per-batch L2 scaling and per-epoch bookkeeping, as a deltaprop callback.

    Before every batch it sets the optimizer's ``weight_decay`` to
    ``α / Σ_{i∈B} w_i`` (see the module notes); after every epoch it hands the
    epoch's logs to the estimator, which records the curves and applies the
    ``n_iter_no_change`` rule (setting ``run.stop_training``).
    """

    def __init__(self, estimator, alpha, weights, n, batch_size, incremental):
        self.estimator = estimator
        self.alpha = alpha
        self.w = weights
        self.n = n
        self.batch_size = batch_size
        self.incremental = incremental

    def _set_decay(self, run, b):
        if not self.alpha or b >= run.batches_per_epoch:
            return
        lo = b * self.batch_size
        hi = min(lo + self.batch_size, self.n)
        if self.w is None:
            total = hi - lo
        else:
            rows = slice(lo, hi) if run.perm is None else run.perm[lo:hi]
            total = float(self.w[rows].sum())
        run.optimizer.weight_decay = self.alpha / total

    def on_epoch_begin(self, run, epoch):
        self._set_decay(run, run.batch)

    def on_batch_end(self, run, batch, logs):
        self._set_decay(run, batch + 1)

    def on_epoch_end(self, run, epoch, logs):
        if self.estimator._end_epoch(run, logs, self.incremental):
            run.stop_training = True


def expected_failed_checks(estimator):
    """scikit-learn estimator checks that cannot pass for ``estimator``'s settings, with the reason.

    For ``parametrize_with_checks(..., expected_failed_checks=expected_failed_checks)``.
    The default settings fail none. The one check that some settings cannot
    pass is ``check_sample_weight_equivalence_on_dense_data``, which demands
    that an integer weight give the same fit as repeating the sample, to
    rtol 1e-7: true for full-batch training, which the default
    ``batch_size="auto"`` is on that check's 15 to 60 samples, but not when a
    random draw touches rows one by one.
    """
    reasons = []
    if getattr(estimator, "early_stopping", False):
        reasons.append("early_stopping draws the validation rows at random, and repeated rows are drawn apart")
    dropout = getattr(estimator, "dropout", 0.0)
    if any(np.ravel(dropout)) if isinstance(dropout, (list, tuple)) else dropout:
        reasons.append("dropout draws a mask per row, so a repeated row gets different masks")
    if not isinstance(getattr(estimator, "batch_size", "auto"), str):
        reasons.append("a fixed batch_size splits repeated rows over different mini-batches")
    if not reasons:
        return {}
    return {"check_sample_weight_equivalence_on_dense_data": "; ".join(reasons)}


# --------------------------------------------------------------- the base
class _DeltapropMLP(BaseEstimator):
    """Shared machinery of :class:`DeltapropClassifier` and :class:`DeltapropRegressor`."""

    _task = None  # "classification" or "regression"

    # --------------------------------------------------------- parameters
    def _hidden_sizes(self):
        h = self.hidden_layer_sizes
        if isinstance(h, numbers.Integral) and not isinstance(h, bool):
            h = (h,)
        if not isinstance(h, (list, tuple, np.ndarray)):
            raise InvalidArgumentError(
                f"hidden_layer_sizes must be a positive integer or a sequence of them, got {describe(h)}"
            )
        return [_positive_int(v, "hidden_layer_sizes entry") for v in h]

    def _layer_specs(self, n_in, n_out, out_activation):
        sizes = self._hidden_sizes()
        acts = _per_layer(self.activation, len(sizes), "activation")
        drops = _per_layer(self.dropout, len(sizes), "dropout")
        for i, d in enumerate(drops):
            _real(d, f"dropout[{i}]" if isinstance(self.dropout, (list, tuple)) else "dropout", 0.0, 1.0,
                  high_open=True)
        specs, prev = [], n_in
        for size, act, drop in zip(sizes, acts, drops, strict=True):
            specs.append((prev, size, act, float(drop)))
            prev = size
        specs.append((prev, n_out, out_activation, 0.0))
        return specs

    def _make_network(self, n_in, n_out, out_activation, loss, dtype, seed):
        init = self.initializer
        layers = [Dense(a, b, activation=act, dropout=d, initializer=init)
                  for a, b, act, d in self._layer_specs(n_in, n_out, out_activation)]
        return Network(layers, loss=loss, dtype=dtype, seed=seed)

    def _learning_rate(self):
        lr = self.learning_rate
        if lr is None:
            return None
        if isinstance(lr, str):
            raise InvalidArgumentError(
                f"learning_rate is the step size η (a positive number), got {lr!r}; scikit-learn's "
                f"learning_rate={lr!r} schedule is schedule={lr!r} here"
            )
        return _real(lr, "learning_rate", 0.0, low_open=True)

    def _optimizer_config(self):
        """The optimizer to build, as ``(config dict or None, instance to deep-copy or None)``."""
        spec = self.optimizer
        if isinstance(spec, _optimizers.Optimizer):
            return dict(spec.get_config()), None
        if isinstance(spec, (str, dict)):
            return dict(_optimizers.get(spec).get_config()), None
        if callable(getattr(spec, "step", None)):
            return None, spec
        raise InvalidTypeError(
            f"optimizer must be a name ('adam', 'sgd', ...), a config dict such as "
            f"{{'name': 'sgd', 'momentum': 0.9}} or a deltaprop Optimizer, got {describe(spec)}"
        )

    def _build_optimizer(self):
        config, custom = self._optimizer_config()
        lr = self._learning_rate()
        if custom is not None:
            opt = copy.deepcopy(custom)
            if lr is not None:
                opt.learning_rate = lr
            return opt, None
        if lr is not None:
            config["learning_rate"] = lr
        opt = _optimizers.get(config)
        decoupled = getattr(opt, "decoupled_decay", False)
        if decoupled and self._alpha():
            raise InvalidArgumentError(
                f"optimizer {config['name']!r} applies its own decoupled weight_decay={opt.weight_decay}; "
                f"set alpha=0 (alpha is scikit-learn's coupled L2 term), got alpha={self.alpha!r}"
            )
        if not decoupled and opt.weight_decay:
            raise InvalidArgumentError(
                f"set L2 regularisation with alpha, not with the optimizer's weight_decay "
                f"(got weight_decay={opt.weight_decay} in optimizer={describe(self.optimizer)})"
            )
        key = {k: v for k, v in config.items() if k not in ("learning_rate",)}
        return opt, key

    def _alpha(self):
        return _real(self.alpha, "alpha", 0.0)

    def _build_schedule(self):
        spec = self.schedule
        if spec == "adaptive":
            return _schedules.Constant()
        if isinstance(spec, _schedules.Schedule):
            return copy.deepcopy(spec)
        return _schedules.get(spec)

    def _resolve_dtype(self, X):
        if self.dtype is None:
            return np.dtype(X.dtype) if X.dtype in (np.float32, np.float64) else np.dtype(np.float64)
        return resolve_dtype(self.dtype)

    def _batch_size(self, n):
        if isinstance(self.batch_size, str):
            if self.batch_size != "auto":
                raise InvalidArgumentError(f"batch_size must be 'auto' or a positive integer, got {self.batch_size!r}")
            return min(200, n)
        return min(_positive_int(self.batch_size, "batch_size"), n)

    def _check_params(self):
        """Validate the parameters that need no data (scikit-learn validates in fit, not __init__)."""
        _positive_int(self.epochs, "epochs")
        _positive_int(self.n_iter_no_change, "n_iter_no_change")
        _real(self.tol, "tol", 0.0)
        _real(self.validation_fraction, "validation_fraction", 0.0, 1.0, low_open=True, high_open=True)
        self._alpha()
        self._learning_rate()
        self._hidden_sizes()
        if not isinstance(self.shuffle, (bool, np.bool_)):
            raise InvalidArgumentError(f"shuffle must be True or False, got {describe(self.shuffle)}")
        if not isinstance(self.early_stopping, (bool, np.bool_)):
            raise InvalidArgumentError(f"early_stopping must be True or False, got {describe(self.early_stopping)}")
        if not isinstance(self.warm_start, (bool, np.bool_)):
            raise InvalidArgumentError(f"warm_start must be True or False, got {describe(self.warm_start)}")
        if self.dtype is not None:
            resolve_dtype(self.dtype)

    # ------------------------------------------------------------ fitting
    def fit(self, X, y, sample_weight=None):
        """Train for ``epochs`` passes over ``(X, y)`` (fewer if the ``n_iter_no_change`` rule stops it).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Class labels (an indicator matrix for multi-label
            classification) or real targets.
        sample_weight : array-like of shape (n_samples,), optional
            Each batch loss becomes ``Σ w_i ℓ_i / Σ w_i``; samples of weight 0
            are left out of training altogether.

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight, incremental=False)

    def _fit(self, X, y, sample_weight, incremental, classes=None):
        self._check_params()
        reuse = hasattr(self, "network_") and (incremental or self.warm_start)
        X, y = validate_data(self, X, y, reset=not reuse, dtype=_FLOAT_DTYPES, multi_output=True,
                             y_numeric=self._task == "regression")
        if self._task == "classification" and y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if incremental and reuse and self.early_stopping and getattr(self, "stopped_early_", False):
            return self  # early stopping ended this partial_fit sequence; fit() starts a new one
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        targets, weights = self._prepare_targets(y, reuse, incremental, classes, sample_weight)
        dtype = self.network_.dtype if reuse else self._resolve_dtype(X)
        X = X.astype(dtype, copy=False)
        if not reuse:
            self._initialize(X.shape[1], dtype)
        else:
            self._check_architecture()
            self._refresh_optimizer()
        if not incremental:
            self._reset_stopping()

        # ------------------------------------------------- validation split
        val = None
        if self.early_stopping:
            train_idx, val_idx = self._split(X.shape[0], y, incremental)
            # the validation loss and score carry the same weights as training
            # (sample_weight times class_weight), so the curves compare directly
            val = (X[val_idx], targets[val_idx], None if weights is None else weights[val_idx])
            X, targets = X[train_idx], targets[train_idx]
            weights = None if weights is None else weights[train_idx]

        # samples of weight 0 change nothing but the batches they sit in: drop them
        if weights is not None:
            keep = weights > 0
            if not keep.any():
                raise InvalidArgumentError("every training sample has weight 0 (sample_weight times class_weight)")
            if not keep.all():
                X, targets, weights = X[keep], targets[keep], weights[keep]
            if self._task == "classification" and not incremental:
                self._check_two_classes(targets.astype(np.intp), " after removing samples of weight 0")
        # equal weights give plain means (faster); the monitor still needs Σw per batch
        fit_weights = None if weights is None or np.all(weights == weights[0]) else weights
        n = X.shape[0]
        batch_size = self._batch_size(n)
        epochs = 1 if incremental else self.epochs
        steps_per_epoch = -(-n // batch_size)
        inner = self._schedule.inner
        if isinstance(inner, _schedules.CosineDecay) and inner.total_steps is None and not incremental:
            inner.run_steps = self._steps + epochs * steps_per_epoch
        self._schedule.offset = self._steps
        # α / Σw_B as coupled weight decay, set before every batch by the monitor
        # (an optimizer with decoupled decay keeps its own; alpha is 0 then)
        alpha = 0.0 if getattr(self._optimizer, "decoupled_decay", False) else self._alpha()
        if not alpha and not getattr(self._optimizer, "decoupled_decay", False):
            self._optimizer.weight_decay = 0.0
        monitor = _Monitor(self, alpha, weights, n, batch_size, incremental)
        metric = "accuracy" if self._task == "classification" else "r2"
        epochs_before = len(self.loss_curve_)
        history = self.network_.fit(
            X, targets, epochs=epochs, batch_size=batch_size, optimizer=self._optimizer, schedule=self._schedule,
            shuffle=bool(self.shuffle), validation_data=val, metrics=[metric] if val is not None else [],
            callbacks=[monitor], sample_weight=fit_weights, verbose=0,
        )
        self._steps += len(history) * steps_per_epoch
        self.n_iter_ = len(self.loss_curve_)
        self.t_ = getattr(self, "t_", 0) + n * (len(self.loss_curve_) - epochs_before)
        if self.early_stopping and not incremental and self._best_params is not None:
            np.copyto(self.network_.params, self._best_params)
        return self

    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over ``(X, y)``, continuing from the current state (optimizer state included).

        See :meth:`DeltapropClassifier.partial_fit` for how it works with
        ``early_stopping``.
        """
        return self._fit(X, y, sample_weight, incremental=True)

    def _split(self, n, y, incremental):
        """Training and validation row indices for early stopping.

        ``fit`` draws the split from ``random_state`` and stratifies by class
        where every class can appear on both sides (as scikit-learn);
        ``partial_fit`` uses one fixed seed, so calls with the same number of
        samples hold out the same rows.
        """
        n_val = math.ceil(self.validation_fraction * n)
        if n_val < 1 or n - n_val < 1:
            raise InvalidArgumentError(
                f"early stopping holds out validation_fraction={self.validation_fraction} of the {n} samples, "
                f"which leaves no training or no validation sample; early stopping needs at least 2 samples"
            )
        idx = np.arange(n)
        if incremental:
            return train_test_split(idx, test_size=n_val, random_state=self._split_seed)
        stratify = None
        if self._task == "classification" and np.ndim(y) == 1:
            counts = np.unique(y, return_counts=True)[1]
            if counts.min() >= 2 and min(n_val, n - n_val) >= counts.size:
                stratify = y
        return train_test_split(idx, test_size=n_val, random_state=self._random_state, stratify=stratify)

    def _initialize(self, n_in, dtype):
        self._random_state = check_random_state(self.random_state)
        seed = int(self._random_state.randint(np.iinfo(np.int32).max))
        self._split_seed = int(self._random_state.randint(np.iinfo(np.int32).max))
        out_activation, loss = self._output_spec()
        self.network_ = self._make_network(n_in, self._n_outputs(), out_activation, loss, dtype, seed)
        self._arch = self._architecture_key()
        self._optimizer, self._optimizer_key = self._build_optimizer()
        self._schedule = _OffsetSchedule(self._build_schedule())
        self._schedule_param = self.schedule
        self._steps = 0
        self.loss_curve_ = []
        self.t_ = 0
        self.validation_scores_ = [] if self.early_stopping else None
        self.validation_loss_curve_ = [] if self.early_stopping else None
        self.best_loss_ = None if self.early_stopping else math.inf
        self.best_validation_score_ = -math.inf if self.early_stopping else None
        self._reset_stopping()

    def _architecture_key(self):
        return repr((self._hidden_sizes(), self.activation, self.dropout, self._output_spec()))  # not the initializer

    def _check_architecture(self):
        if self._architecture_key() != self._arch:
            raise InvalidArgumentError(
                "hidden_layer_sizes, activation, dropout or loss changed since the network was built; "
                "warm_start and partial_fit continue training the same network (set warm_start=False to rebuild)"
            )

    def _refresh_optimizer(self):
        """Keep the optimizer (and its state) unless its kind or hyperparameters changed."""
        opt, key = self._build_optimizer()
        if key is None or key != self._optimizer_key:
            self._optimizer, self._optimizer_key = opt, key
        else:
            self._optimizer.learning_rate = opt.learning_rate
        if self.schedule is not self._schedule_param and self.schedule != self._schedule_param:
            self._schedule = _OffsetSchedule(self._build_schedule())
            self._schedule_param = self.schedule

    def _reset_stopping_fields(self):
        self._no_improvement_count = 0
        self._best_params = None
        self._best_val_loss = math.inf
        self.stopped_early_ = False

    def _reset_stopping(self):
        self._reset_stopping_fields()
        if self.early_stopping:
            if self.validation_scores_ is None:
                self.validation_scores_ = []
                self.validation_loss_curve_ = []
            self.best_validation_score_ = -math.inf
            self.best_loss_ = None
        elif self.best_loss_ is None:
            self.best_loss_ = min(self.loss_curve_, default=math.inf)

    def _end_epoch(self, run, logs, incremental):
        """Record one epoch; apply scikit-learn's ``n_iter_no_change``/``tol`` rule. True means stop."""
        loss = float(logs["loss"])
        self.loss_curve_.append(loss)
        self.loss_ = loss
        tol = self.tol
        early = self.early_stopping
        if early:
            metric = "accuracy" if self._task == "classification" else "r2"
            score, val_loss = float(logs[f"val_{metric}"]), float(logs["val_loss"])
            self.validation_scores_.append(score)
            self.validation_loss_curve_.append(val_loss)
            improved = not score < self.best_validation_score_ + tol
            # The best weights have the best score; a tie (common: accuracy on a
            # small validation set moves in steps) goes to the lower validation loss.
            if score > self.best_validation_score_ or (score == self.best_validation_score_
                                                       and val_loss < self._best_val_loss):
                self.best_validation_score_ = score
                self._best_val_loss = val_loss
                if self._best_params is None:
                    self._best_params = self.network_.params.copy()
                else:
                    np.copyto(self._best_params, self.network_.params)
        else:
            improved = not loss > self.best_loss_ - tol
            self.best_loss_ = min(self.best_loss_, loss)
        self._no_improvement_count = 0 if improved else self._no_improvement_count + 1
        if self.verbose:
            extra = (f", val_loss = {self.validation_loss_curve_[-1]:.8f}, validation score = "
                     f"{self.validation_scores_[-1]:.6f}" if early else "")
            print(f"Epoch {len(self.loss_curve_)}, loss = {loss:.8f}{extra}")
        if incremental and not early:
            return False  # scikit-learn's partial_fit never stops on the training loss
        if self._no_improvement_count <= self.n_iter_no_change:
            return False
        if self.schedule == "adaptive" and run.optimizer.learning_rate > 1e-6:
            run.optimizer.learning_rate /= 5.0  # scikit-learn's 'adaptive' rate
            self._no_improvement_count = 0
            if self.verbose:
                print(f"Setting learning rate to {run.optimizer.learning_rate:.6g}")
            return False
        self.stopped_early_ = True
        if incremental and self._best_params is not None:
            np.copyto(self.network_.params, self._best_params)
        if self.verbose:
            what = "Validation score" if early else "Training loss"
            print(f"{what} did not improve more than tol={tol} for {self.n_iter_no_change} consecutive epochs. "
                  f"Stopping.")
        return True

    # --------------------------------------------------------- prediction
    def _forward(self, X):
        check_is_fitted(self, "network_")
        X = validate_data(self, X, reset=False, dtype=_FLOAT_DTYPES)
        return self.network_.predict(X)

    def _logits(self, X):
        """Pre-activations of the output layer, ``Z_L``, in chunks of 4096 rows."""
        check_is_fitted(self, "network_")
        X = validate_data(self, X, reset=False, dtype=_FLOAT_DTYPES)
        net = self.network_
        out = np.empty((X.shape[0], net.n_out), dtype=net.dtype)
        for start in range(0, X.shape[0], 4096):
            chunk = np.ascontiguousarray(X[start:start + 4096], dtype=net.dtype)
            net.forward(chunk, training=False)
            out[start:start + chunk.shape[0]] = net.layers[-1].z
        return out

    # ------------------------------------------------------- introspection
    @property
    def coefs_(self):
        """Weight matrices in scikit-learn's orientation, ``(n_in, n_out)``: views ``W.T`` of the network."""
        check_is_fitted(self, "network_")
        return [layer.W.T for layer in self.network_.layers]

    @property
    def intercepts_(self):
        """Bias vectors, views into the network."""
        check_is_fitted(self, "network_")
        return [layer.b for layer in self.network_.layers]

    @property
    def n_layers_(self):
        """Layers counting the input, as scikit-learn: ``len(hidden_layer_sizes) + 2``."""
        check_is_fitted(self, "network_")
        return len(self.network_.layers) + 1

    @property
    def n_outputs_(self):
        """Output units of the network."""
        check_is_fitted(self, "network_")
        return self.network_.n_out

    @property
    def out_activation_(self):
        """Name of the output activation (scikit-learn's names: 'logistic', 'softmax', 'identity')."""
        check_is_fitted(self, "network_")
        name = getattr(self.network_.layers[-1].activation, "name", "identity")
        return {"sigmoid": "logistic"}.get(name, name)

    # ------------------------------------------------------------ pickling
    def __getstate__(self):
        # Pickle copies views into separate arrays, which would cut the layers'
        # W and b off the network's flat params; store the network by parts.
        state = super().__getstate__()
        net = state.get("network_")
        if isinstance(net, Network):
            state = dict(state)
            state["network_"] = {
                "__deltaprop_network__": 1,
                "layers": [(layer.n_in, layer.n_out, layer.activation, layer.dropout,
                            getattr(layer.initializer, "name", None)) for layer in net.layers],
                "loss": net.loss,
                "dtype": net.dtype.name,
                "params": net.params.copy(),
                "rng": net.rng.bit_generator.state,
            }
        return state

    def __setstate__(self, state):
        net = state.get("network_")
        if isinstance(net, dict) and net.get("__deltaprop_network__"):
            layers = [Dense(a, b, activation=act, dropout=d, initializer=init) for a, b, act, d, init in net["layers"]]
            network = Network(layers, loss=net["loss"], dtype=net["dtype"], seed=0)
            network.params[...] = net["params"]
            network.rng.bit_generator.state = net["rng"]
            state = dict(state)
            state["network_"] = network
        super().__setstate__(state)

    # --------------------------------------------------------------- files
    def save(self, path):
        """Save the fitted network to a deltaprop model file (safetensors; no pickle).

        The file holds the weights, the architecture, the class labels (for a
        classifier) and the estimator's parameters and fitted attributes, so
        that :meth:`load` returns an estimator that predicts identically; the
        file also opens with :func:`deltaprop.load` and the ``deltaprop``
        command.

        Parameters
        ----------
        path : str or path-like
        """
        check_is_fitted(self, "network_")
        from .io import save as _save

        params, unsaved = {}, []
        for key, value in self.get_params(deep=False).items():
            try:
                params[key] = _jsonable(value)
            except TypeError:
                unsaved.append(key)
        names = getattr(self, "feature_names_in_", None)
        state = {
            "format_version": ESTIMATOR_FORMAT_VERSION,
            "estimator": type(self).__name__,
            "params": params,
            "unsaved_params": unsaved,
            "n_features_in": int(self.n_features_in_),
            "feature_names_in": None if names is None else [str(s) for s in names],
            "loss_curve": [float(v) for v in self.loss_curve_],
            "validation_scores": (None if self.validation_scores_ is None
                                  else [float(v) for v in self.validation_scores_]),
            "validation_loss_curve": (None if self.validation_loss_curve_ is None
                                      else [float(v) for v in self.validation_loss_curve_]),
            **self._extra_state(),
        }
        classes = self._file_classes()
        _save(self.network_, path, classes=classes, config=params, extra={ESTIMATOR_KEY: state})

    def _extra_state(self):
        return {}

    def _file_classes(self):
        return None

    @classmethod
    def load(cls, path):
        """Load an estimator saved with :meth:`save`.

        Parameters
        ----------
        path : str or path-like

        Returns
        -------
        estimator
            Fitted, with ``network_`` loaded from the file. Parameters that
            could not be stored as JSON (a custom schedule function, say)
            take their default values, and an optimizer or schedule object
            comes back as its config; the network is exact either way. The
            file has no optimizer state: ``partial_fit`` or a warm start
            after loading starts the optimizer afresh (checkpoints of
            :meth:`deltaprop.Network.fit` resume exactly).

        Raises
        ------
        deltaprop.ModelFileError
            When the file is not a deltaprop model file, was saved by the
            other estimator class, or has a malformed estimator record.
        """
        from .io import load as _load

        path = os.fspath(path)
        net = _load(path)
        raw = net.metadata.get(ESTIMATOR_KEY)
        if raw is None:
            raise ModelFileError(
                f"{path}: not saved by a deltaprop estimator (no {ESTIMATOR_KEY!r} metadata); "
                f"load it with deltaprop.load"
            )
        try:
            state = json.loads(raw)
        except ValueError:
            raise ModelFileError(f"{path}: metadata {ESTIMATOR_KEY!r} is not valid JSON") from None
        if not isinstance(state, dict):
            raise ModelFileError(f"{path}: metadata {ESTIMATOR_KEY!r} must be a JSON object")
        version = state.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= ESTIMATOR_FORMAT_VERSION:
            raise ModelFileError(f"{path}: estimator format_version {version!r} is not one this deltaprop reads")
        if state.get("estimator") != cls.__name__:
            raise ModelFileError(f"{path}: saved by {state.get('estimator')!r}, not {cls.__name__}; "
                                 f"load it with that class")
        params = state.get("params")
        if not isinstance(params, dict):
            raise ModelFileError(f"{path}: estimator params must be a JSON object")
        valid = cls().get_params(deep=False)
        unknown = set(params) - set(valid)
        if unknown:
            raise ModelFileError(f"{path}: unknown estimator parameters {sorted(unknown)}")
        try:
            est = cls(**{k: _from_json(v) for k, v in params.items()})
        except TypeError as exc:
            raise ModelFileError(f"{path}: malformed estimator parameters ({exc})") from None
        n_in = state.get("n_features_in")
        if not isinstance(n_in, int) or isinstance(n_in, bool) or n_in != net.n_in:
            raise ModelFileError(f"{path}: n_features_in {n_in!r} does not match the network's {net.n_in} inputs")
        names = state.get("feature_names_in")
        if names is not None:
            if not isinstance(names, list) or len(names) != n_in or not all(isinstance(s, str) for s in names):
                raise ModelFileError(f"{path}: feature_names_in must be a list of {n_in} strings")
            est.feature_names_in_ = np.asarray(names, dtype=object)
        est.n_features_in_ = n_in

        def curve(key, allow_none):
            value = state.get(key)
            if value is None and allow_none:
                return None
            if not isinstance(value, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                      for v in value):
                raise ModelFileError(f"{path}: {key} must be a list of numbers")
            return [float(v) for v in value]

        for attr in ("preprocessing",):
            if getattr(net, attr, None) is not None:
                raise ModelFileError(f"{path}: has {attr}, which an estimator does not apply; use deltaprop.load")
        est.network_ = net
        est._reset_stopping_fields()
        est.loss_curve_ = curve("loss_curve", False)
        est.validation_scores_ = curve("validation_scores", True)
        est.validation_loss_curve_ = curve("validation_loss_curve", True)
        est.n_iter_ = len(est.loss_curve_)
        est.loss_ = est.loss_curve_[-1] if est.loss_curve_ else None
        est.best_loss_ = None if est.validation_scores_ is not None else min(est.loss_curve_, default=math.inf)
        est.best_validation_score_ = (max(est.validation_scores_, default=-math.inf)
                                      if est.validation_scores_ is not None else None)
        est.stopped_early_ = False
        est._restore_state(path, state, net)
        # what fitting would have set up, so that warm_start and partial_fit continue from the file
        est._random_state = check_random_state(est.random_state)
        est._split_seed = int(est._random_state.randint(np.iinfo(np.int32).max))
        try:
            est._arch = est._architecture_key()
            est._optimizer, est._optimizer_key = est._build_optimizer()
            est._schedule = _OffsetSchedule(est._build_schedule())
        except (ValueError, TypeError) as exc:  # parameters that cannot build this network
            raise ModelFileError(f"{path}: estimator parameters are invalid: {exc}") from None
        est._schedule_param = est.schedule
        est._steps = 0
        est.t_ = 0
        return est


# ------------------------------------------------------------ classifier
def _loss_is(est, kind, method):
    try:
        ok = est._loss_kind() == kind
    except InvalidArgumentError:
        ok = False
    if not ok:
        raise AttributeError(f"{method} is only available with loss={kind!r}, not loss={est.loss!r}")
    return True


def _has_proba(est):
    return _loss_is(est, "log_loss", "predict_proba")


def _has_decision(est):
    return _loss_is(est, "hinge", "decision_function")


class DeltapropClassifier(ClassifierMixin, _DeltapropMLP):
    """Multilayer perceptron classifier trained by deltaprop (``MLPClassifier`` with more in it).

    Binary (one sigmoid output), multi-class (softmax) and multi-label
    (one sigmoid output per label, for an indicator-matrix ``y``)
    classification with cross-entropy (``loss="log_loss"``), or a hinge loss
    with linear outputs (``loss="hinge"``: binary for two classes,
    Crammer-Singer for more).

    Parameters
    ----------
    hidden_layer_sizes : int or tuple of int, default (100,)
        Units of each hidden layer; ``()`` gives a linear model.
    activation : str, dict, Activation or list of them, default "relu"
        Hidden activation, any of deltaprop's ("relu", "leaky_relu",
        "elu", "gelu", "tanh", "sigmoid" (or "logistic"), "softplus",
        "identity", ...) or a config dict such as ``{"name": "leaky_relu",
        "alpha": 0.1}``; a list gives one per hidden layer.
    loss : {"log_loss", "hinge"} or dict, default "log_loss"
        ``"log_loss"`` is binary cross-entropy with sigmoid outputs (binary,
        multi-label) or categorical cross-entropy with softmax (multi-class);
        deltaprop's loss names (``"binary_crossentropy"``,
        ``"categorical_crossentropy"``) mean the same. ``"hinge"`` has no
        probabilities: ``predict_proba`` is then unavailable and
        ``decision_function`` gives the margins.
    optimizer : str, dict or deltaprop Optimizer, default "adam"
        "adam", "sgd", "rmsprop", "adagrad" or "adamw", or a config with its
        hyperparameters: ``{"name": "sgd", "momentum": 0.9, "nesterov":
        True}``, ``{"name": "adam", "beta2": 0.99, "clipnorm": 1.0}``. An
        instance is copied, never changed.
    learning_rate : float, optional
        Step size η (scikit-learn's ``learning_rate_init``); default: the
        optimizer's (1e-3 for Adam, as scikit-learn).
    schedule : str, dict, Schedule, callable or "adaptive", optional
        Learning-rate schedule (see :mod:`deltaprop.schedules`), for example
        ``{"name": "cosine"}`` or ``{"name": "step", "step_size": 10,
        "per_epoch": True}``; its clock continues across ``partial_fit``
        calls. ``"adaptive"`` is scikit-learn's: divide the rate by 5 each
        time the ``n_iter_no_change`` rule fires, and stop below 1e-6.
    batch_size : int or "auto", default "auto"
        Samples per step; "auto" is ``min(200, n_samples)``.
    epochs : int, default 200
        Passes over the training data (scikit-learn's ``max_iter``).
    alpha : float, default 1e-4
        L2 penalty, scaled as scikit-learn scales it (see the module notes).
    dropout : float or list of float, default 0.0
        Probability of dropping each hidden unit while training (inverted
        dropout); a list gives one per hidden layer.
    initializer : str or None, default "glorot_uniform"
        Scheme for the initial weights of every layer (see
        :mod:`deltaprop.initializers`); biases start at 0. The default is
        scikit-learn's (Glorot and Bengio's uniform); None takes deltaprop's
        choice per activation (He for the ReLU family), which suits deeper
        networks.
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the data (stratified) and stop
        when the validation accuracy has not improved by ``tol`` for
        ``n_iter_no_change`` epochs; the best weights are restored.
    validation_fraction : float, default 0.1
    n_iter_no_change : int, default 10
        Without early stopping the rule watches the training loss.
    tol : float, default 1e-4
        Use ``tol=0`` with a large ``n_iter_no_change`` to always run all epochs.
    class_weight : dict, "balanced" or None
        Weight of each class label, multiplying ``sample_weight``;
        "balanced" gives class ``c`` the weight ``n / (k n_c)``, with ``n``
        and ``n_c`` summing ``sample_weight`` (so weighting a sample by 2
        equals repeating it), over the data of each call (in
        ``partial_fit``: each call's batch). For multi-label ``y``,
        "balanced" or a list of dicts (scikit-learn's
        ``compute_sample_weight``). With early stopping the validation
        loss and score carry the same weights.
    shuffle : bool, default True
        New sample order each epoch.
    dtype : {None, "float32", "float64"}, default None
        None follows the input: float32 ``X`` trains and predicts in
        float32, anything else in float64.
    random_state : int, RandomState or None
        Initial weights, shuffling, dropout masks and the validation split.
    warm_start : bool, default False
        ``fit`` continues from the current network and optimizer state.
    verbose : int, default 0
        Print one line per epoch.

    Attributes
    ----------
    network_ : deltaprop.Network
        The trained network.
    classes_ : ndarray of shape (n_classes,)
        Class labels (``arange(n_labels)`` for multi-label ``y``).
    loss_curve_ : list of float
        Mean training loss (weighted, without the L2 term) of each epoch.
    validation_loss_curve_ : list of float or None
        Validation loss of each epoch (early stopping only), comparable with
        ``loss_curve_``.
    validation_scores_ : list of float or None
        Validation accuracy of each epoch (early stopping only).
    best_loss_ : float or None
        Smallest training loss (None with early stopping).
    best_validation_score_ : float or None
    loss_ : float
        Training loss of the last epoch.
    n_iter_ : int
        Epochs trained since the network was built (``len(loss_curve_)``).
    t_ : int
        Training samples seen since the network was built.
    stopped_early_ : bool
        The ``n_iter_no_change`` rule ended the last ``fit`` (or the
        ``partial_fit`` sequence).
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when ``X`` had string column names.
    coefs_, intercepts_ : list of ndarray
        scikit-learn's view of the weights (``W.T``) and biases.
    n_layers_, n_outputs_, out_activation_
        As in scikit-learn.
    """

    _task = "classification"

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", loss="log_loss", optimizer="adam",
                 learning_rate=None, schedule=None, batch_size="auto", epochs=200, alpha=1e-4, dropout=0.0,
                 initializer="glorot_uniform", early_stopping=False, validation_fraction=0.1, n_iter_no_change=10,
                 tol=1e-4, class_weight=None, shuffle=True, dtype=None, random_state=None, warm_start=False, verbose=0):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.loss = loss
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.schedule = schedule
        self.batch_size = batch_size
        self.epochs = epochs
        self.alpha = alpha
        self.dropout = dropout
        self.initializer = initializer
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.class_weight = class_weight
        self.shuffle = shuffle
        self.dtype = dtype
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        try:
            tags.classifier_tags.multi_label = self._loss_kind() == "log_loss"
        except InvalidArgumentError:  # an invalid loss is reported by fit
            tags.classifier_tags.multi_label = False
        return tags

    # ----------------------------------------------------------- the loss
    def _loss_kind(self):
        spec = self.loss
        if isinstance(spec, str):
            key = _losses.canonical_name(spec)
        elif isinstance(spec, dict) and isinstance(spec.get("name"), str):
            key = _losses.canonical_name(spec["name"])
        else:
            key = getattr(spec, "name", None)
        if key in ("log_loss", "binary_crossentropy", "categorical_crossentropy"):
            return "log_loss"
        if key == "hinge":
            return "hinge"
        raise InvalidArgumentError(
            f"loss must be 'log_loss' or 'hinge' for a classifier, got {describe(spec)} "
            f"(use DeltapropRegressor for squared, absolute or Huber losses)"
        )

    def _output_spec(self):
        kind = self._loss_kind()
        if kind == "hinge":
            return "identity", "hinge"
        if self._mode == "multiclass":
            return "softmax", "categorical_crossentropy"
        return "sigmoid", "binary_crossentropy"

    def _n_outputs(self):
        return 1 if self._mode == "binary" else len(self.classes_)

    # -------------------------------------------------------- the targets
    def _prepare_targets(self, y, reuse, incremental, classes, sample_weight):
        check_classification_targets(y)
        kind = type_of_target(y)
        if kind not in ("binary", "multiclass", "multilabel-indicator"):
            raise InvalidArgumentError(
                f"y must be class labels or a multi-label indicator matrix, got target type {kind!r}"
            )
        multilabel = kind == "multilabel-indicator"
        if not reuse:
            if multilabel:
                labels = np.arange(y.shape[1])
                if classes is not None and not np.array_equal(unique_labels(classes), labels):
                    raise InvalidArgumentError(
                        f"for a multi-label y with {y.shape[1]} columns, classes must be 0..{y.shape[1] - 1}, "
                        f"got {describe(classes)}"
                    )
                self._mode = "multilabel"
            else:
                if incremental and classes is None:
                    raise InvalidArgumentError("classes must be given in the first call to partial_fit")
                labels = unique_labels(y) if classes is None else unique_labels(classes)
                if len(labels) < 2:
                    raise InvalidArgumentError(
                        f"y has 1 class ({labels[0]!r}); a classifier needs samples of at least 2 classes"
                    )
                self._mode = "binary" if len(labels) == 2 else "multiclass"
            self.classes_ = labels
            self._multilabel_dtype = y.dtype if multilabel else None
        else:
            if multilabel != (self._mode == "multilabel"):
                raise InvalidArgumentError(
                    f"y is {'a multi-label indicator matrix' if multilabel else 'class labels'} but the "
                    f"classifier was fitted on {'a multi-label indicator matrix' if not multilabel else 'class labels'}"
                )
            if classes is not None and not np.array_equal(unique_labels(classes), self.classes_):
                raise InvalidArgumentError(
                    f"classes={describe(list(unique_labels(classes)))} differs from classes_="
                    f"{describe(list(self.classes_))} of the earlier calls"
                )
            if multilabel and y.shape[1] != len(self.classes_):
                raise InvalidArgumentError(f"y has {y.shape[1]} labels but the classifier was fitted on "
                                           f"{len(self.classes_)}")
        if multilabel and self._loss_kind() == "hinge":
            raise InvalidArgumentError(
                "loss='hinge' is the multi-class (Crammer-Singer) hinge and cannot score several labels at once; "
                "use loss='log_loss' for a multi-label y"
            )
        if multilabel:
            targets = np.asarray(y, dtype=np.float64)
            index = None
        else:
            unknown = np.setdiff1d(unique_labels(y), self.classes_)
            if unknown.size:
                raise InvalidArgumentError(
                    f"y contains labels {describe(list(unknown))} that are not in classes_ "
                    f"{describe(list(self.classes_))}"
                    + (" (warm_start keeps the classes of the first fit)" if reuse and not incremental else "")
                )
            index = np.searchsorted(self.classes_, y)
            if not incremental:
                self._check_two_classes(index, " in y")
            targets = index.astype(np.float64) if self._mode == "binary" else index
        weights = sample_weight
        if self.class_weight is not None:
            cw = self._class_sample_weight(y, index, sample_weight)
            weights = cw if weights is None else weights * cw
        return targets, weights

    def _check_two_classes(self, index, when):
        if self._mode == "multilabel":
            return
        present = np.unique(index)
        if present.size < 2:
            raise InvalidArgumentError(
                f"only 1 class ({self.classes_[int(present[0])]!r}) is left{when}; a classifier needs "
                f"samples of at least 2 classes"
            )

    def _class_sample_weight(self, y, index, sample_weight):
        cw = self.class_weight
        if self._mode == "multilabel":
            return compute_sample_weight(cw, y).astype(np.float64)
        if isinstance(cw, str):
            if cw != "balanced":
                raise InvalidArgumentError(f"class_weight must be a dict, 'balanced' or None, got {cw!r}")
            # n / (k n_c), with n and n_c weighted by sample_weight (scikit-learn >= 1.7):
            # weighting a sample by 2 is then the same as repeating it
            w = np.ones(index.size) if sample_weight is None else sample_weight
            counts = np.bincount(index, weights=w, minlength=len(self.classes_))
            present = counts > 0
            table = np.zeros(len(self.classes_))
            table[present] = counts.sum() / (present.sum() * counts[present])
            return table[index]
        if not isinstance(cw, dict):
            raise InvalidArgumentError(f"class_weight must be a dict, 'balanced' or None, got {describe(cw)}")
        table = np.ones(len(self.classes_))
        for label, value in cw.items():
            pos = np.flatnonzero(self.classes_ == label)
            if pos.size != 1:
                raise InvalidArgumentError(
                    f"class_weight has the label {label!r}, which is not a class (classes_ = "
                    f"{describe(list(self.classes_))})"
                )
            table[pos[0]] = _real(value, f"class_weight[{label!r}]", 0.0)
        return table[index]

    # ------------------------------------------------------------ predict
    def predict(self, X):
        """Predicted class labels, shape (n_samples,) (an indicator matrix for multi-label)."""
        out = self._forward(X)
        if self._mode == "multilabel":
            return (out > 0.5).astype(self._multilabel_dtype)
        if self._mode == "binary":
            threshold = 0.0 if self.network_.loss.name == "hinge" else 0.5
            return self.classes_[(out[:, 0] > threshold).astype(np.intp)]
        return self.classes_[out.argmax(axis=1)]

    @available_if(_has_proba)
    def predict_proba(self, X):
        """Class probabilities, shape (n_samples, n_classes) (for multi-label: each label's probability).

        Float32 models give float32 probabilities.
        """
        p = self._forward(X)
        if self._mode == "binary":
            return np.hstack([1.0 - p, p])
        return p

    @available_if(_has_proba)
    def predict_log_proba(self, X):
        """Log-probabilities from the output pre-activations (finite where ``log(predict_proba)`` underflows).

        Softmax: ``log p_j = z_j - logsumexp(z)``; sigmoid: ``log p = -softplus(-z)``
        and ``log(1 - p) = -softplus(z)``.
        """
        z = self._logits(X)
        if self._mode == "multiclass":
            z = z - z.max(axis=1, keepdims=True)
            return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

        def softplus(v):
            return np.maximum(v, 0) + np.log1p(np.exp(-np.abs(v)))

        if self._mode == "binary":
            return np.hstack([-softplus(z), -softplus(-z)])
        return -softplus(-z)

    @available_if(_has_decision)
    def decision_function(self, X):
        """Hinge margins: (n_samples,) for two classes (> 0 means ``classes_[1]``), else (n_samples, n_classes)."""
        out = self._forward(X)
        return out[:, 0] if self._mode == "binary" else out

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch over ``(X, y)``, continuing from the current state (optimizer state included).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
        classes : array-like, optional
            All class labels; required in the first call (unless ``y`` is
            a multi-label indicator matrix).
        sample_weight : array-like of shape (n_samples,), optional

        Notes
        -----
        With ``early_stopping=True`` each call holds out
        ``validation_fraction`` of its own samples (the same rows whenever
        the number of samples is the same, so looping over one data set
        never trains on its validation rows) and the ``n_iter_no_change``
        rule runs across calls; once it fires, the best weights are
        restored, ``stopped_early_`` becomes True and later calls change
        nothing until :meth:`fit` is called (scikit-learn's MLP refuses
        ``partial_fit`` with early stopping altogether).
        """
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    # --------------------------------------------------------------- files
    def _file_classes(self):
        return [int(c) if isinstance(c, (bool, np.bool_)) else (c.item() if hasattr(c, "item") else c)
                for c in self.classes_]

    def _extra_state(self):
        kind = self.classes_.dtype.kind
        cls_dtype = "str" if kind == "U" else ("object" if kind == "O" else self.classes_.dtype.name)
        return {"mode": self._mode, "classes_dtype": cls_dtype,
                "multilabel_dtype": None if self._multilabel_dtype is None else np.dtype(self._multilabel_dtype).name}

    def _restore_state(self, path, state, net):
        mode = state.get("mode")
        if mode not in ("binary", "multiclass", "multilabel"):
            raise ModelFileError(
                f"{path}: classifier mode must be 'binary', 'multiclass' or 'multilabel', got {mode!r}"
            )
        classes = getattr(net, "classes", None)
        if classes is None:
            raise ModelFileError(f"{path}: a classifier file must hold its class labels")
        dt = state.get("classes_dtype")
        if dt not in _CLASS_DTYPES:
            raise ModelFileError(f"{path}: classes_dtype {dt!r} is not one of {sorted(_CLASS_DTYPES)}")
        if dt == "object":
            self.classes_ = np.empty(len(classes), dtype=object)
            self.classes_[:] = classes
        else:
            self.classes_ = np.asarray(classes, dtype=str if dt == "str" else dt)
        expected = 1 if mode == "binary" else len(self.classes_)
        if net.n_out != expected or (mode == "binary") != (len(self.classes_) == 2):
            raise ModelFileError(f"{path}: {len(self.classes_)} classes ({mode}) do not fit a network with "
                                 f"{net.n_out} outputs")
        ml = state.get("multilabel_dtype")
        if mode == "multilabel" and ml not in ("int64", "int32", "int8", "uint8", "bool", "float64", "float32"):
            raise ModelFileError(f"{path}: multilabel_dtype {ml!r} is not valid")
        self._mode = mode
        self._multilabel_dtype = np.dtype(ml) if mode == "multilabel" else None
        try:
            if self._output_spec()[1] != getattr(net.loss, "name", None):
                raise ModelFileError(f"{path}: the network's loss {getattr(net.loss, 'name', None)!r} does not "
                                     f"match loss={self.loss!r}")
        except InvalidArgumentError as exc:
            raise ModelFileError(f"{path}: {exc}") from None


# ------------------------------------------------------------- regressor
class DeltapropRegressor(RegressorMixin, _DeltapropMLP):
    """Multilayer perceptron regressor trained by deltaprop (``MLPRegressor`` with more in it).

    Linear outputs, one per target column, trained with squared, absolute or
    Huber error. Parameters and attributes are those of
    :class:`DeltapropClassifier` (less ``class_weight`` and ``classes_``;
    early stopping watches the validation R² and does not stratify) except:

    Parameters
    ----------
    loss : str, dict or deltaprop Loss, default "squared_error"
        "squared_error" (mean over outputs, no factor ½), "absolute_error",
        "huber" (δ = 1) or ``{"name": "huber", "delta": 0.5}``; deltaprop's
        names and aliases ("mse", "mae", ...) and registered regression
        losses work too.

    Attributes
    ----------
    validation_scores_ : list of float or None
        Validation R² of each epoch (early stopping only).

    Notes
    -----
    ``predict`` returns the shape of the ``y`` it was fitted on: 1-D for a
    1-D ``y``, ``(n_samples, n_outputs)`` for a 2-D one.
    """

    _task = "regression"

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", loss="squared_error", optimizer="adam",
                 learning_rate=None, schedule=None, batch_size="auto", epochs=200, alpha=1e-4, dropout=0.0,
                 initializer="glorot_uniform", early_stopping=False, validation_fraction=0.1, n_iter_no_change=10,
                 tol=1e-4, shuffle=True, dtype=None, random_state=None, warm_start=False, verbose=0):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.loss = loss
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.schedule = schedule
        self.batch_size = batch_size
        self.epochs = epochs
        self.alpha = alpha
        self.dropout = dropout
        self.initializer = initializer
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.shuffle = shuffle
        self.dtype = dtype
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _loss(self):
        spec = self.loss
        if isinstance(spec, _losses.Loss) or (callable(getattr(spec, "value", None)) and not isinstance(spec, type)):
            try:  # rebuild from the config: never share (or change) the user's object
                loss = _losses.get(spec.get_config())
            except (AttributeError, InvalidArgumentError):
                loss = copy.deepcopy(spec)
        else:
            loss = _losses.get(spec)
        if getattr(loss, "task", "regression") != "regression":
            raise InvalidArgumentError(
                f"loss must be a regression loss ('squared_error', 'absolute_error', 'huber', ...) for a "
                f"regressor, got {describe(self.loss)} (use DeltapropClassifier for classification)"
            )
        return loss

    def _output_spec(self):
        loss = self._loss()
        return "identity", (loss.get_config() if hasattr(loss, "get_config") else loss)

    def _n_outputs(self):
        return self._n_targets

    def _prepare_targets(self, y, reuse, incremental, classes, sample_weight):
        if classes is not None:
            raise InvalidArgumentError("classes is for classifiers; a regressor's partial_fit takes none")
        n_out = 1 if y.ndim == 1 else y.shape[1]
        if reuse:
            if n_out != self._n_targets:
                raise InvalidArgumentError(f"y has {n_out} outputs but the regressor was fitted on {self._n_targets}")
        else:
            self._n_targets = n_out
            self._y_ndim = y.ndim
        return np.asarray(y, dtype=np.float64).reshape(y.shape[0], n_out), sample_weight

    def predict(self, X):
        """Predicted targets, shape (n_samples,) or (n_samples, n_outputs), in the network's dtype."""
        out = self._forward(X)
        return out[:, 0] if self._y_ndim == 1 else out

    def _extra_state(self):
        return {"y_ndim": int(self._y_ndim)}

    def _restore_state(self, path, state, net):
        y_ndim = state.get("y_ndim")
        if y_ndim not in (1, 2) or (y_ndim == 1 and net.n_out != 1):
            raise ModelFileError(f"{path}: y_ndim {y_ndim!r} does not fit a network with {net.n_out} outputs")
        self._y_ndim = y_ndim
        self._n_targets = net.n_out
