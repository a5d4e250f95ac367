"""A network with its data contract: raw rows in, labels or values in the original units out.

:class:`TabularModel` is what ``deltaprop train`` writes and what
:func:`deltaprop.load` gives back for such a file::

    model = dp.load("penguins.safetensors")
    model.predict("new_penguins.csv")          # labels, e.g. array(['Adelie', 'Gentoo', ...])
    model.predict_proba(df)                    # a pandas DataFrame works too (columns by name)
    model.evaluate("test.csv")                 # {"loss": ..., "accuracy": ..., "samples": ...}
    model.attributions("new_penguins.csv")     # integrated gradients per column, for each row's prediction

Raw rows are a CSV, Parquet or Feather path, a pandas or polars DataFrame, a
dict of columns or a NumPy array. Columns are matched by name; a missing
column is an error that names it, extra columns are ignored and reported
once, the target column is dropped when present. Unseen categories and
missing cells are counted and reported, never an error.

The network stays the bare math (:class:`deltaprop.Network`): this class
only maps raw rows to its input ``A^(0)`` and its output ``A^(L)`` back to
labels or values.
"""

import numpy as np

from .. import io, metrics
from ..attributions import attribute
from ..errors import InvalidArgumentError, describe
from .scores import network_outputs, score_table

__all__ = ["TabularModel", "CHUNK_ROWS", "explain", "feature_groups", "class_index"]

#: The metadata entry of a model file that holds the data contract.
CONTRACT_KEY = "data_contract"

#: Rows transformed and predicted at once, to bound memory on large inputs.
CHUNK_ROWS = 16384


