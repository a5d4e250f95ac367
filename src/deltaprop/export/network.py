r"""The network as ONNX operators: each layer and activation written as the code computes it.

Each converter writes the forward pass of prediction mode (dropout off,
BatchNorm with its running statistics) with the operations, constants and
dtype of deltaprop's own code, so that onnxruntime's outputs agree with
:meth:`deltaprop.Network.predict` to rounding (``tests/test_export_onnx.py``
measures how closely). Where the runtime is weak the activation is built
from basic operators rather than left to its kernel:

- onnxruntime has no float64 kernel for ``Elu`` or ``Softplus``, and its
  tanh-``Gelu`` is off by about 6e-9 in float64;
- ONNX has no ``expm1`` and no ``log1p``, which ELU and softplus need near
  0. They are written in Kahan's form, exact to a few units in the last place:

  .. math::
      \mathrm{expm1}(x) = (u - 1)\,x / \log u,\ u = e^x \quad (x \text{ if } u = 1,\ -1 \text{ if } u - 1 = -1)

      \mathrm{log1p}(x) = \log(u)\,x / (u - 1),\ u = 1 + x \quad (x \text{ if } u = 1)

An Embedding reads its code columns with ``Cast`` to int64 and ``Gather``: a
code out of range stops the runtime with an error, but a code that is not a
whole number is truncated, where deltaprop refuses it. Through a data
contract (``TabularModel``) the codes come from the graph's own category
lookup and are always whole; feed a bare network's code columns whole.

A layer or activation with no converter here (a user's own) is refused with
an :class:`~deltaprop.errors.InvalidArgumentError` that names it: the file
would not predict what the model predicts. :func:`register_layer` adds a
converter for a user's layer class.
"""

import numpy as np

from .. import activations as acts
from ..blocks import Residual
from ..embedding import Embedding
from ..errors import InvalidArgumentError
from ..layers import Activation, Dense, Dropout
from ..norms import BatchNorm, LayerNorm

__all__ = ["network_graph", "register_layer", "LAYER_CONVERTERS", "ACTIVATION_CONVERTERS"]


def _expm1(g, x, dtype):
    u = g.op("Exp", x)
    um1 = g.op("Sub", u, g.const(1, "one", dtype))
    kahan = g.op("Div", g.op("Mul", um1, x), g.op("Log", u))
    minus_one = g.const(-1, "minus_one", dtype)  # u - 1 rounds to -1 (u tiny or subnormal, log u inexact): -1
    inner = g.op("Where", g.op("Equal", um1, minus_one), minus_one, kahan)
    return g.op("Where", g.op("Equal", u, g.const(1, "one", dtype)), x, inner, hint="expm1")


def _log1p(g, x, dtype):
    one = g.const(1, "one", dtype)
    u = g.op("Add", one, x)
    kahan = g.op("Div", g.op("Mul", g.op("Log", u), x), g.op("Sub", u, one))
    return g.op("Where", g.op("Equal", u, one), x, kahan, hint="log1p")


# ---------------------------------------------------------------- activations
def _identity(g, z, act, dtype):
    return z


def _relu(g, z, act, dtype):
    return g.op("Relu", z)


def _tanh(g, z, act, dtype):
    return g.op("Tanh", z)


def _sigmoid(g, z, act, dtype):
    # as Sigmoid.forward: e = exp(-|z|); σ = (z >= 0 ? 1 : e) / (1 + e), no overflow
    e = g.op("Exp", g.op("Neg", g.op("Abs", z)))
    num = g.op("Where", g.op("GreaterOrEqual", z, g.const(0, "zero", dtype)), g.const(1, "one", dtype), e)
    return g.op("Div", num, g.op("Add", e, g.const(1, "one", dtype)), hint="sigmoid")


def _leaky_relu(g, z, act, dtype):
    az = g.op("Mul", z, g.const(act.alpha, "alpha", dtype))
    return g.op("Max" if act.alpha <= 1 else "Min", z, az, hint="leaky_relu")


def _elu(g, z, act, dtype):
    neg = _expm1(g, g.op("Min", z, g.const(0, "zero", dtype)), dtype)
    neg = g.op("Mul", neg, g.const(act.alpha, "alpha", dtype))
    return g.op("Where", g.op("Greater", z, g.const(0, "zero", dtype)), z, neg, hint="elu")


def _gelu(g, z, act, dtype):
    # as GELU.forward: zc = clip(z, ±50); t = tanh(c (zc + k zc³)); σ = z · ½ (1 + t)
    zc = g.op("Min", g.op("Max", z, g.const(-50.0, "clip_low", dtype)), g.const(50.0, "clip_high", dtype))
    cube = g.op("Mul", g.op("Mul", g.op("Mul", g.const(acts._GELU_K, "gelu_k", dtype), zc), zc), zc)
    t = g.op("Tanh", g.op("Mul", g.const(acts._GELU_C, "gelu_c", dtype), g.op("Add", zc, cube)))
    t = g.op("Mul", g.op("Add", t, g.const(1, "one", dtype)), g.const(0.5, "half", dtype))
    return g.op("Mul", z, t, hint="gelu")


def _softplus(g, z, act, dtype):
    # as Softplus.forward: log1p(exp(-|z|)) + max(z, 0)
    tail = _log1p(g, g.op("Exp", g.op("Neg", g.op("Abs", z))), dtype)
    return g.op("Add", tail, g.op("Relu", z), hint="softplus")


def _softmax(g, z, act, dtype):
    # as Softmax.forward: subtract the row's largest value, exponentiate, divide by the row's sum
    e = g.op("Exp", g.op("Sub", z, g.reduce("ReduceMax", z, 1)))
    return g.op("Div", e, g.reduce("ReduceSum", e, 1), hint="softmax")


