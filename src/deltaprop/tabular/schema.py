"""The feature schema: what each raw column becomes at the network's input, learnt from the training rows.

Input layout (``n_inputs`` columns): first a dense block of width ``n_dense``
holding, for each numeric column in table order, its scaled value

    x' = (x - offset) / scale        (x the value, or ``fill`` where it is missing)

followed, where training saw a missing value, by its indicator (1.0 missing,
0.0 present); then, for each categorical column in table order, a one-hot
block of ``len(categories) + missing + 1`` inputs: one per kept category (most
frequent first), a "missing" slot where training saw a missing value, and an
"other" slot last that takes rare and unseen categories.
"""

import math
import numbers

import numpy as np

from ..checks import check_float_dtype
from ..data.scaling import SCALER_KINDS
from ..errors import DataError, InvalidArgumentError, InvalidTypeError, describe
from .state import Fields
from .sources import duplicates
from .stats import category_codes, few_codes, mean, median, scaling
from .target import Target
from .table import CATEGORICAL, NUMERIC, Table, name_list

__all__ = ["Schema", "Target", "NumericColumn", "CategoricalColumn", "TransformReport", "IMPUTE_KINDS"]

IMPUTE_KINDS = ("median", "mean")
MAX_TOTAL_CATEGORIES = 10**6
STATE_FORMAT = "deltaprop.schema"
STATE_VERSION = 1


def plural(n, word, words=None):
    """``"1 row"``, ``"2 rows"``."""
    return f"{n} {word if n == 1 else (words or word + 's')}"


class NumericColumn:
    """A numeric feature: ``fill`` where missing, then ``(x - offset) / scale``; ``indicator`` adds an input."""

    kind = NUMERIC

    def __init__(self, name, fill, indicator, offset, scale):
        self.name, self.fill, self.indicator = name, float(fill), bool(indicator)
        self.offset, self.scale = float(offset), float(scale)

    @property
    def width(self):
        return 1 + self.indicator

    def state(self):
        return {"name": self.name, "kind": NUMERIC, "fill": self.fill, "indicator": self.indicator,
                "offset": self.offset, "scale": self.scale}


class CategoricalColumn:
    """A categorical feature: one input per kept category, a missing slot (if seen), an "other" slot last."""

    kind = CATEGORICAL

    def __init__(self, name, categories, missing, n_rare):
        self.name, self.categories = name, list(categories)
        self.missing, self.n_rare = bool(missing), int(n_rare)
        self.index = {c: k for k, c in enumerate(self.categories)}

    @property
    def size(self):
        return len(self.categories) + self.missing + 1

    @property
    def other(self):
        return self.size - 1

    def state(self):
        return {"name": self.name, "kind": CATEGORICAL, "categories": list(self.categories),
                "missing": self.missing, "n_rare": self.n_rare}


class TransformReport:
    """What :meth:`Schema.transform` met that a person should hear about once.

    Attributes
    ----------
    extra : list of str
        Columns of the table that the schema does not use (ignored).
    unseen : dict of str to int
        Per categorical column, rows holding a category never seen in training.
    unseen_examples : dict of str to list of str
        Up to 3 such categories per column.
    missing : dict of str to int
        Per column, missing values where training saw none (imputed as in
        training: a numeric column's fill, a categorical column's other slot).
    """

    def __init__(self):
        self.extra, self.unseen, self.unseen_examples, self.missing = [], {}, {}, {}
        self._as_rare, self._filled = set(), {}

    def __repr__(self):
        return f"TransformReport(extra={self.extra!r}, unseen={self.unseen!r}, missing={self.missing!r})"

    def messages(self):
        """One line per fact, for a person."""
        out = []
        if self.extra:
            out.append(f"ignored {plural(len(self.extra), 'column')} the model does not use: {name_list(self.extra)}")
        for name, count in self.unseen.items():
            examples = ", ".join(repr(v) for v in self.unseen_examples.get(name, []))
            if name in self._as_rare:  # the column pooled rare categories: these are rare ones, or new ones
                out.append(f"{plural(count, 'row')} of {name!r} held a category too rare in training to be kept, or "
                           f"never seen (e.g. {examples}); treated like the rare ones (the 'other' slot)")
            else:
                out.append(f"{plural(count, 'row')} of {name!r} held a category never seen in training "
                           f"(e.g. {examples}); treated as none of the trained categories")
        for name, count in self.missing.items():
            out.append(f"{plural(count, 'missing value')} in {name!r}, which had none in training, "
                       f"{self._filled.get(name, 'filled in as in training')}")
        return out


