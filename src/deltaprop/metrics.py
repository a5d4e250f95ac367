"""Metrics computed over a run of batches, and the one rule that reads a class from outputs.

A metric accumulates weighted sums batch by batch and reports one number,
so an epoch's training metric is exact over the epoch (not an average of
per-batch ratios) and a validation metric can be computed in chunks::

    metric.reset(n_out); metric.update(a, y, w); ...; metric.result()

Every metric's state is one float64 vector of additive sums, ``metric.sums``,
so partial results merge by addition: a checkpoint stores the vector, and
data-parallel ranks add theirs with one all-reduce (``batch_sums`` gives one
batch's vector without adding it).

``a`` is the network's output ``(m, n_out)``, ``y`` the prepared targets
``(m, n_out)`` and ``w`` the per-sample weights ``(m,)`` (ones without
sample weights).

Reading a class
---------------
:func:`predicted_classes` is how deltaprop reads a class from outputs,
everywhere (metrics, the command line, the estimators): the argmax over
outputs, the first one on a tie; for a single output, class 1 when the
output is strictly above the loss's ``decision_threshold`` (0.5 for a
probability, 0 for a hinge margin), so an output of exactly 0.5 is class 0,
as in scikit-learn and Keras, and as the argmax of ``[0.5, 0.5]``.
"""

import re

import numpy as np

from .checks import check_positive_int
from .errors import InvalidArgumentError
from .registry import Registry, normalize

__all__ = ["Metric", "Accuracy", "TopKAccuracy", "MeanSquaredError", "MeanAbsoluteError", "R2", "get", "register",
           "build", "default_metric", "predicted_classes", "class_index", "REGISTRY"]


def predicted_classes(a, threshold=0.5):
    """Class index of each row of outputs ``a`` (m, n_out): argmax (first of ties), or ``a > threshold`` for one output.

    Pass the loss's ``decision_threshold`` (0 for a hinge margin).
    """
    if a.shape[1] == 1:
        return (a[:, 0] > threshold).astype(np.int64)
    return a.argmax(axis=1)


def class_index(Y):
    """True class of each prepared target row and the number of classes: ``(index, n_classes)``.

    Targets are read by the same rule as outputs (:func:`predicted_classes`),
    with a probability threshold: 0/1 labels of one output, or one-hot rows.
    """
    if Y.shape[1] == 1:
        return predicted_classes(Y, 0.5), 2
    return predicted_classes(Y), Y.shape[1]


class Metric:
    name = "metric"
    #: True when larger is better (early stopping's direction)
    higher_is_better = True

    def __init__(self):
        self.reset(1)

    def reset(self, n_out):
        """Zero the sums for a network with ``n_out`` outputs."""
        self.sums = np.zeros(2)  # [Σ w·score, Σ w]

    # Subclasses define batch_sums (or, for sums that cannot be formed apart, update).
    def batch_sums(self, a, y, w):
        """One batch's sums, the vector :meth:`update` adds to ``sums``."""
        kept = self.sums
        self.sums = np.zeros_like(kept)
        try:
            self.update(a, y, w)
            return self.sums
        finally:
            self.sums = kept

    def update(self, a, y, w):
        """Add one batch to ``sums``."""
        self.sums += self.batch_sums(a, y, w)

    def result(self):
        num, den = self.sums
        return float(num / den) if den else float("nan")

    def get_config(self):
        return {"name": self.name}


class Accuracy(Metric):
    """Weighted fraction of samples whose predicted class is the true class.

    With several sigmoid outputs (multi-label), the fraction of samples
    whose every label is right (scikit-learn's subset accuracy).
    """

    name = "accuracy"

    def __init__(self, threshold=0.5, multilabel=False):
        self.threshold = threshold
        self.multilabel = multilabel
        super().__init__()

    def batch_sums(self, a, y, w):
        if self.multilabel:
            correct = np.all((a > self.threshold) == (y > 0.5), axis=1)
        else:
            correct = predicted_classes(a, self.threshold) == class_index(y)[0]
        return np.array([float(correct @ w), float(w.sum())])


class TopKAccuracy(Metric):
    """Weighted fraction of samples whose true class is among the ``k`` largest outputs."""

    name = "top_k_accuracy"

    def __init__(self, k=5):
        self.k = check_positive_int(k, "top-k accuracy's k")
        super().__init__()

    def batch_sums(self, a, y, w):
        k = min(self.k, a.shape[1])
        true = y.argmax(axis=1)
        top = np.argpartition(-a, k - 1, axis=1)[:, :k]
        hit = (top == true[:, None]).any(axis=1)
        return np.array([float(hit @ w), float(w.sum())])

    def get_config(self):
        return {"name": self.name, "k": self.k}


class MeanSquaredError(Metric):
    """Weighted mean over samples of the mean squared error over outputs."""

    name = "mse"
    higher_is_better = False

    def batch_sums(self, a, y, w):
        r = a - y
        return np.array([float(np.mean(r * r, axis=1) @ w), float(w.sum())])


