"""Classification reports as text: the confusion matrix and per-class precision and recall.

For ``k`` classes and true and predicted class indices ``t_i`` and ``p_i``:

    C[a, b] = #{i : t_i = a, p_i = b}              (rows: true class, columns: predicted)
    precision_c = C[c, c] / Σ_a C[a, c]            (of the samples predicted c, the share that are c)
    recall_c    = C[c, c] / Σ_b C[c, b]            (of the samples that are c, the share predicted c)
    f1_c        = 2 precision_c recall_c / (precision_c + recall_c)

A class never predicted has no precision (shown as ``-``, NaN in the arrays);
a class absent from the data has no recall. The macro averages skip them.

What reaches a terminal is bounded by the screen, not by the input: with
more than :data:`MAX_MATRIX_CLASSES` classes the confusion matrix is
summarised (its largest off-diagonal cells), with more than
:data:`MAX_TABLE_CLASSES` the per-class table shows the classes of lowest
F1, and every label goes through :func:`printable` (control bytes escaped,
long labels cut).
"""

import unicodedata

import numpy as np

__all__ = ["confusion_matrix", "per_class", "format_confusion", "format_per_class", "printable",
           "MAX_MATRIX_CLASSES", "MAX_TABLE_CLASSES"]

#: a confusion matrix of more classes is summarised on the terminal
MAX_MATRIX_CLASSES = 20
#: a per-class table of more classes shows the classes of lowest F1
MAX_TABLE_CLASSES = 50
#: cells, and classes, shown in a summary
SUMMARY_ROWS = 10
#: Unicode categories escaped: controls (C0, DEL, C1), format characters (bidirectional overrides,
#: zero-width), line and paragraph separators, surrogates
_ESCAPED = {"Cc", "Cf", "Zl", "Zp", "Cs"}


def printable(text, limit=40):
    """``text`` safe to print on a terminal: control characters escaped, cut to ``limit`` characters.

    C0 and C1 controls, DEL (and so every ESC sequence, whose ESC becomes
    ``\\x1b``) and other invisible characters become ``\\xNN``, ``\\uNNNN``
    or ``\\UNNNNNNNN``; text longer than ``limit`` (after escaping) ends
    with ``…``. ``limit=None`` does not cut.

    Examples
    --------
    >>> printable("a\\x1b[31mred")
    'a\\\\x1b[31mred'
    """
    text = str(text)
    if limit is not None and len(text) > 4 * limit:
        text = text[:4 * limit]  # an escape is at most 10 characters; enough is kept to fill ``limit``
    out = []
    for ch in text:
        if unicodedata.category(ch) in _ESCAPED:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else (f"\\u{code:04x}" if code < 0x10000
                                                              else f"\\U{code:08x}"))
        else:
            out.append(ch)
    text = "".join(out)
    if limit is not None and len(text) > limit:
        text = text[:max(limit - 1, 0)] + "…"
    return text


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


def _labels(n_classes, names):
    """``"3 cat"`` for each class (``"3"`` where the name is the index), printable."""
    if names is None:
        return [str(k) for k in range(n_classes)]
    out = []
    for i, name in enumerate(names):
        text = printable(name)
        out.append(text if text == str(i) else f"{i} {text}")
    return out


