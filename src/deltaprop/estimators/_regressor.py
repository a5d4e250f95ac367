"""Multilayer perceptron regressor: :class:`DeltapropRegressor`.

Linear outputs, one per target column, with any of deltaprop's regression
losses.
"""

import copy

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.utils.validation import check_is_fitted

from .. import losses as _losses
from ..errors import InvalidArgumentError, ModelFileError, describe
from ..export import Head
from . import _onnx
from ._base import _DeltapropMLP

__all__ = ["DeltapropRegressor"]


@_onnx.converted_by_skl2onnx(_onnx.REGRESSOR_ALIAS)
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
    DataFrames with categorical columns or missing values, scipy sparse
    matrices and ``ConvergenceWarning`` work as in
    :class:`DeltapropClassifier` (``categorical_features``, ``preprocess``,
    ``contract_``, ``norm``, ``residual``, ``embed_categories``). ``predict`` returns the shape of
    the ``y`` it was fitted on: 1-D for a
    1-D ``y``, ``(n_samples, n_outputs)`` for a 2-D one. ONNX export
    (``deltaprop.export_onnx``, or skl2onnx in a pipeline after
    :func:`~deltaprop.estimators.register_skl2onnx`) works as the
    classifier's; skl2onnx's output is ``(n_samples, n_outputs)`` even for a
    1-D ``y``, as for every scikit-learn regressor.
    """

    _task = "regression"

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", loss="squared_error", optimizer="adam",
                 learning_rate=None, schedule=None, batch_size="auto", epochs=200, alpha=1e-4, dropout=0.0,
                 initializer="glorot_uniform", early_stopping=False, validation_fraction=0.1, n_iter_no_change=10,
                 tol=1e-4, shuffle=True, dtype=None, random_state=None, warm_start=False, verbose=0,
                 categorical_features="from_dtype", preprocess="auto", norm=None, residual=False,
                 embed_categories=None):
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
        self.categorical_features = categorical_features
        self.preprocess = preprocess
        self.norm = norm
        self.residual = residual
        self.embed_categories = embed_categories

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
        """(output activation, loss config): identity, whatever the loss, since a regressor's outputs are linear."""
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

    def _onnx_parts(self):
        """``(network, contract or None, head)``: what :func:`deltaprop.export.to_onnx` writes for this estimator.

        The head computes what :meth:`predict` computes: the network's
        outputs in its dtype (no target scaling), shape (n_samples,) for a
        1-D ``y``.
        """
        check_is_fitted(self, "network_")
        net = self.network_
        return net, getattr(self, "contract_", None), Head("values", squeeze=self._y_ndim == 1, dtype=net.dtype)

    def _extra_state(self):
        return {"y_ndim": int(self._y_ndim)}

    def _restore_state(self, path, state, net):
        y_ndim = state.get("y_ndim")
        if y_ndim not in (1, 2) or (y_ndim == 1 and net.n_out != 1):
            raise ModelFileError(f"{path}: y_ndim {y_ndim!r} does not fit a network with {net.n_out} outputs")
        self._y_ndim = y_ndim
        self._n_targets = net.n_out
