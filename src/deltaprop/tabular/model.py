"""A network with its data contract: raw rows in, labels or values in the original units out.

:class:`TabularModel` is what ``deltaprop train`` writes and what
:func:`deltaprop.load` gives back for such a file::

    model = dp.load("penguins.safetensors")
    model.predict("new_penguins.csv")          # labels, e.g. array(['Adelie', 'Gentoo', ...])
    model.predict_proba(df)                    # a pandas DataFrame works too (columns by name)
    model.evaluate("test.csv")                 # {"loss": ..., "accuracy": ..., "samples": ...}

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
from ..errors import InvalidArgumentError
from .scores import network_outputs, score_table

__all__ = ["TabularModel", "CHUNK_ROWS"]

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
