"""The architecture record: a network as plain data, checked before anything is built from it.

Model files and checkpoints store a network's ``get_config()`` as JSON. A
file may come from a stranger, so :func:`check_architecture` validates the
record (types, bounds, sizes that chain) before :mod:`deltaprop.io` builds a
network from it or :mod:`deltaprop.checkpoint` compares it with the run's;
:func:`plan` builds its layers without allocating anything, and
:func:`n_params`, :func:`n_buffers` and :func:`expected_tensors` give the
sizes it implies, so a reader can check the file's tensors against them
before allocating anything.
"""

from . import blocks, embedding, norms  # noqa: F401 - registers the layer types a file may name
from . import layers as _layers
from .errors import ModelFileError, UnknownNameError, describe

__all__ = ["check_architecture", "plan", "unregistered", "n_params", "n_buffers", "expected_tensors",
           "MAX_LAYERS", "MAX_UNITS"]

MAX_LAYERS = 1000
MAX_UNITS = 10**7


def _int_in(value, low, high):
    return type(value) is int and low <= value <= high


def _check_dense(path, where, layer, last):
    """The fields of a Dense layer's record (types and bounds; names are resolved when it is built)."""
    for key in ("n_in", "n_out"):
        v = layer.get(key)
        if not _int_in(v, 1, MAX_UNITS):
            raise ModelFileError(f"{path}: {where} has invalid {key} {describe(v)} (an integer in 1..{MAX_UNITS})")
    act = layer.get("activation")
    if not isinstance(act, dict) or not isinstance(act.get("name"), str):
        raise ModelFileError(f"{path}: {where} activation must be an object with a 'name' string")
    d = layer.get("dropout", 0.0)
    if type(d) not in (int, float) or not 0 <= d < 1:
        raise ModelFileError(f"{path}: {where} has invalid dropout {describe(d)} (a number in [0, 1))")
    if last and d:
        raise ModelFileError(f"{path}: the output layer has dropout {d}")
    if not isinstance(layer.get("bias", True), bool):
        raise ModelFileError(f"{path}: {where} has an invalid bias {describe(layer.get('bias'))} (true or false)")
    init = layer.get("initializer")
    if init is not None and not isinstance(init, str):
        raise ModelFileError(f"{path}: {where} has an invalid initializer {describe(init)}")


def _check_records(path, records, where, top):
    """Each layer record: an object whose type is registered; Dense fields checked; blocks recursively."""
    for i, layer in enumerate(records):
        name = f"{where}layer {i}"
        if not isinstance(layer, dict):
            raise ModelFileError(f"{path}: {name} must be an object, got {type(layer).__name__}")
        kind = layer.get("type", "Dense")
        if not isinstance(kind, str):
            raise ModelFileError(f"{path}: {name} has unknown type {describe(kind)}")
        try:
            _layers.lookup(kind)
        except UnknownNameError:
            raise ModelFileError(f"{path}: {name} has unknown type {describe(kind)}; a layer of your own must be "
                                 f"registered under that name before loading (deltaprop.layers.register)") from None
        if kind.lower() == "dense":
            _check_dense(path, name, layer, top and i == len(records) - 1)
        elif isinstance(layer.get("layers"), list):
            if not layer["layers"]:
                raise ModelFileError(f"{path}: {name} has an empty 'layers' list")
            _check_records(path, layer["layers"], f"{name}, ", False)


def unregistered(path, exc):
    """The ModelFileError for a file that names an activation, loss, initializer or layer not registered here."""
    return ModelFileError(
        f"{path}: {exc}. If the model uses your own activation, loss, initializer or layer, register it under the "
        f"saved name before loading (deltaprop.activations.register(name, cls), deltaprop.losses.register, "
        f"deltaprop.initializers.register, deltaprop.layers.register)")