def top_confusions(matrix, n=SUMMARY_ROWS, block=256):
    """The ``n`` largest off-diagonal cells, ``[(true, predicted, count), ...]``, largest first.

    Read a block of rows at a time, so that no copy of a large matrix is made;
    ties go to the lower true, then predicted, index. Cells of 0 are left out.
    """
    matrix = np.asarray(matrix)
    k = matrix.shape[0]
    found = []
    for start in range(0, k, block):
        rows = np.array(matrix[start:start + block], dtype=np.int64)
        rows[np.arange(rows.shape[0]), np.arange(start, start + rows.shape[0])] = 0
        flat = rows.ravel()
        take = min(n, flat.size)
        best = np.argpartition(-flat, take - 1)[:take] if take < flat.size else np.arange(flat.size)
        found += [(int(flat[j]), start + int(j) // k, int(j) % k) for j in best if flat[j] > 0]
    found.sort(key=lambda cell: (-cell[0], cell[1], cell[2]))
    return [(t, p, c) for c, t, p in found[:n]]


def _confusion_summary(matrix, names, full):
    k = matrix.shape[0]
    labels = _labels(k, names)
    correct, total = int(np.trace(matrix)), int(matrix.sum())
    lines = [f"{k} classes: {full}",
             f"correct: {correct} of {total} sample{'' if total == 1 else 's'}"]
    cells = top_confusions(matrix)
    if not cells:
        lines.append("no sample was confused with another class")
        return "\n".join(lines)
    lines.append(f"the {len(cells)} largest confusions (true -> predicted: count):")
    lines += [f"  {labels[t]} -> {labels[p]}: {c}" for t, p, c in cells]
    return "\n".join(lines)


def format_confusion(matrix, names=None, max_classes=MAX_MATRIX_CLASSES, full="the full matrix is in --json"):
    """The confusion matrix as a text table: a row per true class, a column per predicted class.

    Columns are headed by class index (to stay narrow); rows carry the index
    and the class name (:func:`printable`). With more than ``max_classes``
    classes, a summary instead: the count of correct samples and the
    :data:`SUMMARY_ROWS` largest off-diagonal cells as ``true -> predicted:
    count``, after the sentence ``"{k} classes: {full}"``.
    """
    matrix = np.asarray(matrix)
    k = matrix.shape[0]
    if k > max_classes:
        return _confusion_summary(matrix, names, full)
    labels = _labels(k, names)
    corner = "true \\ predicted"
    label_w = max(len(corner), *(len(s) for s in labels))
    cell_w = max(4, len(str(int(matrix.max()))) if matrix.size else 1, len(str(k - 1))) + 1
    lines = [f"{corner:<{label_w}}" + "".join(f"{j:>{cell_w}}" for j in range(k))]
    for label, row in zip(labels, matrix):
        lines.append(f"{label:<{label_w}}" + "".join(f"{int(v):>{cell_w}}" for v in row))
    return "\n".join(lines)


def _worst_classes(stats, n):
    """The ``n`` classes present in the data with the lowest F1 (no F1, never predicted, first)."""
    present = np.flatnonzero(stats["support"] > 0)
    f1 = np.nan_to_num(stats["f1"][present], nan=-1.0)
    order = np.lexsort((present, f1))  # lowest F1 first, ties by class index
    return [int(i) for i in present[order[:n]]]


def format_per_class(matrix, names=None, max_classes=MAX_TABLE_CLASSES, full="every class is in --json"):
    """Per-class precision, recall, F1 and support as a text table, with macro averages.

    With more than ``max_classes`` classes, the rows are the
    :data:`SUMMARY_ROWS` classes of the data with the lowest F1, after a note
    that says so (and ``full``).
    """
    stats = per_class(matrix)
    k = len(stats["support"])
    labels = _labels(k, names)
    shown = list(range(k))
    note = []
    if k > max_classes:
        shown = _worst_classes(stats, SUMMARY_ROWS)
        note = [f"{k} classes: the {len(shown)} with the lowest F1 are shown (a class never predicted first); "
                f"{full}"]
    label_w = max(len("class"), len("macro average"), *(len(labels[i]) for i in shown))

    def cell(v):
        return f"{'-':>10}" if np.isnan(v) else f"{v:>10.4f}"

    lines = note + [f"{'class':<{label_w}}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
    for i in shown:
        label = labels[i]
        lines.append(f"{label:<{label_w}}{cell(stats['precision'][i])}{cell(stats['recall'][i])}"
                     f"{cell(stats['f1'][i])}{int(stats['support'][i]):>10}")
    macro = [np.nanmean(stats[key]) if np.any(~np.isnan(stats[key])) else np.nan
             for key in ("precision", "recall", "f1")]
    lines.append(f"{'macro average':<{label_w}}{cell(macro[0])}{cell(macro[1])}{cell(macro[2])}"
                 f"{int(stats['support'].sum()):>10}")
    return "\n".join(lines)