class MeanAbsoluteError(Metric):
    """Weighted mean over samples of the mean absolute error over outputs."""

    name = "mae"
    higher_is_better = False

    def batch_sums(self, a, y, w):
        return np.array([float(np.mean(np.abs(a - y), axis=1) @ w), float(w.sum())])


class R2(Metric):
    r"""Coefficient of determination, ``1 - SS_res / SS_tot``, averaged over outputs.

    Sums are accumulated in float64 (``Σw``, ``Σw y``, ``Σw y²``, ``Σw r²``
    per output), so the result over many batches equals the one-shot value.
    A constant target gives ``SS_tot = 0``: the output scores 1 when
    predicted exactly and 0 otherwise (scikit-learn's convention). The sums
    are additive (so batches, checkpoints and ranks merge by addition), and
    ``SS_tot = Σw y² − (Σw y)²/Σw`` is taken as 0 below ``1e-12 Σw y²``,
    where it is rounding, not spread.
    """

    name = "r2"

    def reset(self, n_out):
        self.n_out = n_out
        self.sums = np.zeros(1 + 3 * n_out)  # [Σw, Σw y (n_out), Σw y² (n_out), Σw r² (n_out)]

    def batch_sums(self, a, y, w):
        w64 = w.astype(np.float64)[:, None]
        y64 = y.astype(np.float64)
        r = y64 - a
        return np.concatenate(([float(w64.sum())], (w64 * y64).sum(axis=0), (w64 * y64 * y64).sum(axis=0),
                               (w64 * r * r).sum(axis=0)))

    def result(self):
        sw, k = self.sums[0], self.n_out
        if not sw:
            return float("nan")
        sy, syy, sres = self.sums[1:1 + k], self.sums[1 + k:1 + 2 * k], self.sums[1 + 2 * k:]
        ss_tot = syy - sy * sy / sw
        # Σw y² − (Σw y)²/Σw cancels for a constant target: what is left below
        # 1e-12 Σw y² is rounding (a coefficient of variation under 1e-6), not spread.
        ss_tot = np.where(ss_tot > 1e-12 * syy, ss_tot, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            score = np.where(ss_tot > 0, 1.0 - sres / np.where(ss_tot > 0, ss_tot, 1.0),
                             np.where(sres == 0, 1.0, 0.0))
        return float(np.mean(score))


REGISTRY = {
    "accuracy": Accuracy,
    "top_k_accuracy": TopKAccuracy,
    "mse": MeanSquaredError,
    "mae": MeanAbsoluteError,
    "r2": R2,
}
_ALIASES = {"acc": "accuracy", "mean_squared_error": "mse", "mean_absolute_error": "mae", "r_squared": "r2",
            "top_k": "top_k_accuracy", "top5": "top_k_accuracy", "top_5_accuracy": "top_k_accuracy"}


_REGISTRY = Registry("metric", REGISTRY, _ALIASES, base=Metric, methods=("update",),
                     hint=" (and topK, e.g. top3)")
_TOP_K = re.compile(r"top_?(\d+)")


def register(name, cls):
    """Register a metric class (or factory) under ``name`` for :func:`get`."""
    return _REGISTRY.register(name, cls)


def get(spec):
    """Resolve a metric from a name (``"accuracy"``, ``"top3"``...), a config dict or an instance."""
    if isinstance(spec, (str, dict)):
        name, params = _REGISTRY.split(spec)
        match = _TOP_K.fullmatch(normalize(name))
        if match:  # "top3" is top_k_accuracy with k=3
            return _REGISTRY.build("top_k_accuracy", {"k": int(match.group(1)), **params})
    return _REGISTRY.resolve(spec)


def build(specs, loss, n_out):
    """The metrics of a run, configured for its loss and output count (each reset).

    ``specs`` is None (the loss's natural metric), one spec or a list of
    them. Accuracy reads classes with the loss's ``decision_threshold``, and
    with several binary cross-entropy outputs (multi-label) scores a sample
    right only when every label is.
    """
    if specs is None:
        specs = [default_metric(loss)]
    elif isinstance(specs, (str, dict)) or isinstance(specs, Metric):
        specs = [specs]
    out = []
    for spec in specs:
        m = get(spec)
        if isinstance(m, Accuracy):
            chosen = isinstance(spec, Metric) or (isinstance(spec, dict) and "threshold" in spec)
            if n_out == 1 and not chosen:  # a threshold the user chose is kept
                m.threshold = getattr(loss, "decision_threshold", 0.5)
            m.multilabel = getattr(loss, "name", None) == "binary_crossentropy" and n_out > 1
        m.reset(n_out)
        out.append(m)
    names = [m.name for m in out]
    if len(set(names)) != len(names):
        raise InvalidArgumentError(f"metrics repeat a name: {names}")
    return out


def default_metric(loss):
    """The loss's natural metric: accuracy for classification losses, R² for regression."""
    return "accuracy" if getattr(loss, "task", "regression") == "classification" else "r2"