def _fit_categorical(name, values, threshold, max_categories):
    labels, inverse, missing = category_codes(values)
    counts = np.bincount(inverse, minlength=len(labels))
    order = sorted(range(len(labels)), key=lambda k: (-int(counts[k]), labels[k]))
    kept = [k for k in order if counts[k] >= threshold]
    if max_categories is not None:
        kept = kept[:max_categories]
    return CategoricalColumn(name, [labels[k] for k in kept], missing.any(), len(labels) - len(kept))


def _fit_numeric(name, values, scale, impute, source):
    missing = np.isnan(values)
    x = values[~missing]
    if x.size == 0:
        raise DataError(
            f"{source}: column {name!r} has no value in the training rows (all {plural(values.size, 'row')} "
            f"missing); drop it (drop=[{name!r}], --drop {name}) or fill it in"
        )
    fill = median(x) if impute == "median" else mean(x)
    filled = np.where(missing, fill, values)  # as an imputer followed by a scaler sees it
    offset, scale_ = scaling(filled, scale, name)
    return NumericColumn(name, fill, missing.any(), offset, scale_)


class _NumericLayout:
    """The numeric columns' statistics and places in the dense block, to transform them all at once.

    Each value goes through the same float64 operations as one column at a
    time (:meth:`Schema._numeric_into`), so the inputs are the same bits.
    """

    def __init__(self, numeric):
        self.n = len(numeric)
        self.fill = np.array([c.fill for c in numeric], dtype=np.float64)
        self.offset = np.array([c.offset for c in numeric], dtype=np.float64)
        self.scale = np.array([c.scale for c in numeric], dtype=np.float64)
        self.at = np.cumsum([0] + [c.width for c in numeric[:-1]], dtype=np.intp)   # each column's value input
        self.indicator = np.array([c.indicator for c in numeric], dtype=bool)
        self.indicator_at = self.at[self.indicator] + 1                              # and its missing indicator

    def into(self, dense, columns):
        """Write the scaled values and missing indicators of every numeric column into ``dense`` (n, n_dense).

        ``columns``: each numeric column's float64 values (n,), in order.
        Returns each column's number of missing values, shape (n_numeric,);
        or None, having written nothing, when a column still needs parsing
        (fewer columns than numeric ones) or a value is too large for
        ``dense``'s dtype after scaling: the caller then goes column by
        column, which names the column.
        """
        if len(columns) != self.n:
            return None
        if not self.n:
            return np.zeros(0, dtype=np.intp)
        values = np.column_stack(columns)
        missing = np.isnan(values)
        filled = np.where(missing, self.fill, values)
        with np.errstate(over="ignore", invalid="ignore"):
            z = (filled - self.offset) / self.scale
            wide = ~np.isfinite(z)
            if wide.any():  # x - offset overflowed: the same quotient as two terms
                z[wide] = (filled / self.scale - self.offset / self.scale)[wide]
            cast = z.astype(dense.dtype)
        if not np.isfinite(cast).all():
            return None
        dense[:, self.at] = cast
        dense[:, self.indicator_at] = missing[:, self.indicator]
        return missing.sum(axis=0)


