"""The target side of the data contract: its name, the task, and the class labels or the target scaling."""

import math

import numpy as np

from ..data.dataset import TASKS, infer_task
from ..data.scaling import SCALER_KINDS
from ..errors import DataError, InvalidArgumentError, InvalidTypeError, describe
from .sources import category_str, name_list
from .state import Fields
from .stats import category_codes, scaling

__all__ = ["Target"]

STATE_FORMAT = "deltaprop.target"
STATE_VERSION = 1
MAX_CLASSES = 10**6
_LISTED = 20


def _column(values, name):
    """``values`` as a table column: 1-D float64 (NaN missing) or object of str (None missing)."""
    values = np.asarray(values) if not isinstance(values, np.ndarray) else values
    if values.ndim != 1:
        raise InvalidArgumentError(f"the target {name!r} must be one column (1-D), got shape {values.shape}")
    if values.dtype.kind in "iuf":
        return values.astype(np.float64, copy=False)
    if values.dtype.kind == "O":
        bad = next((v for v in values if v is not None and not isinstance(v, str)), None)
        if bad is not None:
            raise InvalidTypeError(f"the target {name!r} holds {describe(bad)}: a table column holds str or None")
        return values
    raise InvalidTypeError(f"the target {name!r} must be a table column (float64 or object of str), "
                           f"got dtype {values.dtype}")


def _labels_text(labels):
    return name_list(labels, _LISTED) if labels and isinstance(labels[0], str) else \
        ", ".join(repr(v) for v in labels[:_LISTED]) + (f" ... and {len(labels) - _LISTED} more"
                                                      if len(labels) > _LISTED else "")


