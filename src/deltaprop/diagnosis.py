"""What went wrong in a run, in words: findings read from an Inspector log.

:func:`diagnose` reads the log that :class:`deltaprop.inspector.Inspector`
writes (or a log of curves alone, built by :func:`curves_log` from a run's
history rows) and returns one finding per kind of trouble::

    {"epoch": 3, "layer": "layers.0", "kind": "dead_units", "severity": "warning",
     "message": "Dead units: from epoch 3, 94% of the units of layers.0 (Dense 4→16, relu) ..."}

Each names the first epoch where the trouble was seen and the layer (the
first one to show it; the message lists the others), or ``None`` for a
finding about the whole run (the loss, the validation gap). ``severity`` is
``"warning"`` or ``"note"`` (a milder sign worth a look).

The thresholds are module constants, each with its reason. They are rules
of thumb from practice (Karpathy's "update ratio of about 1e-3", the usual
"half the ReLUs dead"), not laws: a finding says where to look.

The functions are pure: they read the log's numbers (``None`` where a value
was not finite or does not apply) and never change it. The log's format::

    {"format": "deltaprop.inspector", "version": 1, "settings": {...},
     "network": {"layers": [{"path", "kind", "activation", "n_in", "n_out"}, ...]},
     "epochs": [{"epoch": 1, "logs": {"loss", "val_loss", ...}, "samples": n,
                 "layers": [{"path", "delta_norm", "grad_W_norm", "grad_b_norm", "weight_norm",
                             "update_ratio", "dead_fraction", "saturated_fraction", "hist"}, ...]}, ...]}
"""

import math
import statistics

from .errors import InvalidArgumentError, describe

__all__ = ["diagnose", "curves_log", "with_history", "LogView", "describe_layer", "number", "KINDS",
           "VANISHING_RATIO", "TINY_GRADIENT", "EXPLODING_GROWTH", "LOSS_BLOWUP", "DEAD_WARNING", "DEAD_NOTE",
           "SATURATED_WARNING", "UPDATE_RATIO_TARGET", "UPDATE_RATIO_HIGH", "UPDATE_RATIO_LOW", "GAP_RISING_EPOCHS",
           "GAP_RATIO", "LOSS_FLOOR"]

#: A layer whose relative gradient ‖∂L/∂W‖/‖W‖ (or whose ‖Δ‖) is below this fraction of the output layer's
#: learns 10,000 times more slowly than the output layer: in the epochs of a run it hardly moves.
VANISHING_RATIO = 1e-4
#: A gradient norm below this is lost in rounding: with a learning rate of 1e-3 a step changes weights of
#: order 0.1 by 1e-10, under float32's resolution (about 1e-8 at 0.1).
TINY_GRADIENT = 1e-7
#: A layer's gradient norm this many times its value at the first epoch inspected is growing without bound
#: (a healthy run's gradients shrink or stay within a factor of ten as the loss falls).
EXPLODING_GROWTH = 100.0
#: A training loss this many times the lowest loss of an earlier epoch has blown up, not wobbled.
LOSS_BLOWUP = 10.0
#: Units that output 0 for every sample (ReLU below its kink) get no gradient and cannot recover: half of a
#: layer dead halves its width; a tenth is worth a note.
DEAD_WARNING = 0.5
DEAD_NOTE = 0.1
#: Units where σ' is about 0 (sigmoid or tanh at their flat ends) pass back almost no gradient.
SATURATED_WARNING = 0.5
#: ‖ΔW‖/‖W‖ of one step: about 1e-3 is the usual healthy value (each step changes a weight by a thousandth).
UPDATE_RATIO_TARGET = 1e-3
#: A median ratio above this rewrites a tenth of the weights at every step: the learning rate is too high.
UPDATE_RATIO_HIGH = 1e-1
#: A median ratio below this would need a million steps to change the weights: the learning rate is too low.
UPDATE_RATIO_LOW = 1e-6
#: The validation loss rising for this many epochs in a row while the training loss falls is overfitting,
#: not noise (early stopping's usual patience is of this order).
GAP_RISING_EPOCHS = 3
#: A validation loss this many times the training loss: the network fits its training rows much better.
GAP_RATIO = 1.5
#: A gap or a rise of the loss smaller than this share of the first epoch's training loss is too small to act on:
#: a validation loss of 0.012 against 0.005, in a run that started at 1.1, is a good fit, not a gap; a training
#: loss that wobbles from 1e-4 to 2e-3 after starting at 2.3 has converged, not blown up.
LOSS_FLOOR = 0.05

