"""One validator for JSON metadata read from files: depth, types, ranges, lengths and finiteness.

A model file's metadata comes from whoever wrote the file. Before any of it
is read, each entry is parsed (bounded: a nesting depth found by a scan of
the text, without recursion, before ``json.loads``) and checked against a
declarative spec:

    check(value, spec, where)

where ``spec`` is built from :class:`Str`, :class:`Int`, :class:`Float`,
:class:`Bool`, :class:`Null`, :class:`Any_of`, :class:`List`, :class:`Dict`
and :class:`Json` (free-form JSON: nesting depth, item count, string lengths,
finite numbers; walked with an explicit stack). A problem is an
:class:`~deltaprop.errors.InvalidArgumentError` whose message starts with
the path inside the document::

    history[3].loss: infinity is not allowed
    config.hidden: expected a list of at most 64 integers, got the string '64,32'

Checking recurses only along the spec (a handful of levels, fixed by the
code); a value nested deeper than its spec fails a type test at the spec's
deepest level, and :class:`Json` never recurses at all.

The specs of deltaprop's model files are the module's constants
(:data:`HISTORY`, :data:`TEST_SCORES`, ...); :func:`validate_model_metadata`
applies all of them to a file's metadata map (:data:`MODEL_METADATA`).
"""

import math
import re

import numpy as np

from .errors import InvalidArgumentError, ModelFileError, describe
from .tensorfile import loads

__all__ = [
    "Spec", "Str", "Int", "Float", "Bool", "Null", "Any_of", "List", "Dict", "Json",
    "check", "json_depth", "parse_json", "validate_model_metadata",
    "TASK", "LIBRARY_VERSION", "CLASSES", "CLASS_NAMES", "FEATURE_NAMES", "TARGET_NAME", "TARGET_SCALING",
    "HISTORY", "TEST_SCORES", "RUN_CONFIG", "ARCHITECTURE", "PREPROCESSING", "ESTIMATOR_RECORD",
    "MODEL_METADATA", "MAX_JSON_DEPTH",
]

#: no metadata entry is parsed when its text nests deeper than this (found without recursion)
MAX_JSON_DEPTH = 64
#: integers that count things (epochs, samples) stay exact in a float64
MAX_COUNT = 2**53


# ------------------------------------------------------------------ messages
def _got(value):
    """What a value is, for a message: ``the string 'abc'``, ``a list of 3 items``, ``null``, ``1.5``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the string {describe(value, 40)}"
    if isinstance(value, list):
        return f"a list of {len(value)} item{'' if len(value) == 1 else 's'}"
    if isinstance(value, dict):
        return f"an object of {len(value)} key{'' if len(value) == 1 else 's'}"
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("infinity" if value > 0 else "-infinity")
    if isinstance(value, (int, float)):
        return describe(value, 40)
    return f"a {type(value).__name__}"


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\Z")


def _key_path(where, key):
    """``where.key`` for a plain key, ``where['odd key']`` for anything else."""
    if isinstance(key, str) and _NAME.match(key):
        return f"{where}.{key}" if where else key
    return f"{where}[{describe(key, 40)}]"


def _key_where(where, key):
    """Where a key's own name is checked: ``config key 'xx...'``."""
    return f"{where + ' ' if where else ''}key {describe(key, 40)}"


def _fail(where, message):
    raise InvalidArgumentError(f"{where}: {message}")


def _expected(spec, value, where):
    _fail(where, f"expected {spec.what}, got {_got(value)}")


def _num(x):
    return str(x) if isinstance(x, int) and abs(x) < 10**12 else f"{x:g}"


def _range_text(lo, hi, lo_open=False):
    if lo is not None and hi is not None:
        return f"in {'(' if lo_open else '['}{_num(lo)}, {_num(hi)}]"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {_num(lo)}"
    return f"<= {_num(hi)}"


# --------------------------------------------------------------------- specs
class Spec:
    """A rule for one JSON value. ``what`` names it for a message ("an integer >= 1"), ``plural`` in a list."""

    what = "a value"
    plural = "values"

    def type_ok(self, value):
        """Whether ``value`` has a type this spec reads (to choose the message of :class:`Any_of`)."""
        return True

    def check(self, value, where):
        """Raise InvalidArgumentError naming ``where`` when ``value`` breaks the rule."""
        raise NotImplementedError