def plan(path, arch):
    """The layers a checked architecture describes, built (unbound: nothing allocated) and chained.

    Every failure (an unregistered activation or layer, bad hyperparameters,
    widths that do not chain) is a :class:`ModelFileError` naming the file.
    """
    built, width = [], None
    for i, config in enumerate(arch["layers"]):
        try:
            layer = _layers.from_config(config)
        except UnknownNameError as exc:
            raise unregistered(path, exc) from None
        except Exception as exc:  # noqa: BLE001 - a registered class may reject the file's hyperparameters any way
            raise ModelFileError(f"{path}: architecture is invalid: layer {i}: {exc}") from None
        if i and layer.n_in is not None and layer.n_in != width:
            raise ModelFileError(f"{path}: layer {i} has n_in={layer.n_in} but layer {i - 1} has n_out={width}")
        if i == 0 and layer.n_in is None:
            raise ModelFileError(f"{path}: layer 0 does not state its input width")
        if layer.n_in is not None and not _int_in(layer.n_in, 1, MAX_UNITS):
            raise ModelFileError(f"{path}: layer {i} has invalid n_in {describe(layer.n_in)} (an integer in "
                                 f"1..{MAX_UNITS})")
        try:
            width = layer.build(layer.n_in if i == 0 else width)
        except Exception as exc:  # noqa: BLE001 - as above
            raise ModelFileError(f"{path}: architecture is invalid: layer {i}: {exc}") from None
        if not _int_in(width, 1, MAX_UNITS):
            raise ModelFileError(f"{path}: layer {i} gives {describe(width)} outputs (allowed 1..{MAX_UNITS})")
        built.append(layer)
    if not isinstance(built[-1], _layers.Dense):
        raise ModelFileError(f"{path}: the last layer must be a Dense layer, got {built[-1]!r}")
    return built


def check_architecture(path, arch):
    """Validate an architecture dict from a file (types, bounds, sizes that chain) and return it.

    Activation, loss and initializer names are resolved later, when
    :func:`deltaprop.io.build_network` builds the network.
    """
    if not isinstance(arch, dict) or not isinstance(arch.get("layers"), list):
        raise ModelFileError(f"{path}: architecture must be an object with a 'layers' list")
    layers = arch["layers"]
    if not 1 <= len(layers) <= MAX_LAYERS:
        raise ModelFileError(f"{path}: architecture has {len(layers)} layers (allowed 1..{MAX_LAYERS})")
    _check_records(path, layers, "", True)
    for i in range(1, len(layers)):
        a, b = layers[i - 1], layers[i]
        if a.get("type", "Dense").lower() == "dense" and b.get("type", "Dense").lower() == "dense" \
                and a["n_out"] != b["n_in"]:
            raise ModelFileError(f"{path}: layer {i} has n_in={b['n_in']} but layer {i - 1} has n_out={a['n_out']}")
    loss = arch.get("loss")
    if not isinstance(loss, dict) or not isinstance(loss.get("name"), str):
        raise ModelFileError(f"{path}: architecture loss must be an object with a 'name' string")
    if arch.get("dtype") not in ("float32", "float64"):
        raise ModelFileError(
            f"{path}: architecture dtype must be 'float32' or 'float64', got {describe(arch.get('dtype'))}"
        )
    return arch


def n_params(arch, path="the architecture"):
    """Number of parameters of a checked architecture (``Σ n_out (n_in + 1)`` for Dense layers alone)."""
    return sum(layer.n_params for layer in plan(path, arch))


def n_buffers(arch, path="the architecture"):
    """Number of running-statistic entries (BatchNorm's means and variances) of a checked architecture."""
    return sum(layer.n_buffers for layer in plan(path, arch))


def expected_tensors(arch, path="the architecture", planned=None):
    """``{name: shape}`` of the ``layers.*`` tensors an architecture needs (parameters and buffers).

    ``planned``: the architecture's :func:`plan`, when the caller already has it.
    """
    out = {}
    for i, layer in enumerate(plan(path, arch) if planned is None else planned):
        shapes = {**layer.param_shapes(), **layer.buffer_shapes()}
        for name, shape in shapes.items():
            out[f"layers.{i}.{name}"] = tuple(shape)
    return out