class TabularModel:
    """A trained network and the data contract it was trained under.

    Parameters
    ----------
    network : deltaprop.Network
    contract : DataContract
    config : dict, optional
        The training configuration (shown by ``deltaprop info``).
    history : list of dict, optional
        One row per epoch.
    test : dict, optional
        The test scores measured when it was trained.

    Attributes
    ----------
    task : {"classification", "regression"}
    classes : list or None
        Class labels in output order.
    last_report : TransformReport or None
        What the last transform noticed (extra columns, unseen categories,
        missing cells).
    """

    def __init__(self, network, contract, config=None, history=None, test=None, overrides=None):
        self.network = network
        self.contract = contract
        self.config = dict(config or {})
        self.history = list(history or [])
        self.overrides = list(overrides or [])  # settings changed on resume: {"setting", "was", "now", "epoch"}
        self.test = test
        self.last_report = None
        self.target_stored = True  # False for a network saved alone: its target has no name
        self.written_by = None
        contract.check_network(network)

    # ------------------------------------------------------------ properties
    @property
    def target(self):
        return self.contract.target

    @property
    def task(self):
        return self.target.task

    @property
    def classes(self):
        return None if self.task != "classification" else list(self.target.classes)

    @property
    def target_name(self):
        return self.target.name

    @property
    def feature_names(self):
        """The feature columns the model reads, in training order."""
        return list(self.contract.schema.names)

    # ------------------------------------------------------------ prediction
    def outputs(self, raw, report=None):
        """The network's outputs for raw rows, in the target's units: probabilities/scores, or values.

        Parameters
        ----------
        raw : path, DataFrame, dict of columns or ndarray

        Returns
        -------
        ndarray of shape (n_rows, n_out)
        """
        table = raw if _is_table(raw) else self.contract.read(raw)
        report = self.contract.new_report() if report is None else report
        out = network_outputs(self, table, report, CHUNK_ROWS)
        self.last_report = report
        if self.task == "regression":
            return self.target.decode(out)
        return out

    def predict_proba(self, raw):
        """Class probabilities, shape (n_rows, n_classes) (two columns for one sigmoid output)."""
        self.check_proba()
        return probabilities(self.outputs(raw))

    def check_proba(self):
        """Refuse probabilities from a regression model or an output that is not softmax or sigmoid."""
        if self.task != "classification":
            raise InvalidArgumentError("class probabilities need a classification model; this one is a regression "
                                       "model")
        act = self.network.layers[-1].activation.name
        if act not in ("softmax", "sigmoid"):
            raise InvalidArgumentError(f"class probabilities need a softmax or sigmoid output; this model's output "
                                       f"is {act}")

    def predict(self, raw):
        """Labels (classification) or values in the original units (regression) for raw rows.

        Returns
        -------
        ndarray of shape (n_rows,) (labels; or values of one target) or (n_rows, n_targets)
        """
        P = self.outputs(raw)
        if self.task == "classification":
            return self.target.decode(self.predicted_classes(P))
        return P[:, 0] if P.shape[1] == 1 else P

    def predicted_classes(self, P):
        """Class index of each row of outputs ``P`` (:func:`deltaprop.metrics.predicted_classes`)."""
        return metrics.predicted_classes(P, self.network.loss.decision_threshold)

    # ------------------------------------------------------------ scoring
    def evaluate(self, raw):
        """The loss and accuracy (or R², RMSE and MAE) on raw rows that hold the target column.

        Returns
        -------
        dict
            ``{"loss", "samples", "accuracy"}`` or ``{"loss", "samples", "r2", "rmse", "mae"}``.
        """
        table = raw if _is_table(raw) else self.contract.read(raw)
        scores, _, _ = score_table(self, table)
        return scores

    # ------------------------------------------------------------ attributions
    def attributions(self, raw, method="integrated_gradients", output=None, steps=64):
        r"""How much each original column moved each row's answer, one row per raw row.

        Parameters
        ----------
        raw : path, DataFrame, dict of columns or ndarray
        method : {"integrated_gradients", "gradient_x_input", "gradient"}
            See :mod:`deltaprop.attributions`. The baseline is the network input 0: every numeric column at
            its training offset (the mean, for standard scaling), no missing indicator, and for a categorical
            column no category (one-hot all zero) or the zero embedding vector.
        output : class label or int, optional
            Classification: the class whose probability (score) is explained (default: each row's predicted
            class). Regression: the output's index (default: the only one).
        steps : int
            Intervals of the trapezoid rule (integrated gradients).

        Returns
        -------
        Attributions
            ``values`` of shape (n_rows, n_columns), columns in :attr:`feature_names` order: a numeric
            column's value and missing indicator summed, a one-hot block summed, an embedding's dimensions
            summed (:func:`explain`). ``value`` is each row's probability or value (target units), and
            ``gap`` its completeness gap. For ``"gradient"`` a column's value is the sum of its inputs'
            gradients (per unit of the scaled input), NaN for an embedded column (a code has no derivative).
        """
        table = raw if _is_table(raw) else self.contract.read(raw)
        report = self.contract.new_report()
        X = self.contract.inputs(table, self.network.dtype, report=report)
        self.last_report = report
        groups, names = feature_groups(self.contract)
        target = self.target
        if self.task == "classification":
            return explain(self.network, X, method, output, steps, classes=self.classes, groups=groups, names=names)
        outputs = [target.name] if self.network.n_out == 1 else [f"{target.name}_{j}" for j in
                                                                 range(self.network.n_out)]
        return explain(self.network, X, method, output, steps, groups=groups, names=names, scale=target.scale,
                       offset=target.offset, value_names=outputs)

    # ------------------------------------------------------------ files
    def save(self, path):
        """Write the model (network, data contract, configuration, history) to one safetensors file, atomically."""
        extra = {CONTRACT_KEY: self.contract.state(), "history": self.history}
        if self.test is not None:
            extra["test"] = self.test
        if self.overrides:
            extra["overrides"] = self.overrides
        io.save(self.network, path, classes=self.classes, config=self.config, extra=extra, format_version=2)

    def input_names(self):
        """One name per network input (``"island=Biscoe"``, ``"bill_length_mm (missing)"``)."""
        return self.contract.schema.input_names()

    def __repr__(self):
        what = (f"{len(self.classes)} classes" if self.task == "classification" else "regression")
        return (f"TabularModel({len(self.feature_names)} columns -> {self.network.n_in} inputs, {what} of "
                f"{self.target_name!r})")


def probabilities(P):
    """Class probabilities from outputs ``P``: one sigmoid column ``p`` becomes the two columns ``1 - p, p``."""
    return np.concatenate([1 - P, P], axis=1) if P.shape[1] == 1 else P