class Target:
    """The target: its name, the task, the classes (classification) or the scaling (regression).

    Attributes
    ----------
    name : str
    task : {"classification", "regression"}
    classes : list of str, int or float, or None
        The class labels, sorted by :meth:`fit` (as :class:`deltaprop.data.Labels`
        sorts them; :meth:`from_parts` keeps a file's order); class index
        ``k`` is ``classes[k]``. Whole numbers are int.
    offset, scale : float
        Regression: ``encode`` gives ``(y - offset) / scale``.
    scale_target : {"standard", "minmax", "none"}
    hint : str or None
        A line for a person when a numeric target was read as classes.
    """

    def __init__(self, name, task, classes=None, offset=0.0, scale=1.0, scale_target="standard", hint=None):
        self.name, self.task, self.hint = name, task, hint
        self.classes = None if classes is None else list(classes)
        self.offset, self.scale, self.scale_target = float(offset), float(scale), scale_target
        self._index = None if classes is None else {self._key(c): k for k, c in enumerate(self.classes)}
        self.class_names = None  # display names of numbered classes (a built-in data set's), or None

    @property
    def scaled(self):
        """Whether a regression target is trained in scaled units (decode maps back)."""
        return self.task == "regression" and self.scale_target != "none"

    def __repr__(self):
        extra = f"n_classes={len(self.classes)}" if self.classes is not None else f"scale_target={self.scale_target!r}"
        return f"Target({self.name!r}, task={self.task!r}, {extra})"

    @staticmethod
    def _key(label):
        if isinstance(label, bool):
            return "True" if label else "False"  # as a table's boolean column holds it
        return label if isinstance(label, str) else category_str(label)

    @classmethod
    def from_parts(cls, name, task, classes=None, class_names=None, offset=None, scale=None, scale_target=None):
        """A target from an older model file's pieces, checked as :meth:`from_state` checks a state.

        ``class_names`` (when given) are the labels of the class indices, else
        ``classes``; their order is the output order. ``offset`` and ``scale``
        None mean an unscaled regression target.
        """
        labels = classes if classes is not None else class_names
        if labels is not None:
            labels = [v.item() if isinstance(v, np.generic) else v for v in labels]
        if scale_target is None:
            scale_target = "none" if offset is None and scale is None else "standard"
        state = {"format": STATE_FORMAT, "version": STATE_VERSION, "name": name, "task": task,
                 "classes": labels if task == "classification" else None, "scale_target": scale_target,
                 "offset": 0.0 if offset is None else offset, "scale": 1.0 if scale is None else scale, "hint": None}
        if class_names is not None and labels is not None and [str(c) for c in class_names] != [str(c) for c in labels]:
            state["class_names"] = [str(c) for c in class_names]
        return cls.from_state(state)

    @property
    def n_classes(self):
        """Number of classes (None for regression)."""
        return None if self.classes is None else len(self.classes)

    @staticmethod
    def missing_mask(values):
        """Bool array (n,): True where a target value is missing (NaN or None)."""
        values = np.asarray(values)
        if values.dtype.kind == "f":
            return np.isnan(values)
        if values.dtype.kind == "O":
            return np.fromiter((v is None or (isinstance(v, float) and v != v) for v in values), bool, len(values))
        return np.zeros(values.shape[0], dtype=bool)

    @classmethod
    def fit(cls, values, name, task=None, scale_target="standard", rows=None):
        """Learn the target from a table column.

        Parameters
        ----------
        values : ndarray of shape (n,)
            float64 (numbers) or object of str, with no missing value (drop
            those rows first; see :meth:`missing_mask`).
        name : str
        task : {"classification", "regression"} or None
            None infers it: text is classification; numbers that are all
            whole with at most 50 distinct values are classification (with
            a ``hint``); other numbers are regression.
        scale_target : {"standard", "minmax", "none"}, default "standard"
            Regression: the targets' scaling.
        rows : int array, optional
            The training rows: the scaling is learnt from them alone; the
            classes from every row (a class seen only outside them is known).

        Raises
        ------
        DataError
            Missing values; one class only; text for a regression.
        """
        if not isinstance(name, str):
            raise InvalidTypeError(f"the target name must be a str, got {describe(name)}")
        if task is not None and task not in TASKS:
            raise InvalidArgumentError(f"task must be one of {', '.join(map(repr, TASKS))} or None, "
                                       f"got {describe(task)}")
        if scale_target not in SCALER_KINDS:
            raise InvalidArgumentError(f"scale_target must be one of {', '.join(map(repr, SCALER_KINDS))}, "
                                       f"got {describe(scale_target)}")
        values = _column(values, name)
        _refuse_missing(values, name)
        numeric = values.dtype.kind == "f"
        hint = None
        if task is None:
            task = infer_task(values) if numeric else "classification"
            if task == "classification" and numeric:
                k = np.unique(values).size
                hint = (f"the target {name!r} has {k} whole-number values, so it was read as {k} classes; "
                        f"for a regression use --task regression (task='regression')")
        if task == "classification":
            return cls(name, task, _classes(values, name), scale_target=scale_target, hint=hint)
        if not numeric:
            example = next(v for v in values)
            raise DataError(f"the target {name!r} holds text ({example!r}), so it cannot be a regression target; "
                            f"use task='classification' (--task classification)")
        train = values if rows is None else values[np.asarray(rows)]
        if train.size == 0:
            raise DataError(f"the target {name!r} has no training rows")
        offset, scale = scaling(train, scale_target, name)
        return cls(name, task, None, offset, scale, scale_target)

    def encode(self, values):
        """Encoded targets: class indices (int64, shape (n,)), or ``(y - offset) / scale`` (float64, (n, 1)).

        Raises
        ------
        DataError
            A missing value, a label never seen in training (named, with the
            known classes), text in a regression target.
        """
        values = _column(values, self.name)
        _refuse_missing(values, self.name)
        if self.task == "regression":
            if values.dtype.kind != "f":
                values = _parse(values, self.name)
            return ((values - self.offset) / self.scale).reshape(-1, 1)
        labels, inverse, _ = category_codes(values)
        if values.dtype.kind != "f" and not isinstance(self.classes[0], str):
            labels = [_number_key(v) for v in labels]
        codes = np.array([self._index.get(v, -1) for v in labels], dtype=np.int64)
        if (codes < 0).any():
            unknown = [v for v, c in zip(labels, codes) if c < 0]
            raise DataError(
                f"the target {self.name!r} holds {len(unknown)} label{'s' if len(unknown) > 1 else ''} never seen "
                f"in training: {name_list(unknown)}; the known classes are {_labels_text(self.classes)}"
            )
        return codes[inverse] if labels else np.zeros(0, dtype=np.int64)

    def decode(self, encoded):
        """Back to labels or original units.

        Parameters
        ----------
        encoded : ndarray
            Classification: class indices (n,), ints. Regression: network
            outputs (n, 1) or (n,), in scaled units.

        Returns
        -------
        ndarray
            Classification: labels (n,): object array of str, or int64 or
            float64 for numeric classes. Regression: ``y·scale + offset`` in
            float64, of the input's shape.
        """
        encoded = np.asarray(encoded)
        if self.task == "regression":
            return encoded.astype(np.float64) * self.scale + self.offset
        if encoded.dtype.kind not in "iu":
            raise InvalidTypeError(f"class indices must be integers, got dtype {encoded.dtype}")
        n = len(self.classes)
        bad = (encoded < 0) | (encoded >= n)
        if bad.any():
            raise InvalidArgumentError(f"class index {int(encoded[bad].flat[0])} is out of range for "
                                       f"{n} classes (0..{n - 1})")
        kinds = {type(c) for c in self.classes}
        dtype = {bool: bool, int: np.int64, float: np.float64}.get(kinds.pop(), object) if len(kinds) == 1 else object
        table = np.empty(n, dtype=dtype)
        table[:] = self.classes
        return table[encoded]

    def state(self):
        """Everything needed to rebuild this target: a JSON-able dict."""
        return {
            "format": STATE_FORMAT, "version": STATE_VERSION, "name": self.name, "task": self.task,
            "classes": None if self.classes is None else list(self.classes),
            "scale_target": self.scale_target, "offset": self.offset, "scale": self.scale, "hint": self.hint,
            **({} if self.class_names is None else {"class_names": list(self.class_names)}),
        }

    @classmethod
    def from_state(cls, state, where=""):
        """Rebuild a target from :meth:`state`, validating every field (InvalidArgumentError naming it)."""
        f = Fields(state, "target", where)
        f.str("format", (STATE_FORMAT,))
        f.int("version", STATE_VERSION, STATE_VERSION)
        name, task = f.str("name"), f.str("task", TASKS)
        scale_target = f.str("scale_target", SCALER_KINDS)
        offset, scale = f.float("offset"), f.float("scale", positive=True)
        hint = f.raw("hint")
        if hint is not None and not isinstance(hint, str):
            f.fail("hint", "a str or null", hint)
        classes = f.raw("classes")
        if task == "regression":
            if classes is not None:
                f.fail("classes", "null for a regression target", classes)
            if scale_target == "none" and (offset != 0.0 or scale != 1.0):
                f.fail("offset", "0 with scale 1 (scale_target is 'none')", (offset, scale))
            return cls(name, task, None, offset, scale, scale_target, hint)
        target = cls(name, task, _classes_from_state(f), offset, scale, scale_target, hint)
        if "class_names" in state:
            names = f.str_list("class_names", MAX_CLASSES, unique=False)
            if len(names) != len(target.classes) or any(len(n) > 1000 for n in names):
                f.fail("class_names", f"{len(target.classes)} names of at most 1000 characters", names)
            target.class_names = names
        return target


