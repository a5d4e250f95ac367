"""Training curves as a PNG (or any format matplotlib writes), for ``deltaprop train --plot``.

matplotlib is imported inside :func:`plot_history`, never at module level, and
only its object-oriented API is used (``matplotlib.figure.Figure`` with the
Agg canvas): no pyplot, no global state, no display needed.
"""

import os

from .atomic import atomic_write
from .errors import DeltapropError, SaveError

__all__ = ["plot_history", "MissingMatplotlib"]


class MissingMatplotlib(DeltapropError, ImportError):
    """matplotlib is not installed; the message says how to install it."""


_LABELS = {
    "loss": "loss",
    "accuracy": "accuracy",
    "r2": "R²",
    "mse": "mean squared error",
    "mae": "mean absolute error",
}


def plot_history(rows, path, title, metric=None, loss_name=None):
    """Draw loss and one metric per epoch, training and validation, into ``path``.

    Parameters
    ----------
    rows : list of dict
        One per epoch, as ``History.to_list()``: ``epoch``, ``loss``,
        ``<metric>``, and ``val_loss``, ``val_<metric>`` when there was
        validation data.
    path : str or os.PathLike
        The image file; its extension picks the format (``.png``, ``.svg``,
        ``.pdf``). Written atomically (:func:`deltaprop.atomic.atomic_write`):
        a failure leaves the old image as it was.
    title : str
        The figure's title: name the run (data, network, optimizer).
    metric : str or None
        The metric for the right-hand panel (``"accuracy"``, ``"r2"``, ...);
        None for the loss alone.
    loss_name : str or None
        The loss's name for the axis label (e.g. ``"categorical_crossentropy"``).

    Raises
    ------
    MissingMatplotlib
        matplotlib is not installed.
    SaveError
        The file could not be written.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingMatplotlib(
            "drawing curves needs matplotlib, which is not installed: pip install 'deltaprop[plot]' "
            "(or pass --plot none)"
        ) from None
    epochs = [row["epoch"] for row in rows]
    panels = [("loss", "loss" + (f" ({loss_name})" if loss_name else ""))]
    if metric is not None and any(metric in row for row in rows):
        panels.append((metric, _LABELS.get(metric, metric)))
    fig = Figure(figsize=(5.2 * len(panels), 4.2), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (key, label) in zip(axes, panels):
        for prefix, name, style in (("", "training", "-"), ("val_", "validation", "--")):
            values = [row.get(prefix + key) for row in rows]
            if any(v is not None for v in values):
                points = [(e, v) for e, v in zip(epochs, values) if v is not None]
                ax.plot([e for e, _ in points], [v for _, v in points], style, marker="o", markersize=3,
                        label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.set_title(label)
        ax.grid(True, alpha=0.3)
        ax.legend()
        if len(epochs) < 12:
            ax.set_xticks(epochs)
    fig.suptitle(title, fontsize=10)
    path = os.fspath(path)
    fmt = os.path.splitext(path)[1].lstrip(".").lower()
    if not fmt or fmt not in FigureCanvasAgg.get_supported_filetypes():
        known = ", ".join(f".{k}" for k in sorted(FigureCanvasAgg.get_supported_filetypes()))
        raise SaveError(f"cannot write {path}: the extension picks the image format, got {fmt or 'none'!r} "
                        f"(known: {known})")
    try:
        with atomic_write(path, "wb") as f:
            fig.savefig(f, format=fmt)
    except ValueError as exc:  # anything else matplotlib refuses; the old file is intact
        raise SaveError(f"cannot write {path}: {exc}") from None
