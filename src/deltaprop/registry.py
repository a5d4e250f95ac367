"""One mechanism behind every ``get(spec)``: names, config dicts and objects.

Activations, losses, initializers, optimizers and schedules are each a plain
dict of names to classes (``REGISTRY`` in their module) wrapped in a
:class:`Registry`, which resolves what a user passes:

- a name (``"relu"``, ``"Leaky-ReLU"``, an alias such as ``"mse"``): looked up
  after lower-casing and turning ``-`` into ``_``, then built;
- a config dict (``{"name": "huber", "delta": 2.0}``): built with the other
  keys as keyword arguments (what ``get_config()`` returns, so a saved config
  rebuilds the object; nothing is ever parsed out of a ``repr``);
- a class of the family: instantiated with no arguments;
- any object with the family's methods (a user's own): returned as it is.

An unknown name is an :class:`~deltaprop.errors.UnknownNameError` that lists
the valid ones; bad parameters are an
:class:`~deltaprop.errors.InvalidArgumentError` naming the object.
"""

from .errors import InvalidArgumentError, InvalidTypeError, UnknownNameError, describe

__all__ = ["Registry", "normalize"]


def normalize(name):
    """The lookup form of a name: lower case, ``-`` as ``_``."""
    return name.lower().replace("-", "_")


class Registry:
    """Resolves specs of one family (see the module notes).

    Parameters
    ----------
    kind : str
        The family, for messages ("activation", "loss", ...).
    table : dict
        Name -> class (or factory); shared with the module's ``REGISTRY``.
    aliases : dict, optional
        Alternative name -> registered name.
    base : type, optional
        The family's base class: a subclass passed as a spec is instantiated.
    methods : tuple of str
        Methods an object must have to be accepted as it is.
    hint : str
        Appended to the unknown-name message.
    """

    def __init__(self, kind, table, aliases=None, base=None, methods=(), hint=""):
        self.kind = kind
        self.table = table
        self.aliases = aliases or {}
        self.base = base
        self.methods = methods
        self.hint = hint

    def key(self, name):
        """The registered name for ``name`` or one of its aliases."""
        key = normalize(name)
        return self.aliases.get(key, key)

    def register(self, name, factory):
        """Register ``factory`` (a class or callable) under ``name``; returns it."""
        if not isinstance(name, str) or not name:
            raise InvalidArgumentError(f"{self.kind} name must be a non-empty string, got {describe(name)}")
        self.table[normalize(name)] = factory
        return factory

    def lookup(self, name):
        """The registered entry for ``name`` (not built)."""
        if not isinstance(name, str):
            raise InvalidArgumentError(f"{self.kind} name must be a string, got {describe(name)}")
        key = self.key(name)
        if key not in self.table:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; valid names: {', '.join(sorted(self.table))}{self.hint}"
            )
        return self.table[key]

    def build(self, name, params=None):
        """Look ``name`` up and call its entry with ``params`` as keyword arguments."""
        factory = self.lookup(name)
        try:
            return factory(**(params or {}))
        except TypeError as exc:
            raise InvalidArgumentError(f"bad parameters for {self.kind} {name!r}: {exc}") from None

    def split(self, spec):
        """``(name, params)`` of a name or a config dict."""
        if isinstance(spec, str):
            return spec, {}
        params = dict(spec)
        name = params.pop("name", None)
        if not isinstance(name, str):
            raise InvalidArgumentError(f"{self.kind} config needs a 'name' string, got {describe(spec)}")
        return name, params

    def is_object(self, spec):
        """Whether ``spec`` is an object of the family, to be used as it is."""
        if isinstance(spec, (str, dict, type)):
            return False
        if self.base is not None and isinstance(spec, self.base):
            return True
        return bool(self.methods) and all(callable(getattr(spec, m, None)) for m in self.methods)

    def resolve(self, spec):
        """Build or pass through ``spec`` (a name, config dict, class or object)."""
        if isinstance(spec, (str, dict)):
            return self.build(*self.split(spec))
        if self.base is not None and isinstance(spec, type) and issubclass(spec, self.base):
            return spec()
        if self.is_object(spec):
            return spec
        wanted = f"an object with {' and '.join(m + '()' for m in self.methods)}" if self.methods else "an object"
        raise InvalidTypeError(f"{self.kind} must be a name, a config dict or {wanted}, got {describe(spec)}")