def _is_table(obj):
    return type(obj).__name__ == "Table" and hasattr(obj, "columns") and hasattr(obj, "named")


def feature_groups(contract):
    """Each network input's original column: ``(groups, names)``, ``groups[j]`` indexing ``names``.

    A numeric column owns its scaled value and its missing indicator; a categorical column its one-hot block
    (``categories_as="onehot"``) or its code column (``"codes"``).
    """
    schema = contract.schema
    where = {name: j for j, name in enumerate(schema.names)}
    groups = [where[c.name] for c in schema.numeric for _ in range(c.width)]
    codes = contract.categories_as == "codes"
    groups += [where[c.name] for c in schema.categorical for _ in range(1 if codes else c.size)]
    return np.array(groups, dtype=np.intp), list(schema.names)


def class_index(classes, label):
    """The index of ``label`` in ``classes``: an equal class, else one equal as text (``"3"`` for 3)."""
    for same in (lambda c: isinstance(c, type(label)) and bool(c == label), lambda c: str(c) == str(label)):
        found = [k for k, c in enumerate(classes) if same(c)]
        if found:
            return found[0]
    shown = ", ".join(repr(c) for c in list(classes)[:20])
    raise InvalidArgumentError(f"output {describe(label)} is not one of the classes ({shown})")


def explain(net, X, method="integrated_gradients", output=None, steps=64, *, classes=None, groups=None, names=None,
            scale=1.0, offset=0.0, value_names=None):
    r"""Attributions of each row's answer: a class's probability (or score), or a value in the target's units.

    Parameters
    ----------
    net : Network
    X : ndarray of shape (n, n_in) or a sparse matrix
        Network inputs.
    method, steps
        As for :func:`deltaprop.attributions.attribute` (trapezoid rule, baseline 0).
    output : class label or int, optional
        A class of ``classes`` (default: each row's predicted class), or an output index for a regression
        (default: the only output).
    classes : sequence, optional
        Class labels in output order (None: a regression).
    groups, names : optional
        Sum the inputs into named columns (:meth:`Attributions.summed`).
    scale, offset : float
        A regression's output in the target's units is ``scale · a + offset``.
    value_names : list of str, optional
        A regression's output names (what ``explained`` holds).

    Returns
    -------
    Attributions

    Notes
    -----
    One sigmoid (or margin) output of two classes explains class 0 through ``1 − p`` (or ``−margin``): the
    attributions of output 0, negated. A regression's attributions are multiplied by ``scale``, so that they
    add up to the change of the value in the target's units.
    """
    X = net.check_X(X)
    n = X.shape[0]
    if classes is None:
        k = 0 if output is None and net.n_out == 1 else output
        if isinstance(k, str):                   # from the command line: an index, or an output's name
            k = int(k) if k.isdigit() else value_names.index(k) if k in (value_names or []) else k
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 0 <= k < net.n_out:
            raise InvalidArgumentError(f"output must be an output index 0..{net.n_out - 1} of this regression, "
                                       f"got {describe(output)}")
        att = attribute(net, X, method, output=int(k), steps=steps).rescaled(scale, offset)
        att.explained = None if value_names is None else np.full(n, value_names[k], dtype=object)
    else:
        if output is None:
            c = metrics.predicted_classes(net.predict(X), net.loss.decision_threshold)
        else:
            c = np.full(n, class_index(classes, output), dtype=np.intp)
        if net.n_out == 1:                       # class 0 of one output: 1 − p (a probability) or −margin
            first = c == 0
            top = 1.0 if getattr(net.layers[-1].activation, "name", None) == "sigmoid" else 0.0
            att = attribute(net, X, method, output=0, steps=steps).rescaled(np.where(first, -1.0, 1.0),
                                                                            np.where(first, top, 0.0))
        else:
            att = attribute(net, X, method, output=c, steps=steps)
        att.explained = np.empty(n, dtype=object)
        att.explained[:] = [classes[i] for i in c]
    if groups is not None:
        return att.summed(groups, names)
    att.columns = att.columns if names is None else list(names)
    return att