class Str(Spec):
    """A string of ``min_len..max_len`` characters, optionally one of ``choices``."""

    plural = "strings"

    def __init__(self, max_len=1000, min_len=0, choices=None):
        self.max_len, self.min_len, self.choices = max_len, min_len, None if choices is None else tuple(choices)
        if self.choices is not None:
            self.what = " or ".join(repr(c) for c in self.choices)
        else:
            self.what = "a string" + ("" if max_len is None else f" of at most {max_len} characters")

    def type_ok(self, value):
        return isinstance(value, str)

    def check(self, value, where):
        if not isinstance(value, str):
            _expected(self, value, where)
        if self.choices is not None and value not in self.choices:
            _expected(self, value, where)
        if self.max_len is not None and len(value) > self.max_len:
            _fail(where, f"a string of {len(value)} characters is too long (at most {self.max_len})")
        if len(value) < self.min_len:
            _fail(where, f"expected at least {self.min_len} character{'' if self.min_len == 1 else 's'}, "
                         f"got {_got(value)}")


class Int(Spec):
    """An integer (not a boolean) in ``[lo, hi]`` (either bound may be None)."""

    plural = "integers"

    def __init__(self, lo=None, hi=None):
        self.lo, self.hi = lo, hi
        self.what = "an integer" + ("" if lo is None and hi is None else " " + _range_text(lo, hi))

    def type_ok(self, value):
        return isinstance(value, int) and not isinstance(value, bool)

    def check(self, value, where):
        if not self.type_ok(value):
            _expected(self, value, where)
        if (self.lo is not None and value < self.lo) or (self.hi is not None and value > self.hi):
            _expected(self, value, where)


class Float(Spec):
    """A number (an integer counts; a boolean does not) in a range.

    ``finite=True`` refuses infinities and, unless ``nan=True``, NaN (the
    history stores NaN for a metric that is undefined, such as R² of
    constant targets); the range is checked on finite values.
    """

    plural = "numbers"

    def __init__(self, lo=None, hi=None, finite=True, nan=False, lo_open=False):
        self.lo, self.hi, self.finite, self.nan, self.lo_open = lo, hi, finite, nan, lo_open
        kind = "a finite number" if finite else "a number"
        self.what = kind + ("" if lo is None and hi is None else " " + _range_text(lo, hi, lo_open))

    def type_ok(self, value):
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    def check(self, value, where):
        if not self.type_ok(value):
            _expected(self, value, where)
        if isinstance(value, float) and math.isnan(value):
            if not self.nan:
                _fail(where, "NaN is not allowed")
            return
        if isinstance(value, int):
            if abs(value) > 2**1023:  # float(value) would raise OverflowError
                _fail(where, f"expected {self.what}, got an integer of {len(str(abs(value)))} digits")
        elif math.isinf(value):
            if self.finite:
                _fail(where, f"{_got(value)} is not allowed")
            return
        low_bad = self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo)
        if low_bad or (self.hi is not None and value > self.hi):
            _expected(self, value, where)


class Bool(Spec):
    what, plural = "true or false", "booleans"

    def type_ok(self, value):
        return isinstance(value, bool)

    def check(self, value, where):
        if not isinstance(value, bool):
            _expected(self, value, where)


class Null(Spec):
    what, plural = "null", "nulls"

    def type_ok(self, value):
        return value is None

    def check(self, value, where):
        if value is not None:
            _expected(self, value, where)


class Any_of(Spec):  # noqa: N801 - named as the brief's spec language reads
    """The first of ``specs`` that accepts the value.

    When every one refuses and exactly one of them reads the value's type,
    that one's message is raised (it says more than a list of alternatives).
    """

    def __init__(self, *specs, what=None):
        self.specs = specs
        self.what = what or " or ".join(s.what for s in specs)

    def type_ok(self, value):
        return any(s.type_ok(value) for s in self.specs)

    def check(self, value, where):
        errors = []
        for spec in self.specs:
            try:
                spec.check(value, where)
                return
            except InvalidArgumentError as exc:
                errors.append((spec, exc))
        readers = [exc for spec, exc in errors if spec.type_ok(value)]
        if len(readers) == 1:
            raise readers[0]
        _expected(self, value, where)


class List(Spec):
    """A list of ``min_len..max_len`` items, each checked by ``item``."""

    plural = "lists"

    def __init__(self, item, max_len=None, min_len=0):
        self.item, self.max_len, self.min_len = item, max_len, min_len
        size = "" if max_len is None else f"at most {max_len:,} "
        self.what = f"a list of {size}{item.plural}"

    def type_ok(self, value):
        return isinstance(value, list)

    def check(self, value, where):
        if not isinstance(value, list):
            _expected(self, value, where)
        if self.max_len is not None and len(value) > self.max_len:
            _fail(where, f"expected {self.what}, got {_got(value)}")
        if len(value) < self.min_len:
            _fail(where, f"expected at least {self.min_len} item{'' if self.min_len == 1 else 's'}, "
                         f"got {_got(value)}")
        for i, v in enumerate(value):
            self.item.check(v, f"{where}[{i}]")