#: the kinds of finding, in the order a reader should take them
KINDS = ("non_finite", "loss_rising", "exploding_gradients", "vanishing_gradients", "dead_units",
         "saturated_units", "update_ratio", "validation_gap")


def number(value):
    """``value`` as a float when it is a finite number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def describe_layer(info):
    """A layer in a few words: ``layers.0 (Dense 784→256, relu)``; ``info`` is its entry of ``network.layers``."""
    path = str(info.get("path", "?"))
    parts = [str(info.get("kind") or "layer")]
    n_in, n_out = info.get("n_in"), info.get("n_out")
    if isinstance(n_in, int) and isinstance(n_out, int):
        parts[0] += f" {n_in}→{n_out}"
    if info.get("activation"):
        parts.append(str(info["activation"]))
    return f"{path} ({', '.join(parts)})"


def curves_log(rows):
    """A log of curves alone (no layer statistics) from a run's history rows (``{"epoch", "loss", ...}``).

    Rows without an integer ``epoch`` (a JSONLogger's override lines) are skipped.
    """
    epochs = []
    for row in rows or ():
        if isinstance(row, dict) and isinstance(row.get("epoch"), int) and not isinstance(row["epoch"], bool):
            logs = {k: v for k, v in row.items() if k not in ("epoch", "time")}
            epochs.append({"epoch": row["epoch"], "logs": logs, "layers": []})
    return {"format": "deltaprop.inspector", "version": 1, "settings": {}, "network": {"layers": []},
            "epochs": epochs}


def with_history(log, rows):
    """``log`` with its curves taken from history rows: a row's values replace the epoch's ``logs``.

    Epochs of the history that the log did not inspect are added with curves
    alone; ``log`` itself is not changed. A ``log`` of None gives
    :func:`curves_log` of the rows.
    """
    curves = curves_log(rows)
    if log is None:
        return curves
    merged = dict(log)
    epochs = {e["epoch"]: dict(e) for e in log.get("epochs") or () if isinstance(e, dict) and "epoch" in e}
    for entry in curves["epochs"]:
        if entry["epoch"] in epochs:
            epochs[entry["epoch"]]["logs"] = entry["logs"]
        else:
            epochs[entry["epoch"]] = entry
    merged["epochs"] = [epochs[k] for k in sorted(epochs, key=lambda k: number(k) or 0)]
    return merged


class LogView:
    """A log read for its series: the epochs in order, the layers in network order, each layer's description.

    Parameters
    ----------
    log : dict
        An Inspector log or a :func:`curves_log`.

    Attributes
    ----------
    epochs : list of dict
        The log's epoch entries, sorted by ``epoch``.
    order : list of str
        Layer paths: the network's, then any measured but not described.
    info : dict of str to dict
        Each layer's entry of ``network.layers`` (``{"path": path}`` alone when not described).
    """

    def __init__(self, log):
        if not isinstance(log, dict) or not isinstance(log.get("epochs"), list):
            raise InvalidArgumentError(f"an inspector log is a dict with a list of 'epochs', got {describe(log)}")
        self.epochs = sorted((e for e in log["epochs"] if isinstance(e, dict) and number(e.get("epoch")) is not None),
                             key=lambda e: e["epoch"])
        layers = (log.get("network") or {}).get("layers") or []
        self.info = {str(layer.get("path")): layer for layer in layers if isinstance(layer, dict)}
        self.order = list(self.info)
        for entry in self.epochs:  # layers measured but not described keep their order of appearance
            for row in self.rows(entry):
                if row["path"] not in self.info:
                    self.info[row["path"]] = {"path": row["path"]}
                    self.order.append(row["path"])

    @staticmethod
    def rows(entry):
        return [r for r in entry.get("layers") or () if isinstance(r, dict) and "path" in r]

    def name(self, path):
        return describe_layer(self.info.get(path, {"path": path}))

    def series(self, path, key):
        """``[(epoch, value or None)]`` of one layer's statistic, over the epochs that measured the layer."""
        out = []
        for entry in self.epochs:
            for row in self.rows(entry):
                if row["path"] == path and key in row:
                    out.append((entry["epoch"], number(row[key])))
        return out

    def curve_keys(self):
        """The curves logged, in their first order of appearance (``epoch`` and ``time`` left out)."""
        keys = {}
        for entry in self.epochs:
            keys.update(dict.fromkeys(k for k in (entry.get("logs") or {}) if k not in ("epoch", "time")))
        return list(keys)

    def curve(self, key):
        """``[(epoch, value or None)]`` of a curve (``loss``, ``val_loss``) over the epochs that logged it."""
        return [(e["epoch"], number((e.get("logs") or {}).get(key))) for e in self.epochs
                if key in (e.get("logs") or {})]


def _finding(kind, epoch, layer, message, severity="warning"):
    return {"epoch": int(epoch), "layer": layer, "kind": kind, "severity": severity, "message": message}


def _others(hits, first):
    """``"; also layers.1 (epoch 2), layers.2 (epoch 3)"``: the other layers that showed it, each at its first epoch."""
    seen = {}
    for epoch, path, *_ in sorted(hits, key=lambda h: h[0]):
        if path != first:
            seen.setdefault(path, epoch)
    rest = [f"{path} (epoch {epoch})" for path, epoch in seen.items()]
    return f"; also {', '.join(rest[:6])}{' and more' if len(rest) > 6 else ''}" if rest else ""


def _first(hits, log):
    """The hit seen first: earliest epoch, then the layer nearest the input."""
    return min(hits, key=lambda h: (h[0], log.order.index(h[1]) if h[1] in log.order else 0))


def _non_finite(log):
    found = []
    for epoch, value in log.curve("loss"):
        if value is None:
            found.append(_finding("non_finite", epoch, None,
                                  f"The training loss is not finite at epoch {epoch}: the run diverged. Lower the "
                                  f"learning rate, clip the gradient (--clipnorm), or check the data for huge values."))
            break
    hits = []
    for path in log.order:
        for key in ("grad_W_norm", "delta_norm", "weight_norm"):
            values = log.series(path, key)
            if any(v is not None for _, v in values):  # measured somewhere, so a None is a non-finite value
                bad = [e for e, v in values if v is None]
                if bad:
                    hits.append((bad[0], path, key))
    if hits:
        epoch, path, key = _first(hits, log)
        found.append(_finding("non_finite", epoch, path,
                              f"Non-finite values: from epoch {epoch}, {key} of {log.name(path)} is infinite or NaN"
                              f"{_others(hits, path)}. The weights overflowed: lower the learning rate or clip "
                              f"the gradient (--clipnorm)."))
    return found


def _loss_rising(log):
    curve = log.curve("loss")
    start = curve[0][1] if curve and curve[0][1] is not None else 0.0
    best, floor = math.inf, LOSS_FLOOR * abs(start)
    for epoch, value in curve:
        if value is None:
            return []
        if value > LOSS_BLOWUP * best and value - best > floor:
            return [_finding("loss_rising", epoch, None,
                             f"The training loss blew up at epoch {epoch}: {value:.4g}, more than {LOSS_BLOWUP:g} "
                             f"times its lowest earlier value ({best:.4g}). The learning rate is too high for "
                             f"this network: lower it, or add warm-up (--warmup-epochs).")]
        best = min(best, value)
    return []


def _exploding(log):
    hits = []
    for path in log.order:
        values = [(e, v) for e, v in log.series(path, "grad_W_norm") if v is not None]
        if len(values) < 2 or values[0][1] <= 0:
            continue
        start = values[0][1]
        for epoch, value in values[1:]:
            if value > EXPLODING_GROWTH * start:
                hits.append((epoch, path, value / start))
                break
    if not hits:
        return []
    epoch, path, growth = _first(hits, log)
    return [_finding("exploding_gradients", epoch, path,
                     f"Exploding gradients: at epoch {epoch} the gradient of {log.name(path)} is {growth:.3g} times "
                     f"its size at the first epoch inspected{_others(hits, path)}. Lower the learning rate, clip "
                     f"the gradient (--clipnorm), or add normalisation (--norm batch).")]


def _blocked(log, entry):
    """Layers whose gradient dead units already explain: every layer up to the one after the last dead one."""
    rows = log.rows(entry)
    dead = [i for i, r in enumerate(rows) if (number(r.get("dead_fraction")) or 0.0) >= DEAD_WARNING]
    return {r["path"] for r in rows[:dead[-1] + 2]} if dead else set()


def _relative(row):
    g, w = number(row.get("grad_W_norm")), number(row.get("weight_norm"))
    return g / w if g is not None and w else None


def _vanishing(log):
    hits = []
    for entry in log.epochs:
        blocked = _blocked(log, entry)
        rows = [r for r in log.rows(entry) if r["path"] not in blocked and number(r.get("grad_W_norm")) is not None]
        for row in rows:
            g = number(row["grad_W_norm"])
            if g < TINY_GRADIENT:
                hits.append((entry["epoch"], row["path"], f"its gradient norm is {g:.2g}, lost in rounding"))
        if len(rows) < 2:
            continue
        last = rows[-1]
        for row in rows[:-1]:
            for key, what in ((_relative, "relative to the weights (‖∂L/∂W‖/‖W‖)"),
                              (lambda r: number(r.get("delta_norm")), "in ‖Δ‖, the backpropagated error")):
                mine, theirs = key(row), key(last)
                if mine is not None and theirs and mine < VANISHING_RATIO * theirs:
                    hits.append((entry["epoch"], row["path"], f"its gradient is {mine / theirs:.2g} times the "
                                                              f"output layer's ({last['path']}) {what}"))
                    break
    if not hits:
        return []
    epoch, path, why = _first(hits, log)
    return [_finding("vanishing_gradients", epoch, path,
                     f"Vanishing gradients: from epoch {epoch}, {log.name(path)} barely learns: {why}"
                     f"{_others(hits, path)}. Deep sigmoid or tanh stacks shrink the gradient at every layer: "
                     f"use relu-like activations, He or Glorot initialisation, normalisation (--norm batch) or "
                     f"residual blocks (--residual).")]


def _fraction_hits(log, key, threshold):
    hits = []
    for path in log.order:
        values = log.series(path, key)
        over = [(e, v) for e, v in values if v is not None and v >= threshold]
        if over:
            last = [v for _, v in values if v is not None][-1]
            hits.append((over[0][0], path, over[0][1], last))
    return hits


def _dead(log):
    found = []
    for threshold, severity in ((DEAD_WARNING, "warning"), (DEAD_NOTE, "note")):
        hits = _fraction_hits(log, "dead_fraction", threshold)
        if hits:
            epoch, path, value, last = _first(hits, log)
            found.append(_finding("dead_units", epoch, path, (
                f"Dead units: from epoch {epoch}, {value:.0%} of the units of {log.name(path)} output 0 for every "
                f"sample ({last:.0%} at the last epoch inspected){_others(hits, path)}. A dead ReLU gets no "
                f"gradient and never recovers: check the initialisation (biases far below 0?), lower the learning "
                f"rate, or use leaky_relu or elu."), severity))
            break
    return found


def _saturated(log):
    hits = _fraction_hits(log, "saturated_fraction", SATURATED_WARNING)
    if not hits:
        return []
    epoch, path, value, last = _first(hits, log)
    return [_finding("saturated_units", epoch, path,
                     f"Saturated units: from epoch {epoch}, {value:.0%} of the units of {log.name(path)} sit on the "
                     f"flat ends of their activation, where its derivative is about 0 ({last:.0%} at the last epoch "
                     f"inspected){_others(hits, path)}. Scale the inputs (--scale standard), use smaller initial "
                     f"weights, normalisation (--norm batch) or a relu-like activation.")]


def _update_ratio(log):
    # A layer that dead units cut off gets no gradient and does not move: that is their finding, not the rate's.
    blocked = {entry["epoch"]: _blocked(log, entry) for entry in log.epochs}
    found = []
    for high in (True, False):
        hits = []
        for path in log.order:
            values = [(e, v) for e, v in log.series(path, "update_ratio")
                      if v is not None and path not in blocked.get(e, ())]
            if not values:
                continue
            median = statistics.median(v for _, v in values)
            if (median > UPDATE_RATIO_HIGH) if high else (median < UPDATE_RATIO_LOW):
                epoch = next(e for e, v in values if (v > UPDATE_RATIO_HIGH if high else v < UPDATE_RATIO_LOW))
                hits.append((epoch, path, median, len(values)))
        if hits:
            epoch, path, median, n = _first(hits, log)
            advice = "lower the learning rate" if high else "raise the learning rate"
            bound = f"above {UPDATE_RATIO_HIGH:g}" if high else f"below {UPDATE_RATIO_LOW:g}"
            found.append(_finding("update_ratio", epoch, path, (
                f"Update ratio far from {UPDATE_RATIO_TARGET:g}: the steps of {log.name(path)} change its weights "
                f"by {median:.2g} of their size (‖ΔW‖/‖W‖, median over {n} epoch{'s' if n != 1 else ''}; first "
                f"{bound} at epoch {epoch}){_others(hits, path)}. About {UPDATE_RATIO_TARGET:g} is healthy: "
                f"{advice}.")))
    return found


def _validation_gap(log):
    loss, val = dict(log.curve("loss")), log.curve("val_loss")
    start = next((v for v in loss.values() if v is not None), None)
    if start is None:
        return []
    floor = LOSS_FLOOR * abs(start)
    rising = None
    for i in range(len(val) - GAP_RISING_EPOCHS):
        window = val[i:i + GAP_RISING_EPOCHS + 1]
        vals = [v for _, v in window]
        train = [loss.get(e) for e, _ in window]
        if None in vals or None in train:
            continue
        if all(b > a for a, b in zip(vals, vals[1:])) and train[-1] < train[0] and vals[-1] - vals[0] > floor:
            rising = (window[0][0], window[-1][0], vals[0], vals[-1], train[0], train[-1])
            break
    ratio = next(((e, v / loss[e]) for e, v in val if v is not None and number(loss.get(e)) and loss[e] > 0
                  and v > GAP_RATIO * loss[e] and v - loss[e] > floor), None)
    parts, epochs = [], []
    if rising:
        start, end, v0, v1, t0, t1 = rising
        epochs.append(start)
        parts.append(f"from epoch {start} to {end} the validation loss rose ({v0:.4g} → {v1:.4g}) while the "
                     f"training loss fell ({t0:.4g} → {t1:.4g})")
    if ratio:
        epochs.append(ratio[0])
        parts.append(f"at epoch {ratio[0]} the validation loss is {ratio[1]:.2g} times the training loss")
    if not parts:
        return []
    return [_finding("validation_gap", min(epochs), None,
                     f"Validation gap: {'; '.join(parts)}. The network fits its training rows better than new ones: "
                     f"consider early stopping (--early-stopping), dropout (--dropout) or weight decay "
                     f"(--weight-decay).")]


def diagnose(log):
    """The troubles a run's log shows, in words a practitioner acts on.

    Parameters
    ----------
    log : dict
        An Inspector log (see the module notes), or :func:`curves_log` of
        history rows (then only the loss checks can speak).

    Returns
    -------
    list of dict
        ``{"epoch", "layer", "kind", "severity", "message"}``, at most one
        per kind and severity: warnings before notes, each group in the order
        of :data:`KINDS`. ``layer`` is the path of the first layer to show the
        trouble (the message names the others), or None for the whole run.

    Raises
    ------
    InvalidArgumentError
        ``log`` is not a dict with a list of ``epochs``.
    """
    view = LogView(log)
    found = []
    for check in (_non_finite, _loss_rising, _exploding, _vanishing, _dead, _saturated, _update_ratio,
                  _validation_gap):
        found += check(view)
    return sorted(found, key=lambda f: (f["severity"] != "warning", KINDS.index(f["kind"])))