# ------------------------------------------------------------------ the schema
def _check_options(scale, impute, min_frequency, max_categories):
    if scale not in SCALER_KINDS:
        raise InvalidArgumentError(f"scale must be one of {', '.join(map(repr, SCALER_KINDS))}, "
                                   f"got {describe(scale)}")
    if impute not in IMPUTE_KINDS:
        raise InvalidArgumentError(f"impute must be one of {', '.join(map(repr, IMPUTE_KINDS))}, "
                                   f"got {describe(impute)}")
    ok_int = isinstance(min_frequency, numbers.Integral) and not isinstance(min_frequency, bool) \
        and min_frequency >= 1
    ok_frac = isinstance(min_frequency, float) and 0.0 < min_frequency < 1.0
    if not (ok_int or ok_frac):
        raise InvalidArgumentError(
            f"min_frequency must be a count of rows (an int >= 1) or a fraction of them (a float in (0, 1)), "
            f"got {describe(min_frequency)}"
        )
    if max_categories is not None and (isinstance(max_categories, bool)
                                       or not isinstance(max_categories, numbers.Integral) or max_categories < 1):
        raise InvalidArgumentError(f"max_categories must be a positive int or None, got {describe(max_categories)}")


class Schema:
    """The feature side of the data contract: names, order, kinds, categories, imputation and scaling.

    Build it with :meth:`Schema.fit` on the training rows, or :meth:`from_state`.

    Attributes
    ----------
    columns : list of NumericColumn and CategoricalColumn
        In the training table's order.
    names : list of str
    kinds : dict of str to {"numeric", "categorical"}
    numeric, categorical : list
        The columns of each kind, in table order (the input layout's order).
    n_dense : int
        Width of the dense block: numeric values and their missing indicators.
    sizes : list of int
        Width of each categorical column's one-hot block.
    n_inputs : int
        ``n_dense + sum(sizes)``: the network's input width.
    """

    def __init__(self, columns, *, scale="standard", impute="median", min_frequency=5, max_categories=100):
        _check_options(scale, impute, min_frequency, max_categories)
        self.columns = list(columns)
        self.scale, self.impute = scale, impute
        self.min_frequency, self.max_categories = min_frequency, max_categories
        self.names = [c.name for c in self.columns]
        self.kinds = {c.name: c.kind for c in self.columns}
        self.numeric = [c for c in self.columns if c.kind == NUMERIC]
        self.categorical = [c for c in self.columns if c.kind == CATEGORICAL]
        self.n_dense = sum(c.width for c in self.numeric)
        self.sizes = [c.size for c in self.categorical]
        self.n_inputs = self.n_dense + sum(self.sizes)
        self.positional = False  # True: match columns by position even in a named table (old model files)
        self._layout = _NumericLayout(self.numeric)

    def __repr__(self):
        return (f"Schema({len(self.numeric)} numeric, {len(self.categorical)} categorical columns, "
                f"n_inputs={self.n_inputs})")

    @classmethod
    def fit(cls, table, *, categorical=None, scale="standard", min_frequency=5, max_categories=100,
            impute="median"):
        """Learn the schema from the training rows ``table``.

        Parameters
        ----------
        table : Table
            The training rows' features only (the target removed).
        categorical : list of str, optional
            Columns to treat as categorical even where numeric; their numbers
            become categories named by :func:`category_str` ("3", "2.5").
        scale : {"standard", "minmax", "none"}, default "standard"
            Scaling of numeric columns, as :class:`deltaprop.data.Scaler`
            (statistics of the column after imputation; a constant column
            gets scale 1).
        min_frequency : int or float, default 5
            A category with fewer training rows than this (an int: a count;
            a float in (0, 1): a fraction of the rows) is pooled into the
            "other" slot.
        max_categories : int or None, default 100
            Keep at most this many categories per column (the most frequent);
            the rest are pooled into "other".
        impute : {"median", "mean"}, default "median"
            The fill of a numeric column's missing values.

        Raises
        ------
        DataError
            A column with no value in the training rows; an unknown name in
            ``categorical``.
        """
        if not isinstance(table, Table):
            raise InvalidTypeError(f"table must be a Table (see read_table), got {describe(table)}")
        _check_options(scale, impute, min_frequency, max_categories)
        forced = [] if categorical is None else ([categorical] if isinstance(categorical, str) else list(categorical))
        table.select(features=forced or None)  # unknown names: a DataError listing the columns
        threshold = min_frequency if isinstance(min_frequency, numbers.Integral) else min_frequency * table.n_rows
        columns = []
        for name in table.names:
            values = table.columns[name]
            if table.kinds[name] == CATEGORICAL or name in forced:
                columns.append(_fit_categorical(name, values, threshold, max_categories))
            else:
                columns.append(_fit_numeric(name, values, scale, impute, table.source))
        return cls(columns, scale=scale, impute=impute, min_frequency=min_frequency, max_categories=max_categories)

    def notes(self):
        """One line per categorical column whose rare categories were pooled into "other"."""
        return [
            f"{c.name!r}: {plural(c.n_rare, 'rare category', 'rare categories')} pooled as 'other' "
            f"(kept {len(c.categories)})"
            for c in self.categorical if c.n_rare
        ]

    def describe(self):
        """One line per feature column for a person (``info``): its name, kind and what it became."""
        lines = []
        for c in self.columns:
            if c.kind == NUMERIC:
                gap = f", missing -> {c.fill:g} (+ indicator)" if c.indicator else ""
                lines.append(f"{c.name}: numeric, ({c.name} - {c.offset:g}) / {c.scale:g}{gap}")
            else:
                shown = ", ".join(repr(v) for v in c.categories[:8])
                more = f" ... and {len(c.categories) - 8} more" if len(c.categories) > 8 else ""
                extra = (", a missing slot" if c.missing else "") + (
                    f", {plural(c.n_rare, 'rare category', 'rare categories')} pooled as 'other'" if c.n_rare else "")
                lines.append(f"{c.name}: categorical, {plural(len(c.categories), 'category', 'categories')} "
                             f"[{shown}{more}]{extra}")
        return lines

    def input_names(self):
        """One readable name per network input, in the input layout's order (list of ``n_inputs`` str)."""
        out = []
        for c in self.numeric:
            out += [c.name] + ([f"{c.name} (missing)"] if c.indicator else [])
        for c in self.categorical:
            out += [f"{c.name}={v}" for v in c.categories]
            out += ([f"{c.name} (missing)"] if c.missing else []) + [f"{c.name} (other)"]
        return out

    def unused_inputs(self):
        """Indices of inputs never active in training: each "other" slot that pooled no category.

        The model zeroes their weights, so that an unseen category contributes
        nothing (as ``OneHotEncoder(handle_unknown="ignore")``).
        """
        out, start = [], self.n_dense
        for c in self.categorical:
            if c.n_rare == 0:
                out.append(start + c.other)
            start += c.size
        return np.asarray(out, dtype=np.intp)

    def _match(self, table, report):
        """Each schema column's values from ``table``: by name, or by position for an unnamed table."""
        if not table.named or self.positional:
            if len(table.names) != len(self.names):
                raise DataError(
                    f"{table.source}: {plural(len(table.names), 'column')}, but the model was trained on "
                    f"{plural(len(self.names), 'feature')} ({name_list(self.names)}); pass a DataFrame or a dict "
                    f"with these names, or an array with exactly these columns in this order"
                )
            return [(table.columns[t], table.kinds[t]) for t in table.names]
        absent = [n for n in self.names if n not in table.columns]
        if absent:
            extra = [n for n in table.names if n not in self.kinds]
            hint = ""
            if len(table.names) == len(self.names):
                hint = (f"; the table has the right number of columns ({len(self.names)}) but other names "
                        f"({name_list(extra)}): rename them, or pass the values as a bare array in training order")
            raise DataError(
                f"{table.source}: missing {plural(len(absent), 'column')} the model needs: {name_list(absent)}{hint}"
            )
        report.extra = [n for n in table.names if n not in self.kinds]
        return [(table.columns[n], table.kinds[n]) for n in self.names]

    def transform(self, table, dtype=np.float32, report=None):
        """Encode raw rows for the network.

        Parameters
        ----------
        table : Table
            Columns are matched by name (extra ones ignored), or by position
            when ``table.named`` is False.
        dtype : float dtype, default np.float32
        report : TransformReport, optional
            Filled with the extra columns, unseen categories and unexpected
            missing values (counts add up over calls).

        Returns
        -------
        dense : ndarray of shape (n_rows, n_dense) and dtype ``dtype``, C order
            Scaled numeric values ``(x - offset) / scale`` (computed in
            float64, rounded once) and missing indicators.
        codes : ndarray of intp, shape (n_rows, n_categorical)
            Each categorical column's active slot, ``0 <= codes[:, k] < sizes[k]``.
        sizes : list of int
            The one-hot block widths.

        Raises
        ------
        DataError
            A needed column missing (every one named), text in a numeric
            column (the column, value and line named), a value too large for
            ``dtype`` after scaling.
        """
        if not isinstance(table, Table):
            raise InvalidTypeError(f"table must be a Table (see read_table), got {describe(table)}")
        dtype = check_float_dtype(dtype, "dtype")
        report = TransformReport() if report is None else report
        matched = self._match(table, report)
        n = table.n_rows
        dense = np.empty((n, self.n_dense), dtype=dtype)
        codes = np.empty((n, len(self.categorical)), dtype=np.intp)
        # every numeric column at once, unless one needs parsing or fails: then column by column (the same
        # numbers, and the same error for the first column that fails)
        missing = self._layout.into(dense, [values for spec, (values, kind) in zip(self.columns, matched)
                                            if spec.kind == NUMERIC and kind == NUMERIC])
        j = k = i = 0
        for spec, (values, kind) in zip(self.columns, matched):
            if spec.kind == NUMERIC and missing is not None:
                self._note_missing(spec, int(missing[i]), report)
                i += 1
            elif spec.kind == NUMERIC:
                j = self._numeric_into(dense, j, spec, values, kind, table, report)
            else:
                codes[:, k] = self._codes(spec, values, report)
                k += 1
        return dense, codes, list(self.sizes)

    def _note_missing(self, spec, count, report):
        """Report ``count`` missing values of the numeric column ``spec`` if training saw none (no indicator)."""
        if count and not spec.indicator:
            report.missing[spec.name] = report.missing.get(spec.name, 0) + count
            report._filled[spec.name] = f"filled in with the training {self.impute} {spec.fill:g}"

    def _numeric_into(self, dense, j, spec, values, kind, table, report):
        if kind != NUMERIC:
            values = _parse_numbers(values, spec.name, table)
        missing = np.isnan(values)
        self._note_missing(spec, int(missing.sum()), report)
        filled = np.where(missing, spec.fill, values)
        with np.errstate(over="ignore", invalid="ignore"):
            z = (filled - spec.offset) / spec.scale
            wide = ~np.isfinite(z)
            if wide.any():  # x - offset overflowed: the same quotient as two terms
                z[wide] = filled[wide] / spec.scale - spec.offset / spec.scale
            cast = z.astype(dense.dtype)
        if not np.isfinite(cast).all():
            i = int(np.flatnonzero(~np.isfinite(cast))[0])
            raise DataError(
                f"{table.where(i)}, column {spec.name!r}: the value {float(filled[i])!r} becomes "
                f"{float(z[i])!r} after scaling, too large for {dense.dtype}; scale the column down"
                + (" or use dtype float64" if dense.dtype != np.float64 else "")
            )
        dense[:, j] = cast
        if spec.indicator:
            dense[:, j + 1] = missing
        return j + spec.width

    def _codes(self, spec, values, report):
        """Each row's slot in ``spec``'s one-hot block, shape (n,); unseen categories and gaps noted in ``report``."""
        few = few_codes(values, spec.index)  # a few rows of text: dict lookups instead of a sort, the same codes
        if few is None:
            labels, inverse, missing = category_codes(values)
            known = np.array([spec.index.get(v, -1) for v in labels], dtype=np.intp)
            present = known[inverse] if labels else np.zeros(0, dtype=np.intp)
        else:
            present, missing, unseen_labels = few
        unseen = present < 0
        if unseen.any():
            name = spec.name
            report.unseen[name] = report.unseen.get(name, 0) + int(unseen.sum())
            examples = report.unseen_examples.setdefault(name, [])
            if few is None:
                unseen_labels = (labels[t] for t in np.flatnonzero(known < 0))
            for v in unseen_labels:
                if len(examples) < 3 and v not in examples:
                    examples.append(v)
            if spec.n_rare:
                report._as_rare.add(name)
            present = np.where(unseen, spec.other, present)
        out = np.full(len(values), spec.other, dtype=np.intp)
        out[~missing] = present
        if missing.any():
            if spec.missing:
                out[missing] = len(spec.categories)
            else:
                report.missing[spec.name] = report.missing.get(spec.name, 0) + int(missing.sum())
                report._filled[spec.name] = "treated as none of the trained categories"
        return out

    def state(self):
        """Everything needed to rebuild this schema: a JSON-able dict (finite floats)."""
        return {
            "format": STATE_FORMAT, "version": STATE_VERSION, "scale": self.scale, "impute": self.impute,
            "min_frequency": self.min_frequency if isinstance(self.min_frequency, float) else int(self.min_frequency),
            "max_categories": None if self.max_categories is None else int(self.max_categories),
            "n_inputs": int(self.n_inputs), "columns": [c.state() for c in self.columns],
        }

    @classmethod
    def from_state(cls, state, where=""):
        """Rebuild a schema from :meth:`state`, validating every field before use.

        Raises
        ------
        InvalidArgumentError
            A field of the wrong type, a non-finite number, a scale that is not
            positive, duplicate names or categories, an unknown kind, too many
            categories, an ``n_inputs`` that does not match the columns (the
            message names the field, prefixed by ``where``).
        """
        f = Fields(state, "schema", where)
        f.str("format", (STATE_FORMAT,))
        f.int("version", STATE_VERSION, STATE_VERSION)
        options = {
            "scale": f.str("scale", SCALER_KINDS), "impute": f.str("impute", IMPUTE_KINDS),
            "min_frequency": _min_frequency_state(f), "max_categories": f.int("max_categories", 1, allow_none=True),
        }
        items = f.list("columns", MAX_TOTAL_CATEGORIES)
        if not items:
            f.fail("columns", "a non-empty list", items)
        columns, total = [], 0
        for i, item in enumerate(items):
            column = _column_from_state(f.child(item, f"columns[{i}]"), options["scale"])
            total += len(getattr(column, "categories", ()))
            if total > MAX_TOTAL_CATEGORIES:
                f.fail("columns", f"at most {MAX_TOTAL_CATEGORIES} categories in all", f"{total} or more")
            columns.append(column)
        names = [c.name for c in columns]
        if len(set(names)) != len(names):
            f.fail("columns", "columns of distinct names", f"{name_list(duplicates(names))} twice")
        schema = cls(columns, **options)
        if f.int("n_inputs", 1) != schema.n_inputs:
            f.fail("n_inputs", f"{schema.n_inputs} (the width its columns give)", state["n_inputs"])
        return schema