class Dict(Spec):
    """An object: ``fields`` (key -> spec), the ``required`` keys, and what other keys may hold.

    Parameters
    ----------
    fields : dict of str to Spec
    required : sequence of str
    extra : "forbid", "allow" or Spec
        Keys outside ``fields``: refused, accepted unchecked, or checked by
        the spec (their names by ``key``).
    key : Str
        The rule for every key's name.
    max_keys : int, optional
    rule : callable, optional
        ``rule(value)`` after the fields: a message (str) for a problem
        across fields (lengths that must agree), or None.
    """

    plural = "objects"

    def __init__(self, fields=None, required=(), extra="forbid", key=None, max_keys=None, rule=None,
                 what="an object"):
        self.fields, self.required, self.extra = dict(fields or {}), tuple(required), extra
        self.key, self.max_keys, self.rule, self.what = key or Str(max_len=200), max_keys, rule, what

    def type_ok(self, value):
        return isinstance(value, dict)

    def check(self, value, where):
        if not isinstance(value, dict):
            _expected(self, value, where)
        if self.max_keys is not None and len(value) > self.max_keys:
            _fail(where, f"expected {self.what} of at most {self.max_keys:,} keys, got {_got(value)}")
        for name in self.required:
            if name not in value:
                _fail(where, f"the key {name!r} is missing")
        for name, v in value.items():
            spec = self.fields.get(name)
            if spec is None:
                if self.extra == "forbid":
                    _fail(where, f"unexpected key {describe(name, 40)}")
                self.key.check(name, _key_where(where, name))
                if self.extra == "allow":
                    continue
                spec = self.extra
            spec.check(v, _key_path(where, name))
        problem = None if self.rule is None else self.rule(value)
        if problem:
            _fail(where, problem)


class Json(Spec):
    """Free-form JSON, bounded: nesting depth, total items, string length, finite numbers.

    The walk uses an explicit stack, never recursion. ``max_depth`` counts
    nested containers (``{"a": [1]}`` has depth 2; a scalar 0). Integers
    are bounded by ``max_int`` in magnitude (a float conversion of a larger
    one would overflow). ``top`` is ``"object"`` or ``"list"`` to require
    that type at the top.
    """

    def __init__(self, max_depth=8, max_items=100_000, max_str=100_000, max_int=2**64, finite=True, top=None):
        self.max_depth, self.max_items, self.max_str = max_depth, max_items, max_str
        self.max_int, self.finite, self.top = max_int, finite, top
        self.what = {"object": "an object", "list": "a list", None: "JSON data"}[top]

    def type_ok(self, value):
        return {"object": isinstance(value, dict), "list": isinstance(value, list)}.get(self.top, True)

    def check(self, value, where):
        if not self.type_ok(value):
            _expected(self, value, where)
        stack = [(value, 0, where)]
        items = 0
        while stack:
            v, depth, at = stack.pop()
            items += 1
            if items > self.max_items:
                _fail(where, f"more than {self.max_items:,} values")
            if isinstance(v, (dict, list)):
                if depth + 1 > self.max_depth:
                    _fail(at, f"nested deeper than {self.max_depth} levels")
                if len(v) > self.max_items:
                    _fail(at, f"more than {self.max_items:,} values")
                if isinstance(v, dict):
                    for k, x in v.items():
                        self._scalar(k, _key_where(at, k))
                        stack.append((x, depth + 1, _key_path(at, k)))
                else:
                    stack.extend((x, depth + 1, f"{at}[{i}]") for i, x in enumerate(v))
            else:
                self._scalar(v, at)

    def _scalar(self, v, at):
        if v is None or isinstance(v, bool):
            return
        if isinstance(v, str):
            if len(v) > self.max_str:
                _fail(at, f"a string of {len(v)} characters is too long (at most {self.max_str})")
        elif isinstance(v, int):
            if abs(v) > self.max_int:
                _fail(at, f"an integer of {len(str(abs(v)))} digits is out of range (magnitude at most "
                          f"{self.max_int:g})")
        elif isinstance(v, float):
            if self.finite and not math.isfinite(v):
                _fail(at, f"{_got(v)} is not allowed")
        else:
            _fail(at, f"{_got(v)} is not JSON data")


def check(value, spec, where="value"):
    """Check ``value`` against ``spec``; returns ``value``.

    Raises
    ------
    InvalidArgumentError
        Naming the path inside the document (``where`` and below it).
    """
    spec.check(value, where)
    return value


