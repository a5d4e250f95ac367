"""Classification reports as text: the confusion matrix and per-class precision and recall.

For ``k`` classes and true and predicted class indices ``t_i`` and ``p_i``:

    C[a, b] = #{i : t_i = a, p_i = b}              (rows: true class, columns: predicted)
    precision_c = C[c, c] / Σ_a C[a, c]            (of the samples predicted c, the share that are c)
    recall_c    = C[c, c] / Σ_b C[c, b]            (of the samples that are c, the share predicted c)
    f1_c        = 2 precision_c recall_c / (precision_c + recall_c)

A class never predicted has no precision (shown as ``-``, NaN in the arrays);
a class absent from the data has no recall. The macro averages skip them.
"""

import numpy as np

__all__ = ["confusion_matrix", "per_class", "format_confusion", "format_per_class"]


def confusion_matrix(true, pred, n_classes):
    """Counts ``C[a, b]`` of samples of true class ``a`` predicted as ``b``.

    Parameters
    ----------
    true, pred : array-like of int, shape (n_samples,)
        Class indices in ``0..n_classes-1``.
    n_classes : int

    Returns
    -------
    ndarray of int64, shape (n_classes, n_classes)
    """
    true = np.asarray(true, dtype=np.int64).reshape(-1)
    pred = np.asarray(pred, dtype=np.int64).reshape(-1)
    return np.bincount(true * n_classes + pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def per_class(matrix):
    """Precision, recall, F1 and support of each class from a confusion matrix.

    Returns
    -------
    dict of str to ndarray of shape (n_classes,)
        ``precision``, ``recall``, ``f1`` (float64, NaN where undefined) and
        ``support`` (int64: true samples of each class).
    """
    matrix = np.asarray(matrix, dtype=np.int64)
    hits = np.diag(matrix).astype(np.float64)
    predicted = matrix.sum(axis=0)
    support = matrix.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, hits / np.maximum(predicted, 1), np.nan)
        recall = np.where(support > 0, hits / np.maximum(support, 1), np.nan)
        denom = precision + recall
        f1 = np.where(denom > 0, 2 * precision * recall / np.where(denom > 0, denom, 1), 0.0)
    f1 = np.where(np.isnan(precision) | np.isnan(recall), np.nan, f1)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def _names(n_classes, names):
    if names is None:
        return [str(k) for k in range(n_classes)]
    return [str(n) for n in names]


def format_confusion(matrix, names=None):
    """The confusion matrix as a text table: a row per true class, a column per predicted class.

    Columns are headed by class index (to stay narrow); rows carry the index
    and the class name.
    """
    matrix = np.asarray(matrix)
    k = matrix.shape[0]
    labels = [f"{i} {n}" if n != str(i) else n for i, n in enumerate(_names(k, names))]
    corner = "true \\ predicted"
    label_w = max(len(corner), *(len(s) for s in labels))
    cell_w = max(4, len(str(int(matrix.max()))) if matrix.size else 1, len(str(k - 1))) + 1
    lines = [f"{corner:<{label_w}}" + "".join(f"{j:>{cell_w}}" for j in range(k))]
    for label, row in zip(labels, matrix):
        lines.append(f"{label:<{label_w}}" + "".join(f"{int(v):>{cell_w}}" for v in row))
    return "\n".join(lines)


def format_per_class(matrix, names=None):
    """Per-class precision, recall, F1 and support as a text table, with macro averages."""
    stats = per_class(matrix)
    k = len(stats["support"])
    labels = [f"{i} {n}" if n != str(i) else n for i, n in enumerate(_names(k, names))]
    label_w = max(len("class"), len("macro average"), *(len(s) for s in labels))

    def cell(v):
        return f"{'-':>10}" if np.isnan(v) else f"{v:>10.4f}"

    lines = [f"{'class':<{label_w}}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
    for i, label in enumerate(labels):
        lines.append(f"{label:<{label_w}}{cell(stats['precision'][i])}{cell(stats['recall'][i])}"
                     f"{cell(stats['f1'][i])}{int(stats['support'][i]):>10}")
    macro = [np.nanmean(stats[key]) if np.any(~np.isnan(stats[key])) else np.nan
             for key in ("precision", "recall", "f1")]
    lines.append(f"{'macro average':<{label_w}}{cell(macro[0])}{cell(macro[1])}{cell(macro[2])}"
                 f"{int(stats['support'].sum()):>10}")
    return "\n".join(lines)
