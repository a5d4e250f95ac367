"""Multilayer perceptron classifier: :class:`DeltapropClassifier`.

Binary, multi-class and multi-label targets; the choices that are a
classifier's own (which loss for which kind of target, class weights, the
labels) live here, the rules behind them in the core: the output activation
that matches a loss (:func:`deltaprop.losses.default_activation_for`), the
"balanced" rule (:func:`deltaprop.training.class_weights`) and the class an
output predicts (:func:`deltaprop.metrics.predicted_classes`).
"""

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
from sklearn.utils.validation import check_is_fitted

from .. import losses as _losses
from ..errors import InvalidArgumentError, ModelFileError, describe
from ..export import Head
from ..metrics import predicted_classes
from ..training import class_weights
from . import _onnx
from ._base import _DeltapropMLP

__all__ = ["DeltapropClassifier"]

#: dtypes of the class labels a model file may record
_CLASS_DTYPES = {"int64", "int32", "int16", "int8", "uint8", "uint16", "uint32", "uint64", "float64", "float32",
                 "bool", "str", "object"}


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


@_onnx.converted_by_skl2onnx(_onnx.CLASSIFIER_ALIAS)
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
        "per_epoch": True}``; its clock continues across ``fit`` (with
        ``warm_start``) and ``partial_fit`` calls. A schedule whose length
        comes from the run (``{"name": "cosine"}`` without ``total_steps``)
        spans each ``fit``'s epochs; ``partial_fit`` refuses it, since it
        cannot know how many calls will follow. ``"adaptive"`` is
        scikit-learn's: divide the rate by 5 each time the
        ``n_iter_no_change`` rule fires, and stop below 1e-6.
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
    categorical_features : "from_dtype", None or list of str or int, default "from_dtype"
        Which DataFrame columns are categorical, as in
        ``HistGradientBoostingClassifier``: "from_dtype" takes the category,
        string, object (of str) and bool columns of a DataFrame that has any
        column that is not numeric; a list names more columns (by name or
        position) whose values are categories even where they are numbers,
        and always sends a DataFrame through the data contract (an empty
        list included); None treats no column as categorical (a text column
        is then an error). Used only with ``preprocess="auto"``.
    preprocess : {"auto", None}, default "auto"
        "auto": a pandas or polars DataFrame with a categorical column or a
        missing value (or with a ``categorical_features`` list) goes
        through a data contract fitted in ``fit`` on the training rows
        (``contract_``): numeric columns imputed with the median (plus a
        missing indicator for a column with gaps) and scaled to zero mean
        and unit variance; categorical columns one-hot, with categories of
        fewer than 5 training rows (and beyond the 100 most frequent) pooled
        into an "other" slot, and a slot for missing values. Everything
        else is used as it is, exactly as scikit-learn's MLP uses it: a
        NumPy array, a scipy sparse matrix (trained on as CSR without
        being densified), and a DataFrame of numbers without gaps, which
        trains exactly like its ``to_numpy()`` (with scikit-learn's
        feature-name checks: reordered columns are an error). None: never
        the contract.
    norm : {None, "batch", "layer"}, default None
        BatchNorm or LayerNorm before each hidden activation (or opening
        each residual block); see :meth:`deltaprop.FeedForward.from_sizes`.
    residual : bool, default False
        A tabular ResNet (Gorishniy et al., 2021): each entry of
        ``hidden_layer_sizes`` is a residual block of that width.
    embed_categories : int or None, default None
        With a data contract: learn a vector of this size for each
        categorical column's categories (an Embedding first layer) instead
        of one-hot encoding them.

    Notes
    -----
    With a data contract, ``predict``, ``predict_proba`` and ``score``
    read a DataFrame's columns by name: their order does not matter, extra
    columns are ignored and a missing one is an error that names it. An
    unseen category falls into the "other" slot, whose weights start at 0
    when training pooled no category there (so it adds nothing, as
    ``OneHotEncoder(handle_unknown="ignore")``), and a missing cell is
    imputed: neither is an error. A NumPy array is matched to the columns
    by position. ``partial_fit`` fits the contract on its first call and
    reuses it; :meth:`save` keeps it. ``fit`` warns with scikit-learn's
    ``ConvergenceWarning`` when it ran all ``epochs`` without the
    ``n_iter_no_change`` rule firing (``partial_fit`` never warns).

    ONNX: ``deltaprop.export_onnx(clf, "clf.onnx")`` writes what ``predict``
    and ``predict_proba`` (or ``decision_function``) compute, its data
    contract included; in a scikit-learn pipeline, skl2onnx's ``to_onnx``
    converts it like any scikit-learn classifier (``zipmap`` and ``nocl``
    options included) once
    :func:`~deltaprop.estimators.register_skl2onnx` has been called.

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
        Columns of ``X`` (of the DataFrame, not the network's inputs, with a
        data contract).
    feature_names_in_ : ndarray of str
        Only when ``X`` had string column names.
    contract_ : deltaprop.tabular.DataContract or None
        The data contract fitted on a DataFrame's training rows (see
        ``preprocess``); None when ``X`` was used as it is.
    coefs_, intercepts_ : list of ndarray
        scikit-learn's view of the weights (``W.T``) and biases.
    n_layers_, n_outputs_, out_activation_
        As in scikit-learn.
    """

    _task = "classification"

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", loss="log_loss", optimizer="adam",
                 learning_rate=None, schedule=None, batch_size="auto", epochs=200, alpha=1e-4, dropout=0.0,
                 initializer="glorot_uniform", early_stopping=False, validation_fraction=0.1, n_iter_no_change=10,
                 tol=1e-4, class_weight=None, shuffle=True, dtype=None, random_state=None, warm_start=False, verbose=0,
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
        self.class_weight = class_weight
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
        """(output activation, loss): the loss for this kind of target, and the activation that matches it."""
        if self._loss_kind() == "hinge":
            loss = "hinge"  # binary, or Crammer-Singer for more classes
        elif self._mode == "multiclass":
            loss = "categorical_crossentropy"
        else:  # binary, or multi-label: one sigmoid per label
            loss = "binary_crossentropy"
        return _losses.default_activation_for(loss), loss

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
            self._learn_classes(y, multilabel, incremental, classes)
        else:
            self._check_classes(y, multilabel, classes)
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

    def _learn_classes(self, y, multilabel, incremental, classes):
        """``classes_`` and the mode ("binary", "multiclass" or "multilabel") of a first fit."""
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

    def _check_classes(self, y, multilabel, classes):
        """A later call's ``y`` (and ``classes``) must be of the kind, and have the labels, of the first."""
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
        """Each sample's class weight: deltaprop's rule (a dict keyed by label, or "balanced" weighted by
        ``sample_weight``, as scikit-learn >= 1.7); for multi-label ``y``, scikit-learn's ``compute_sample_weight``."""
        if self._mode == "multilabel":
            return compute_sample_weight(self.class_weight, y).astype(np.float64)
        return class_weights(self.class_weight, index, len(self.classes_), sample_weight=sample_weight,
                             labels=self.classes_)

    # ------------------------------------------------------------ predict
    def predict(self, X):
        """Predicted class labels, shape (n_samples,) (an indicator matrix for multi-label)."""
        out = self._forward(X)
        threshold = self.network_.loss.decision_threshold  # 0.5 for a probability, 0 for a hinge margin
        if self._mode == "multilabel":
            # every label is a one-output problem: the same rule, applied to each output on its own
            return predicted_classes(out.reshape(-1, 1), threshold).reshape(out.shape).astype(self._multilabel_dtype)
        return self.classes_[predicted_classes(out, threshold)]

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
        z = self._forward(X, logits=True)
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

    # ----------------------------------------------------------------- ONNX
    def _onnx_parts(self):
        """``(network, contract or None, head)``: what :func:`deltaprop.export.to_onnx` writes for this estimator.

        The head computes what :meth:`predict` and :meth:`predict_proba` (or
        :meth:`decision_function`) compute: the class whose output wins (one
        output: above the loss's ``decision_threshold``, 0.5 for a
        probability, 0 for a hinge margin; several: the argmax), the
        probabilities of a sigmoid or softmax output (two columns for one
        sigmoid), or the hinge margins as ``scores``; for multi-label ``y``
        the 0/1 indicator matrix in the dtype of the fitted ``y``.
        """
        check_is_fitted(self, "network_")
        net = self.network_
        threshold = net.loss.decision_threshold
        if self._mode == "multilabel":
            head = Head("multilabel", threshold=threshold, probabilities=True, dtype=self._multilabel_dtype)
        else:
            act = getattr(getattr(net.layers[-1], "activation", None), "name", None)
            head = Head("classes", classes=self.classes_, threshold=threshold,
                        probabilities=act in ("softmax", "sigmoid"))
        return net, getattr(self, "contract_", None), head

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