def _classes_from_state(f):
    classes = f.list("classes", MAX_CLASSES)
    if len(classes) < 2:
        f.fail("classes", "a list of at least two labels", classes)
    kinds = {type(c) if type(c) in (str, int, bool) or (type(c) is float and math.isfinite(c)) else None
             for c in classes}
    if None in kinds or len(kinds) > 1:
        bad = next((c for c in classes if type(c) not in (str, int, bool, float)), classes)
        f.fail("classes", "labels of one kind (all str, all int, all bool or all finite float)", bad)
    if len({Target._key(c) for c in classes}) != len(classes):
        f.fail("classes", "distinct labels", classes)
    return classes


def _refuse_missing(values, name):
    missing = Target.missing_mask(values)
    if missing.any():
        k = int(missing.sum())
        raise DataError(f"the target {name!r} has {k} missing value{'s' if k > 1 else ''} (first at row "
                        f"{int(np.flatnonzero(missing)[0])}); drop those rows first")


def _classes(values, name):
    """Sorted distinct labels: str, or int for whole numbers, else float; at least two."""
    if values.dtype.kind == "f":
        uniq = np.unique(values).tolist()
        classes = [int(v) for v in uniq] if all(float(v).is_integer() for v in uniq) else [float(v) for v in uniq]
    else:
        classes = np.unique(values.astype(str)).tolist()
    if len(classes) < 2:
        held = f"holds only {classes[0]!r}" if classes else "has no value"
        raise DataError(f"classification needs at least two classes; the target {name!r} {held}")
    if len(classes) > MAX_CLASSES:
        raise DataError(f"the target {name!r} has {len(classes)} distinct values, more than {MAX_CLASSES} classes")
    return classes


def _number_key(text):
    """The class key of a label given as text where the classes are numbers ("3" -> "3", "3.0" -> "3")."""
    try:
        v = float(text)
    except ValueError:
        return text
    return category_str(v) if math.isfinite(v) else text


def _parse(values, name):
    out = np.empty(len(values))
    for i, v in enumerate(values):
        try:
            out[i] = float(v)
        except ValueError:
            raise DataError(f"the target {name!r} holds {v!r} at row {i}, not a number; it was a regression "
                            f"target in training") from None
        if not math.isfinite(out[i]):
            raise DataError(f"the target {name!r} holds {v!r} at row {i}, not a finite number")
    return out
