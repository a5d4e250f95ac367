"""What :class:`DeltapropClassifier` and :class:`DeltapropRegressor` share: parameters, fitting, stopping, prediction.

A subclass says what its targets are: ``_task``, ``_output_spec()`` (output activation and loss),
``_n_outputs()``, ``_prepare_targets(...)``, and for model files ``_extra_state()``, ``_file_classes()`` and
``_restore_state(...)``.
"""

import copy
import math
import numbers
import os
import warnings

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, column_or_1d, validate_data

from .. import optimizers as _optimizers
from .. import schedules as _schedules
from .. import training
from ..checks import check_bool, check_dtype, check_number, check_positive_int
from ..errors import DeltapropError, InvalidArgumentError, InvalidTypeError, ModelFileError, describe
from ..tabular.model import explain, feature_groups
from . import _files, _network
from . import _inputs as inputs
from ._callbacks import SklearnBatchL2AndStopping

__all__ = ["expected_failed_checks"]

_FLOAT_DTYPES = inputs.FLOAT_DTYPES
_SPARSE = inputs.SPARSE_FORMATS
#: scikit-learn's estimator checks that call partial_fit
_PARTIAL_FIT_CHECKS = ("check_estimators_partial_fit_n_features", "check_n_features_in_after_fitting",
                       "check_fit_score_takes_y")


def _sized_by_run(schedule):
    return getattr(schedule, "sized_by_run", False)


def expected_failed_checks(estimator):
    """scikit-learn estimator checks that cannot pass for ``estimator``'s settings, with the reason.

    For ``parametrize_with_checks(..., expected_failed_checks=expected_failed_checks)``; the defaults fail none.

    ``check_sample_weight_equivalence_on_dense_data`` (and ``..._on_sparse_data``) demands that an integer
    weight give the same fit as repeating the sample, to rtol 1e-7: true for full-batch training, which the
    default ``batch_size="auto"`` is on that check's 15 to 60 samples, but not when a random draw touches rows
    one by one. The checks that call ``partial_fit`` cannot pass with a schedule whose length comes from the
    run (``{"name": "cosine"}`` without ``total_steps``), which ``partial_fit`` refuses.
    """
    reasons = []
    if getattr(estimator, "early_stopping", False):
        reasons.append("early_stopping draws the validation rows at random, and repeated rows are drawn apart")
    dropout = getattr(estimator, "dropout", 0.0)
    if any(np.ravel(dropout)) if isinstance(dropout, (list, tuple)) else dropout:
        reasons.append("dropout draws a mask per row, so a repeated row gets different masks")
    if not isinstance(getattr(estimator, "batch_size", "auto"), str):
        reasons.append("a fixed batch_size splits repeated rows over different mini-batches")
    failing = {}
    if reasons:
        failing = dict.fromkeys(("check_sample_weight_equivalence_on_dense_data",
                                 "check_sample_weight_equivalence_on_sparse_data"), "; ".join(reasons))
    try:
        run_sized = _sized_by_run(estimator._build_schedule())
    except (AttributeError, ValueError, TypeError):  # not ours, or an invalid schedule (fit reports it)
        run_sized = False
    if run_sized:
        why = "partial_fit refuses a schedule whose length comes from the run (give it total_steps)"
        failing.update(dict.fromkeys(_PARTIAL_FIT_CHECKS, why))
    return failing


