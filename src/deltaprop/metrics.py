"""Metrics computed over a run of batches.

A metric accumulates weighted sums batch by batch and reports one number,
so an epoch's training metric is exact over the epoch (not an average of
per-batch ratios) and a validation metric can be computed in chunks::

    metric.reset(); metric.update(a, y, w); ...; metric.result()

Every metric's state is one float64 vector of additive sums, ``metric.sums``,
so partial results merge by addition: a checkpoint stores the vector, and
data-parallel ranks add theirs with one all-reduce.

``a`` is the network's output ``(m, n_out)``, ``y`` the prepared targets
``(m, n_out)`` and ``w`` the per-sample weights ``(m,)`` (ones without
sample weights). Classification metrics read the predicted class as the
argmax over outputs (or ``a ≥ 0.5`` for a single sigmoid output, ``a ≥ 0`` for
a single hinge output) and the true class likewise from ``y``.
"""

import numpy as np

from .errors import InvalidArgumentError, UnknownNameError, describe

__all__ = ["Metric", "Accuracy", "TopKAccuracy", "MeanSquaredError", "MeanAbsoluteError", "R2", "get", "REGISTRY",
           "default_metric"]


class Metric:
    name = "metric"
    #: True when larger is better (early stopping's direction)
    higher_is_better = True

    def __init__(self):
        self.reset(1)

    def reset(self, n_out):
        """Zero the sums for a network with ``n_out`` outputs."""
        self.sums = np.zeros(2)  # [Σ w·score, Σ w]

    def update(self, a, y, w):
        raise NotImplementedError

    def result(self):
        num, den = self.sums
        return float(num / den) if den else float("nan")

    def get_config(self):
        return {"name": self.name}


def _classes(a, threshold):
    if a.shape[1] == 1:
        return (a[:, 0] >= threshold).astype(np.int64)
    return a.argmax(axis=1)


class Accuracy(Metric):
    """Weighted fraction of samples whose predicted class is the true class.

    With several sigmoid outputs (multi-label), the fraction of samples
    whose every label is right (scikit-learn's subset accuracy).
    """

    name = "accuracy"

    def __init__(self, threshold=0.5):
        self.threshold = threshold
        super().__init__()

    def update(self, a, y, w):
        if getattr(self, "multilabel", False):
            correct = np.all((a >= self.threshold) == (y >= 0.5), axis=1)
        else:
            correct = _classes(a, self.threshold) == _classes(y, 0.5)
        self.sums += (float(correct @ w), float(w.sum()))


class TopKAccuracy(Metric):
    """Weighted fraction of samples whose true class is among the ``k`` largest outputs."""

    name = "top_k_accuracy"

    def __init__(self, k=5):
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InvalidArgumentError(f"top-k accuracy needs an integer k >= 1, got {describe(k)}")
        self.k = k
        super().__init__()

    def update(self, a, y, w):
        k = min(self.k, a.shape[1])
        true = y.argmax(axis=1)
        top = np.argpartition(-a, k - 1, axis=1)[:, :k]
        hit = (top == true[:, None]).any(axis=1)
        self.sums += (float(hit @ w), float(w.sum()))

    def get_config(self):
        return {"name": self.name, "k": self.k}


class MeanSquaredError(Metric):
    """Weighted mean over samples of the mean squared error over outputs."""

    name = "mse"
    higher_is_better = False

    def update(self, a, y, w):
        r = a - y
        self.sums += (float(np.mean(r * r, axis=1) @ w), float(w.sum()))


class MeanAbsoluteError(Metric):
    """Weighted mean over samples of the mean absolute error over outputs."""

    name = "mae"
    higher_is_better = False

    def update(self, a, y, w):
        self.sums += (float(np.mean(np.abs(a - y), axis=1) @ w), float(w.sum()))


class R2(Metric):
    r"""Coefficient of determination, ``1 - SS_res / SS_tot``, averaged over outputs.

    Sums are accumulated in float64 (``Σw``, ``Σw y``, ``Σw y²``, ``Σw r²``
    per output), so the result over many batches equals the one-shot value.
    A constant target gives ``SS_tot = 0``: the output scores 1 when
    predicted exactly and 0 otherwise (scikit-learn's convention).
    """

    name = "r2"

    def reset(self, n_out):
        self.n_out = n_out
        self.sums = np.zeros(1 + 3 * n_out)  # [Σw, Σw y (n_out), Σw y² (n_out), Σw r² (n_out)]

    def update(self, a, y, w):
        w64 = w.astype(np.float64)[:, None]
        y64 = y.astype(np.float64)
        r = y64 - a
        k = self.n_out
        self.sums[0] += float(w64.sum())
        self.sums[1:1 + k] += (w64 * y64).sum(axis=0)
        self.sums[1 + k:1 + 2 * k] += (w64 * y64 * y64).sum(axis=0)
        self.sums[1 + 2 * k:] += (w64 * r * r).sum(axis=0)

    def result(self):
        sw, k = self.sums[0], self.n_out
        if not sw:
            return float("nan")
        sy, syy, sres = self.sums[1:1 + k], self.sums[1 + k:1 + 2 * k], self.sums[1 + 2 * k:]
        ss_tot = np.maximum(syy - sy * sy / sw, 0.0)
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


def get(spec):
    """Resolve a metric from a name (``"accuracy"``, ``"top_k_accuracy"``, ``"top3"``...), dict or instance."""
    if isinstance(spec, Metric) or (not isinstance(spec, (str, dict)) and callable(getattr(spec, "update", None))):
        return spec
    params = {}
    if isinstance(spec, dict):
        params = dict(spec)
        spec = params.pop("name", None)
    if not isinstance(spec, str):
        raise InvalidArgumentError(f"metric must be a name, a config dict or a Metric, got {describe(spec)}")
    key = spec.lower().replace("-", "_")
    if key.startswith("top") and key[3:].isdigit():  # "top3"
        params.setdefault("k", int(key[3:]))
        key = "top_k_accuracy"
    key = _ALIASES.get(key, key)
    if key not in REGISTRY:
        raise UnknownNameError(f"unknown metric {spec!r}; valid names: {', '.join(sorted(REGISTRY))} (and topK, e.g. top3)")
    return REGISTRY[key](**params)


def default_metric(loss):
    """The loss's natural metric: accuracy for classification losses, R² for regression."""
    return "accuracy" if getattr(loss, "task", "regression") == "classification" else "r2"