#: activation class -> converter ``(graph, z, activation, dtype) -> a``; only these classes, never a subclass
ACTIVATION_CONVERTERS = {
    acts.Identity: _identity, acts.ReLU: _relu, acts.Tanh: _tanh, acts.Sigmoid: _sigmoid,
    acts.LeakyReLU: _leaky_relu, acts.ELU: _elu, acts.GELU: _gelu, acts.Softplus: _softplus,
    acts.Softmax: _softmax,
}


def _activation(g, z, act, dtype, where):
    convert = ACTIVATION_CONVERTERS.get(type(act))
    if convert is None:
        name = getattr(act, "name", type(act).__name__)
        raise InvalidArgumentError(
            f"{where}: the activation {name!r} ({type(act).__name__}) has no exact ONNX form; deltaprop exports "
            f"its built-in activations ({', '.join(sorted(c.name for c in ACTIVATION_CONVERTERS))})"
        )
    return convert(g, z, act, dtype)


# ---------------------------------------------------------------- layers
def _dense(g, x, layer, dtype, where):
    # Z = A_prev Wᵀ (+ b), then σ; dropout is off at prediction time
    z = g.op("MatMul", x, g.const(np.ascontiguousarray(layer.W.T), "W_t"), hint="z")
    if layer.bias:
        z = g.op("Add", z, g.const(layer.b.copy(), "b"), hint="z")
    return _activation(g, z, layer.activation, dtype, where)


def _dropout(g, x, layer, dtype, where):
    return x


def _activation_layer(g, x, layer, dtype, where):
    return _activation(g, x, layer.activation, dtype, where)


def _layernorm(g, x, layer, dtype, where):
    # as LayerNorm.forward: x̂ = (x − mean) / sqrt(mean((x − mean)²) + ε); y = γ ⊙ x̂ + β
    xc = g.op("Sub", x, g.reduce("ReduceMean", x, 1))
    var = g.op("Div", g.reduce("ReduceSum", g.op("Mul", xc, xc), 1), g.const(layer.n_in, "width", dtype))
    inv_std = g.op("Div", g.const(1, "one", dtype), g.op("Sqrt", g.op("Add", var, g.const(layer.eps, "eps", dtype))))
    y = g.op("Mul", g.op("Mul", xc, inv_std), g.const(layer.gamma.copy(), "gamma"))
    return g.op("Add", y, g.const(layer.beta.copy(), "beta"), hint="layernorm")


def _batchnorm(g, x, layer, dtype, where):
    # prediction mode, as BatchNorm.forward: y = (x − μ̂) ⊙ (γ ⊙ 1/sqrt(σ̂² + ε)) + β, the factor computed as there
    inv_std = 1.0 / np.sqrt(layer.running_var + layer.eps)
    scale = layer.gamma * inv_std
    xc = g.op("Sub", x, g.const(layer.running_mean.copy(), "running_mean"))
    return g.op("Add", g.op("Mul", xc, g.const(scale, "bn_scale")), g.const(layer.beta.copy(), "beta"),
                hint="batchnorm")


def _embedding(g, x, layer, dtype, where):
    # the passthrough columns in input order, then each code column's row of its table
    parts = []
    if layer.passthrough:
        parts.append(g.op("Gather", x, g.const(np.asarray(layer.passthrough, dtype=np.int64), "passthrough"),
                          axis=1))
    for (index, _, _), table in zip(layer.columns, layer.tables):
        code = g.op("Cast", g.op("Gather", x, g.const(np.int64(index), "column"), axis=1), to=g.elem_type(np.int64))
        parts.append(g.op("Gather", g.const(table.copy(), "table"), code, axis=0, hint="embedded"))
    return parts[0] if len(parts) == 1 else g.op("Concat", *parts, axis=1, hint="embedding")


def _residual(g, x, layer, dtype, where):
    h = _layers(g, x, layer.layers, dtype, f"{where} (Residual)")
    return g.op("Add", x, h, hint="residual")


#: layer class -> converter ``(graph, x, layer, dtype, where) -> output``; only these classes, never a subclass
LAYER_CONVERTERS = {
    Dense: _dense, Dropout: _dropout, Activation: _activation_layer, LayerNorm: _layernorm,
    BatchNorm: _batchnorm, Embedding: _embedding, Residual: _residual,
}


def register_layer(cls, converter):
    """Export a user's layer class ``cls`` with ``converter(graph, x, layer, dtype, where) -> name``.

    The converter writes the layer's prediction-mode forward pass with the
    :class:`~deltaprop.export.graph.Graph` methods (``op``, ``const``,
    ``reduce``) and returns the name of its output. It is the user's promise
    that it computes what the layer computes: ``tests/test_export_onnx.py``
    shows how to check one.
    """
    if not isinstance(cls, type) or not callable(converter):
        raise InvalidArgumentError("register_layer takes a layer class and a callable converter")
    LAYER_CONVERTERS[cls] = converter


def _layers(g, x, layers, dtype, where):
    for j, layer in enumerate(layers):
        at = f"{where} layer {j}" if where else f"layer {j}"
        convert = LAYER_CONVERTERS.get(type(layer))
        if convert is None:
            raise InvalidArgumentError(
                f"{at} ({type(layer).__name__}) has no ONNX converter, so the file could not predict what the "
                f"model predicts; register one with deltaprop.export.register_layer({type(layer).__name__}, ...)"
            )
        x = convert(g, x, layer, dtype, at)
    return x


def network_graph(g, x, network):
    """Write ``network``'s prediction-mode forward pass from input value ``x`` (n, n_in) into graph ``g``.

    Returns the name of the output activations ``A^(L)``, shape (n, n_out), in the network's dtype.
    """
    return _layers(g, x, network.layers, network.dtype, "")