def _min_frequency_state(f):
    v = f.raw("min_frequency")
    if isinstance(v, float):
        if not 0.0 < v < 1.0:
            f.fail("min_frequency", "a fraction in (0, 1) or an int >= 1", v)
        return v
    return f.int("min_frequency", 1)


def _column_from_state(f, scale_kind):
    name = f.str("name")
    if f.str("kind", (NUMERIC, CATEGORICAL)) == NUMERIC:
        column = NumericColumn(name, f.float("fill"), f.bool("indicator"), f.float("offset"),
                               f.float("scale", positive=True))
        if scale_kind == "none" and (column.offset != 0.0 or column.scale != 1.0):
            f.fail("offset", "0 with scale 1 (the schema's scale is 'none')", (column.offset, column.scale))
        return column
    categories = f.str_list("categories", MAX_TOTAL_CATEGORIES)
    return CategoricalColumn(name, categories, f.bool("missing"), f.int("n_rare", 0))


def _parse_numbers(values, name, table):
    """A categorical column read where a numeric one was trained: each value must be a number."""
    out = np.full(len(values), np.nan)
    cache = {}
    for i, v in enumerate(values):
        if v is None:
            continue
        if v not in cache:
            try:
                cache[v] = float(v)
            except ValueError:
                cache[v] = None
            if cache[v] is None or not math.isfinite(cache[v]):
                raise DataError(
                    f"{table.where(i)}, column {name!r}: {v!r} is not a number, but the column was numeric "
                    f"in training"
                )
        out[i] = cache[v]
    return out
