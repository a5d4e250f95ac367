"""The architecture record: a network as plain data, checked before anything is built from it.

Model files and checkpoints store a network's ``get_config()`` as JSON. A
file may come from a stranger, so :func:`check_architecture` validates the
record (types, bounds, sizes that chain) before :mod:`deltaprop.io` builds a
network from it or :mod:`deltaprop.checkpoint` compares it with the run's;
:func:`n_params` and :func:`expected_tensors` give the sizes it implies, so a
reader can check the file's tensors against them before allocating anything.
"""

from .errors import ModelFileError, describe

__all__ = ["check_architecture", "n_params", "expected_tensors", "MAX_LAYERS", "MAX_UNITS"]

MAX_LAYERS = 1000
MAX_UNITS = 10**7


def _int_in(value, low, high):
    return type(value) is int and low <= value <= high


def check_architecture(path, arch):
    """Validate an architecture dict from a file (types, bounds, sizes that chain) and return it.

    Names are resolved later, by :func:`deltaprop.io.build_network`.
    """
    if not isinstance(arch, dict) or not isinstance(arch.get("layers"), list):
        raise ModelFileError(f"{path}: architecture must be an object with a 'layers' list")
    layers = arch["layers"]
    if not 1 <= len(layers) <= MAX_LAYERS:
        raise ModelFileError(f"{path}: architecture has {len(layers)} layers (allowed 1..{MAX_LAYERS})")
    for i, layer in enumerate(layers):
        if not isinstance(layer, dict):
            raise ModelFileError(f"{path}: layer {i} must be an object, got {type(layer).__name__}")
        if layer.get("type", "Dense") != "Dense":
            raise ModelFileError(f"{path}: layer {i} has unknown type {describe(layer.get('type'))}")
        for key in ("n_in", "n_out"):
            v = layer.get(key)
            if not _int_in(v, 1, MAX_UNITS):
                raise ModelFileError(
                    f"{path}: layer {i} has invalid {key} {describe(v)} (an integer in 1..{MAX_UNITS})"
                )
        if i and layers[i - 1]["n_out"] != layer["n_in"]:
            raise ModelFileError(
                f"{path}: layer {i} has n_in={layer['n_in']} but layer {i - 1} has n_out={layers[i - 1]['n_out']}"
            )
        act = layer.get("activation")
        if not isinstance(act, dict) or not isinstance(act.get("name"), str):
            raise ModelFileError(f"{path}: layer {i} activation must be an object with a 'name' string")
        d = layer.get("dropout", 0.0)
        if type(d) not in (int, float) or not 0 <= d < 1:
            raise ModelFileError(f"{path}: layer {i} has invalid dropout {describe(d)} (a number in [0, 1))")
        if i == len(layers) - 1 and d:
            raise ModelFileError(f"{path}: the output layer has dropout {d}")
        init = layer.get("initializer")
        if init is not None and not isinstance(init, str):
            raise ModelFileError(f"{path}: layer {i} has an invalid initializer {describe(init)}")
    loss = arch.get("loss")
    if not isinstance(loss, dict) or not isinstance(loss.get("name"), str):
        raise ModelFileError(f"{path}: architecture loss must be an object with a 'name' string")
    if arch.get("dtype") not in ("float32", "float64"):
        raise ModelFileError(
            f"{path}: architecture dtype must be 'float32' or 'float64', got {describe(arch.get('dtype'))}"
        )
    return arch


def n_params(arch):
    """Number of parameters of a checked architecture: ``Σ n_out (n_in + 1)``."""
    return sum(layer["n_out"] * (layer["n_in"] + 1) for layer in arch["layers"])


def expected_tensors(arch):
    """``{name: shape}`` of the ``layers.*`` tensors an architecture needs."""
    out = {}
    for i, layer in enumerate(arch["layers"]):
        out[f"layers.{i}.W"] = (layer["n_out"], layer["n_in"])
        out[f"layers.{i}.b"] = (layer["n_out"],)
    return out