# ----------------------------------------------------------------- parsing
_SCAN_CHUNK = 1 << 20
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


def json_depth(text):
    """The deepest nesting of ``[`` and ``{`` in JSON text, found by a scan without recursion.

    Brackets inside strings do not count. For text that is not JSON the
    answer is a bound that :func:`json.loads` then refuses anyway.
    """
    data = _STRING.sub(b'""', text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    codes = np.frombuffer(data, dtype=np.uint8)
    deepest = level = 0
    for start in range(0, codes.size, _SCAN_CHUNK):  # a chunk at a time: memory stays a few MB
        block = codes[start:start + _SCAN_CHUNK]
        step = ((block == ord("[")) | (block == ord("{"))).view(np.int8) \
            - ((block == ord("]")) | (block == ord("}"))).view(np.int8)
        levels = np.cumsum(step, dtype=np.int64) + level
        deepest = max(deepest, int(levels.max()))
        level = int(levels[-1])
    return deepest


def parse_json(text, where="value", max_depth=MAX_JSON_DEPTH):
    """Parse JSON text bounded in nesting depth; every failure is an InvalidArgumentError naming ``where``."""
    if not isinstance(text, str):
        _fail(where, f"expected JSON text, got {_got(text)}")
    depth = json_depth(text)
    if depth > max_depth:
        _fail(where, f"nested {depth} levels deep (at most {max_depth})")
    try:
        return loads(text)  # the codec's parser: duplicate keys refused, RecursionError a ValueError
    except ValueError as exc:  # syntax, duplicate keys, an integer of more than 4300 digits
        _fail(where, f"not valid JSON ({' '.join(str(exc).split())[:200]})")


# ------------------------------------------------------- deltaprop's files
def _scaling_lengths(value):
    n = value.get("n_features")
    for key in ("offset", "scale"):
        if len(value[key]) != n:
            count = len(value[key])
            return f"{key} has {count} value{'' if count == 1 else 's'} for n_features {n}"
    return None


_MAX_FEATURES = 10**7  # architecture.MAX_UNITS
_NUMBER_OR_NULL = Any_of(Float(nan=True), Null())
_PATH = Str(max_len=4096, min_len=1)

#: ``task``: what ``deltaprop train`` fitted
TASK = Str(choices=("classification", "regression"))
#: ``library_version``: the deltaprop that wrote the file
LIBRARY_VERSION = Str(max_len=64, min_len=1)
#: ``classes``: class labels in output order (distinctness and count: :func:`deltaprop.io.load`)
CLASSES = List(Any_of(Str(max_len=1000), Int(-2**63, 2**64 - 1), Float(), Bool(),
                      what="a string (at most 1000 characters), a 64-bit integer, a finite number or a boolean"),
               max_len=10**6)
#: ``class_names``: a name for each class (``deltaprop train``)
CLASS_NAMES = List(Str(max_len=1000), max_len=10**6)
#: ``feature_names``: the columns the network reads
FEATURE_NAMES = List(Str(max_len=1000), max_len=_MAX_FEATURES)
#: ``target_name``: the target column, by name or index
TARGET_NAME = Any_of(Str(max_len=1000), Int(-2**31, 2**31))
#: ``target_scaling``: a regression model's target standardisation; scales bounded so that mapping a
#: float32 output back (``y = z * scale + offset``) cannot overflow a float64
TARGET_SCALING = Dict(
    {"kind": Str(choices=("standard", "minmax", "none")), "n_features": Int(1, _MAX_FEATURES),
     "offset": List(Float(-1e300, 1e300), max_len=_MAX_FEATURES),
     "scale": List(Float(0.0, 1e250, lo_open=True), max_len=_MAX_FEATURES)},
    required=("kind", "n_features", "offset", "scale"), rule=_scaling_lengths,
)
#: ``history``: one row per epoch: ``epoch`` and numbers (NaN where a metric is undefined) or null
HISTORY = List(Dict({"epoch": Int(1, MAX_COUNT)}, required=("epoch",), extra=_NUMBER_OR_NULL,
                    key=Str(max_len=100), max_keys=1000), max_len=100_000)
#: ``test``: the test-set scores ``deltaprop train`` printed
TEST_SCORES = Dict({"samples": Int(0, MAX_COUNT), "loss": Float(nan=True)}, required=("loss", "samples"),
                   extra=_NUMBER_OR_NULL, key=Str(max_len=100), max_keys=100)
#: ``config``: the run's configuration (free-form; the keys the commands act on are typed)
RUN_CONFIG = Dict(
    {"data": _PATH, "labels": Any_of(Null(), _PATH), "target": Any_of(Null(), Str(max_len=1000), Int(-2**31, 2**31)),
     "seed": Int(0, None), "test_split": Float(0.0, 1.0), "validation_split": Float(0.0, 1.0)},
    extra=Json(max_depth=7), key=Str(max_len=200), max_keys=10_000,
)
#: ``architecture``: bounded here; its meaning is checked by :func:`deltaprop.architecture.check_architecture`
ARCHITECTURE = Json(max_depth=8, max_items=100_000, max_str=1000, top="object")
#: ``preprocessing``: a Scaler's config (the kind is checked by ``Scaler.from_state``)
PREPROCESSING = Dict({"kind": Str(max_len=100), "n_features": Int(1, _MAX_FEATURES)},
                     required=("kind", "n_features"), extra=Json(max_depth=6), max_keys=1000)
_CURVE = List(Float(nan=True), max_len=_MAX_FEATURES)
#: ``sklearn_estimator``: an estimator's record (:mod:`deltaprop.estimators._files`); the class reads
#: its own fields (mode, classes_dtype, multilabel_dtype, y_ndim)
ESTIMATOR_RECORD = Dict(
    {"format_version": Int(1, 10**6), "estimator": Str(max_len=100), "params": Json(max_depth=6, top="object"),
     "unsaved_params": List(Str(max_len=200), max_len=1000), "n_features_in": Int(1, _MAX_FEATURES),
     "feature_names_in": Any_of(Null(), FEATURE_NAMES), "loss_curve": _CURVE,
     "validation_scores": Any_of(Null(), _CURVE), "validation_loss_curve": Any_of(Null(), _CURVE),
     "mode": Str(choices=("binary", "multiclass", "multilabel")), "classes_dtype": Str(max_len=20),
     "multilabel_dtype": Any_of(Null(), Str(max_len=20)), "y_ndim": Int(1, 2),
     # bounded here; DataContract.from_state checks every field
     "contract": Any_of(Null(), Json(max_depth=6, max_items=3_000_000, max_str=10_000, top="object"))},
    required=("format_version", "estimator"), extra=Json(max_depth=6), key=Str(max_len=200), max_keys=1000,
)
#: metadata key -> spec: every JSON entry of a model file that deltaprop reads
MODEL_METADATA = {
    "architecture": ARCHITECTURE, "preprocessing": PREPROCESSING, "classes": CLASSES, "config": RUN_CONFIG,
    "library_version": LIBRARY_VERSION, "task": TASK, "class_names": CLASS_NAMES,
    "target_scaling": TARGET_SCALING, "target_name": TARGET_NAME, "feature_names": FEATURE_NAMES,
    "history": HISTORY, "test": TEST_SCORES, "sklearn_estimator": ESTIMATOR_RECORD,
    # bounded here; every field is then checked by deltaprop.tabular.DataContract.from_state
    "data_contract": Json(max_depth=6, max_items=3_000_000, max_str=10_000, top="object"),
    "overrides": Json(max_depth=3, max_items=100_000, max_str=10_000, top="list"),
}
#: metadata key -> the most characters its JSON text may have (the rest: the header's own bound)
MAX_TEXT = {"config": 2**20, "architecture": 2**20, "preprocessing": 2**20, "library_version": 1000,
            "task": 100, "target_name": 10_000}


def validate_model_metadata(path, metadata):
    """Parse and check every JSON entry of a model file's metadata that deltaprop reads.

    Parameters
    ----------
    path : str
        The file, for messages.
    metadata : dict of str to str
        The raw metadata map (each value JSON text, as the file holds it).

    Returns
    -------
    dict
        ``{key: parsed value}`` for each key of :data:`MODEL_METADATA`
        present; other keys (``format``, ``format_version``, a caller's
        extra entries) are left to their readers.

    Raises
    ------
    ModelFileError
        ``f"{path}: metadata history[3].loss: infinity is not allowed"``:
        text too long or nested too deeply (found before parsing), invalid
        JSON, duplicate keys, or a value its spec refuses.
    """
    if not isinstance(metadata, dict):
        raise ModelFileError(f"{path}: metadata must be a map of strings, got {_got(metadata)}")
    out = {}
    for key, spec in MODEL_METADATA.items():
        if key not in metadata:
            continue
        text = metadata[key]
        try:
            limit = MAX_TEXT.get(key)
            if isinstance(text, str) and limit is not None and len(text) > limit:
                _fail(key, f"{len(text):,} characters of JSON is too long (at most {limit:,})")
            out[key] = check(parse_json(text, key), spec, key)
        except InvalidArgumentError as exc:
            raise ModelFileError(f"{path}: metadata {exc}") from None
    return out