class _DeltapropMLP(BaseEstimator):
    """Shared machinery of :class:`DeltapropClassifier` and :class:`DeltapropRegressor`."""

    _task = None  # "classification" or "regression"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # scipy sparse X trains and predicts as SparseRows, never densified
        return tags

    # --------------------------------------------------------- parameters
    def _hidden_sizes(self):
        h = self.hidden_layer_sizes
        if isinstance(h, numbers.Integral) and not isinstance(h, bool):
            h = (h,)
        if not isinstance(h, (list, tuple, np.ndarray)):
            raise InvalidArgumentError(f"hidden_layer_sizes must be a positive integer or a sequence of them, "
                                       f"got {describe(h)}")
        return [check_positive_int(v, f"hidden_layer_sizes[{i}]") for i, v in enumerate(h)]

    def _make_network(self, n_in, dtype, seed):
        """The network: ``Network.from_sizes`` with this estimator's sizes, layers options and output."""
        return _network.make_network(self, [n_in, *self._hidden_sizes(), self._n_outputs()], dtype, seed)

    def _learning_rate(self):
        lr = self.learning_rate
        if lr is None:
            return None
        if isinstance(lr, str):
            raise InvalidArgumentError(
                f"learning_rate is the step size η (a positive number), got {lr!r}; scikit-learn's "
                f"learning_rate={lr!r} schedule is schedule={lr!r} here"
            )
        return check_number(lr, "learning_rate", low=0.0, low_open=True)

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
        """A new optimizer, and the key that says when a warm start may keep the old one (None: never)."""
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
        return check_number(self.alpha, "alpha", low=0.0)

    def _build_schedule(self):
        spec = self.schedule
        if spec == "adaptive":
            return _schedules.Constant()  # the rate changes in _end_epoch
        if isinstance(spec, _schedules.Schedule):
            return copy.deepcopy(spec)
        return _schedules.get(spec)

    def _check_incremental_schedule(self):
        """``partial_fit`` cannot size a schedule by the run: the run is open-ended, one epoch per call."""
        if _sized_by_run(self._build_schedule()):
            raise InvalidArgumentError(
                f"schedule={describe(self.schedule)} takes its length from the run, which partial_fit cannot "
                f"know (each call is one more epoch); give the schedule its length, e.g. "
                f"{{'name': 'cosine', 'total_steps': 1000}} (steps; with 'per_epoch': True, epochs), or use fit"
            )

    def _resolve_dtype(self, X):
        if self.dtype is None:
            return np.dtype(X.dtype) if X.dtype in (np.float32, np.float64) else np.dtype(np.float64)
        return check_dtype(self.dtype)

    def _batch_size(self, n):
        if isinstance(self.batch_size, str):
            if self.batch_size != "auto":
                raise InvalidArgumentError(f"batch_size must be 'auto' or a positive integer, got {self.batch_size!r}")
            return min(200, n)
        return min(check_positive_int(self.batch_size, "batch_size"), n)

    def _check_params(self):
        """Validate the parameters that need no data (scikit-learn validates in fit, not __init__)."""
        check_positive_int(self.epochs, "epochs")
        check_positive_int(self.n_iter_no_change, "n_iter_no_change")
        check_number(self.tol, "tol", low=0.0)
        check_number(self.validation_fraction, "validation_fraction", low=0.0, high=1.0, low_open=True,
                     high_open=True)
        self._alpha()
        self._learning_rate()
        self._hidden_sizes()
        check_bool(self.shuffle, "shuffle")
        check_bool(self.early_stopping, "early_stopping")
        check_bool(self.warm_start, "warm_start")
        if self.dtype is not None:
            check_dtype(self.dtype)
        inputs.check_preprocess(self.preprocess)
        inputs.check_categorical_features(self.categorical_features)
        _network.check_layer_options(self.norm, self.residual, self.embed_categories)

    # ------------------------------------------------------------ fitting
    def fit(self, X, y, sample_weight=None):
        """Train for ``epochs`` passes over ``(X, y)`` (fewer if the ``n_iter_no_change`` rule stops it).

        Parameters
        ----------
        X : array-like, scipy sparse matrix or DataFrame of shape (n_samples, n_features)
            A pandas or polars DataFrame with categorical columns or missing values goes through a data
            contract fitted here (see ``preprocess``).
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Class labels (an indicator matrix for multi-label classification) or real targets.
        sample_weight : array-like of shape (n_samples,), optional
            Each batch loss becomes ``Σ w_i ℓ_i / Σ w_i``; samples of weight 0 are left out of training
            altogether.

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight, incremental=False)

    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over ``(X, y)``, continuing from the current state (optimizer state included).

        See :meth:`DeltapropClassifier.partial_fit` for how it works with ``early_stopping``.
        """
        return self._fit(X, y, sample_weight, incremental=True)

    def _fit(self, X, y, sample_weight, incremental, classes=None):
        self._check_params()
        if incremental:
            self._check_incremental_schedule()
        reuse = hasattr(self, "network_") and (incremental or self.warm_start)
        X, y, dtype, contract = self._fit_inputs(X, y, reuse)
        if self._task == "classification" and y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if incremental and reuse and self.early_stopping and getattr(self, "stopped_early_", False):
            return self  # early stopping ended this partial_fit sequence; fit() starts a new one
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        targets, weights = self._prepare_targets(y, reuse, incremental, classes, sample_weight)
        if not reuse:
            self.contract_ = contract
            self._initialize(X.shape[1], dtype)
        else:
            self._check_architecture()
            self._refresh_optimizer()
        if not incremental:
            self._reset_stopping()
        X, targets, weights, val = self._training_rows(X, y, targets, weights, incremental)
        self._train(X, targets, weights, val, incremental)
        return self

    def _fit_inputs(self, X, y, reuse):
        """``(X, y, dtype, contract)`` for fitting (see :func:`deltaprop.estimators._inputs.fit_inputs`)."""
        return inputs.fit_inputs(self, X, y, reuse)

    def _training_rows(self, X, y, targets, weights, incremental):
        """The rows to train on, and the validation set ``(X, targets, weights)`` of early stopping (or None)."""
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
        return X, targets, weights, val

    def _train(self, X, targets, weights, val, incremental):
        """Run :func:`deltaprop.training.fit` for one ``fit`` (``epochs`` epochs) or ``partial_fit`` (one epoch)."""
        # Equal weights train as plain means (faster); the callback still needs Σw per batch.
        equal = weights is not None and bool(np.all(weights == weights[0]))
        decoupled = getattr(self._optimizer, "decoupled_decay", False)
        callback = SklearnBatchL2AndStopping(self, 0.0 if decoupled else self._alpha(), decoupled,
                                             weights if equal else None, incremental)
        metric = "accuracy" if self._task == "classification" else "r2"
        epochs_before = len(self.loss_curve_)
        training.fit(
            self.network_, X, targets, epochs=1 if incremental else self.epochs,
            batch_size=self._batch_size(X.shape[0]), optimizer=self._optimizer, schedule=self._schedule,
            shuffle=bool(self.shuffle), validation_data=val, metrics=[metric] if val is not None else [],
            callbacks=[callback], sample_weight=None if weights is None or equal else weights, verbose=0,
            initial_step=self._steps,  # the schedule's clock runs on across fit/partial_fit calls
        )
        self._steps = callback.final_step
        self.n_iter_ = len(self.loss_curve_)
        epochs_run = len(self.loss_curve_) - epochs_before
        self.t_ = getattr(self, "t_", 0) + X.shape[0] * epochs_run
        if self.early_stopping and not incremental and self._best_params is not None:
            np.copyto(self.network_.params, self._best_params)
            np.copyto(self.network_.buffers, self._best_buffers)
        if not incremental and not self.stopped_early_ and epochs_run == self.epochs:
            # scikit-learn's MLP warns on the same condition ("Maximum iterations ... reached")
            what = "validation score" if self.early_stopping else "training loss"
            warnings.warn(
                f"{type(self).__name__}: the maximum number of epochs ({self.epochs}) was reached and the "
                f"optimization hasn't converged yet (the {what} was still improving by more than tol={self.tol} "
                f"within n_iter_no_change={self.n_iter_no_change} epochs); raise epochs to train longer",
                ConvergenceWarning, stacklevel=4)

    def _split(self, n, y, incremental):
        """Training and validation row indices for early stopping.

        ``fit`` draws the split from ``random_state`` and stratifies by class where every class can appear on
        both sides (as scikit-learn); ``partial_fit`` uses one fixed seed, so calls with the same number of
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
        self.network_ = self._make_network(n_in, dtype, seed)
        if self.contract_ is not None:
            self.contract_.silence_unused(self.network_)  # an unseen category adds nothing
        self._arch = self._architecture_key()
        self._optimizer, self._optimizer_key = self._build_optimizer()
        self._schedule = self._build_schedule()
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
        return repr((self._hidden_sizes(), self.activation, self.dropout, self._output_spec(), self.norm,
                     self.residual, self.embed_categories))  # not the initializer

    def _check_architecture(self):
        if self._architecture_key() != self._arch:
            raise InvalidArgumentError(
                "hidden_layer_sizes, activation, dropout, loss, norm, residual or embed_categories changed since the "
                "network was built; "
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
            self._schedule = self._build_schedule()
            self._schedule_param = self.schedule

    # ------------------------------------------- scikit-learn's stopping rule
    def _reset_stopping_fields(self):
        self._no_improvement_count = 0
        self._best_params = None
        self._best_buffers = None
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
                self._best_buffers = self.network_.buffers.copy()  # BatchNorm's running statistics
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
            np.copyto(self.network_.buffers, self._best_buffers)
        if self.verbose:
            what = "Validation score" if early else "Training loss"
            print(f"{what} did not improve more than tol={tol} for {self.n_iter_no_change} consecutive epochs. "
                  f"Stopping.")
        return True

    # --------------------------------------------------------- prediction
    def _forward(self, X, logits=False):
        """The network's outputs for ``X`` (shape (n_samples, n_out)), or the output pre-activations ``Z_L``.

        A finite float array of the fitted width (:func:`deltaprop.estimators._inputs.plain_rows`) goes to the
        network as it is: ``validate_data`` would pass it unchanged, and its values were just scanned. Everything
        else is checked by ``validate_data`` (or read through the data contract) first, as it always was.
        """
        if not hasattr(self, "network_"):
            check_is_fitted(self, "network_")  # scikit-learn's NotFittedError
        net = self.network_
        contract = getattr(self, "contract_", None)
        if contract is not None:
            X = inputs.contract_inputs(contract, X, net.dtype)
        else:
            rows = inputs.plain_rows(self, X)
            if rows is not None:
                return net._chunks(rows, logits=logits, finite_checked=True)
            X = validate_data(self, X, reset=False, dtype=_FLOAT_DTYPES, accept_sparse=_SPARSE)
        return net.logits(X) if logits else net.predict(X)

    def attributions(self, X, method="integrated_gradients", output=None, steps=64):
        """Attributions of each row's prediction (:func:`deltaprop.tabular.model.explain`; baseline: input 0).

        ``output``: a class label (default: each row's predicted class; multi-label: its most probable label) or
        a regression target's index. Per column of ``X``, or per original column through a data contract.
        """
        check_is_fitted(self, "network_")
        contract = getattr(self, "contract_", None)
        groups, names = (None, None) if contract is None else feature_groups(contract)
        if contract is not None:
            X = inputs.contract_inputs(contract, X, self.network_.dtype)
        else:
            X = validate_data(self, X, reset=False, dtype=_FLOAT_DTYPES, accept_sparse=_SPARSE)
            names = [str(c) for c in getattr(self, "feature_names_in_", [f"x{j}" for j in range(X.shape[1])])]
        return explain(self.network_, X, method, output, steps, classes=getattr(self, "classes_", None),
                       groups=groups, names=names)

    # ------------------------------------------------------- introspection
    @property
    def coefs_(self):
        """Weight matrices in scikit-learn's orientation, ``(n_in, n_out)``: views ``W.T`` of the network."""
        return [layer.W.T for layer in _network.plain_layers(self, "coefs_")]

    @property
    def intercepts_(self):
        """Bias vectors, views into the network."""
        return [layer.b for layer in _network.plain_layers(self, "intercepts_")]

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

    # --------------------------------------------------------------- files
    def save(self, path):
        """Save the fitted network to a deltaprop model file (safetensors; no pickle).

        The file holds the weights, the architecture, the class labels (for a classifier) and the estimator's
        parameters and fitted attributes, so that :meth:`load` returns an estimator that predicts identically;
        the file also opens with :func:`deltaprop.load` and the ``deltaprop`` command.

        Parameters
        ----------
        path : str or path-like
        """
        check_is_fitted(self, "network_")
        _files.save(self, path)

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
            Fitted, with ``network_`` loaded from the file. Parameters that could not be stored as JSON (a
            custom schedule function, say) take their default values, and an optimizer or schedule object comes
            back as its config; the network is exact either way. The file has no optimizer state:
            ``partial_fit`` or a warm start after loading starts the optimizer afresh (checkpoints of
            :func:`deltaprop.training.fit` resume exactly).

        Raises
        ------
        deltaprop.ModelFileError
            When the file is not a deltaprop model file, was saved by the other estimator class, or has a
            malformed estimator record.
        """
        estimator, network, record, curves = _files.load(cls, path)
        try:
            estimator._restore_fitted(os.fspath(path), network, record, curves)
        except DeltapropError:
            raise
        except (ValueError, TypeError, KeyError, OverflowError, RecursionError) as exc:
            # a record that passed the metadata validator yet cannot rebuild the estimator: the file's fault
            raise ModelFileError(f"{os.fspath(path)}: the estimator record is invalid: {type(exc).__name__}: "
                                 f"{exc}") from None
        return estimator

    def _restore_fitted(self, path, network, record, curves):
        """The fitted state a model file gives: the network, the curves, and what fitting would have set up."""
        self.network_ = network
        self._reset_stopping_fields()
        self.loss_curve_ = curves["loss_curve"]
        self.validation_scores_ = curves["validation_scores"]
        self.validation_loss_curve_ = curves["validation_loss_curve"]
        self.n_iter_ = len(self.loss_curve_)
        self.loss_ = self.loss_curve_[-1] if self.loss_curve_ else None
        self.best_loss_ = None if self.validation_scores_ is not None else min(self.loss_curve_, default=math.inf)
        self.best_validation_score_ = (max(self.validation_scores_, default=-math.inf)
                                       if self.validation_scores_ is not None else None)
        self._restore_state(path, record, network)
        # what fitting would have set up, so that warm_start and partial_fit continue from the file
        self._random_state = check_random_state(self.random_state)
        self._split_seed = int(self._random_state.randint(np.iinfo(np.int32).max))
        try:
            self._arch = self._architecture_key()
            self._optimizer, self._optimizer_key = self._build_optimizer()
            self._schedule = self._build_schedule()
        except (ValueError, TypeError) as exc:  # parameters that cannot build this network
            raise ModelFileError(f"{path}: estimator parameters are invalid: {exc}") from None
        self._schedule_param, self._steps, self.t_ = self.schedule, 0, 0

    def _restore_state(self, path, record, network):
        """The subclass's own fields of the record (mode, classes, target shape)."""
        raise NotImplementedError
