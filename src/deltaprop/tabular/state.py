"""Validation of saved states (JSON-able dicts): every field checked, and named, before it is used."""

import math
import numbers

from ..errors import InvalidArgumentError, describe

__all__ = ["Fields"]


class Fields:
    """Typed access to a saved dict; a bad field is an InvalidArgumentError naming it.

    Parameters
    ----------
    d : object
        What should be a dict.
    path : str
        The dict's name in messages (``"schema.columns[2]"``).
    where : str
        A prefix for messages (a file name), or "".
    """

    def __init__(self, d, path, where=""):
        self.prefix = f"{where}: " if where else ""
        self.path = path
        if not isinstance(d, dict):
            self.fail("", "a dict", d)
        self.d = d

    def fail(self, key, expected, value):
        field = f"{self.path}.{key}" if key else self.path
        raise InvalidArgumentError(f"{self.prefix}{field} must be {expected}, got {describe(value)}")

    def child(self, value, key):
        """A :class:`Fields` over a nested dict ``value`` found at ``key``."""
        return Fields(value, f"{self.path}.{key}", self.prefix[:-2] if self.prefix else "")

    def raw(self, key):
        if key not in self.d:
            raise InvalidArgumentError(f"{self.prefix}{self.path} lacks the field {key!r} (found {sorted(self.d)})")
        return self.d[key]

    def str(self, key, choices=None):
        v = self.raw(key)
        if not isinstance(v, str) or (choices is not None and v not in choices):
            self.fail(key, "a str" if choices is None else f"one of {', '.join(map(repr, choices))}", v)
        return v

    def bool(self, key):
        v = self.raw(key)
        if not isinstance(v, bool):
            self.fail(key, "true or false", v)
        return v

    def int(self, key, low=0, high=None, allow_none=False):
        v = self.raw(key)
        if v is None and allow_none:
            return None
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < low or (high is not None and v > high):
            span = f"an int >= {low}" if high is None else f"an int in [{low}, {high}]"
            self.fail(key, span + (" or null" if allow_none else ""), v)
        return int(v)

    def float(self, key, positive=False):
        v = self.raw(key)
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or (positive and v <= 0):
            self.fail(key, "a finite positive number" if positive else "a finite number", v)
        return float(v)

    def list(self, key, max_len=None):
        v = self.raw(key)
        if not isinstance(v, list) or (max_len is not None and len(v) > max_len):
            self.fail(key, "a list" if max_len is None else f"a list of at most {max_len} items", v)
        return v

    def str_list(self, key, max_len=None, unique=True):
        """A list of str (each distinct when ``unique``)."""
        v = self.list(key, max_len)
        for i, item in enumerate(v):
            if not isinstance(item, str):
                self.fail(f"{key}[{i}]", "a str", item)
        if unique and len(set(v)) != len(v):
            seen = set()
            twice = next(item for item in v if item in seen or seen.add(item))
            self.fail(key, "a list of distinct str", f"{twice!r} twice")
        return list(v)
