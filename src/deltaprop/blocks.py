r"""Residual blocks: ``y = x + F(x)``, where ``F`` is a sequence of layers that keeps the width.

Forward and backward, with ``G = ∂L/∂y``:

    y = x + F(x)
    ∂L/∂x = G + J_F(x)ᵀ G

The gradient splits at the sum: one copy goes back through ``F``'s layers
(filling their parameter gradients on the way), the other skips them, and
the two are added where they meet at ``x``.

The tabular ResNet of Gorishniy et al. (2021) is a stack of blocks
``F = norm → Dense(d, d, ReLU, dropout) → Dense(d, d) → Dropout``
(:meth:`deltaprop.network.FeedForward.from_sizes` with ``residual=True``).
"""

import numpy as np

from .checks import check_positive_int
from .errors import InvalidArgumentError, InvalidTypeError, describe
from .layers import Layer, from_config, register

__all__ = ["Residual"]


class Residual(Layer):
    r"""A block ``y = x + F(x)`` around a sequence of layers ``F`` whose output width is its input width.

    Parameters
    ----------
    layers : sequence of Layer (or their configs)
        ``F``'s layers in order; any kind but an Embedding, blocks included.
    n_in : int, optional
        The width (default: the previous layer's).

    Notes
    -----
    The block's parameters and buffers are its layers', in order, in the
    network's flat store; files name them ``layers.{j}.{name}`` after the
    block's own prefix. Dropout and batch statistics inside ``F`` behave as
    they do anywhere else.
    """

    _transient = ("_spaces",)

    def __init__(self, layers, n_in=None):
        if isinstance(layers, Layer):
            layers = [layers]
        if not isinstance(layers, (list, tuple)) or not layers:
            raise InvalidArgumentError(f"Residual needs a non-empty list of layers, got {describe(layers)}")
        built = []
        for j, layer in enumerate(layers):
            layer = from_config(layer) if isinstance(layer, dict) else layer
            if not isinstance(layer, Layer):
                raise InvalidTypeError(f"Residual layers[{j}] must be a layer, got {describe(layer)}")
            if layer.first_only:
                raise InvalidArgumentError(f"Residual layers[{j}] is {layer!r}, which can only be a network's "
                                           f"first layer")
            built.append(layer)
        self.layers = built
        self.n_in = None if n_in is None else check_positive_int(n_in, "n_in")

    def output_width(self, n_in):
        width = n_in
        for layer in self.layers:
            width = layer.build(width)
        if width != n_in:
            raise InvalidArgumentError(f"a Residual block must keep its width: it takes {n_in} and its layers "
                                       f"give {width}")
        return n_in

    def param_shapes(self):
        return {f"layers.{j}.{name}": shape for j, layer in enumerate(self.layers)
                for name, shape in layer.param_shapes().items()}

    def buffer_shapes(self):
        return {f"layers.{j}.{name}": shape for j, layer in enumerate(self.layers)
                for name, shape in layer.buffer_shapes().items()}

    @property
    def min_batch_rows(self):
        return max(layer.min_batch_rows for layer in self.layers)

    def decay_mask(self):
        return np.concatenate([layer.decay_mask() for layer in self.layers])

    def flops_per_sample(self, first=False):
        return sum(layer.flops_per_sample(first and j == 0) for j, layer in enumerate(self.layers))

    def bind(self, params, grads, buffers):
        p = b = 0
        for layer in self.layers:
            k, kb = layer.n_params, layer.n_buffers
            layer.bind(params[p:p + k], grads[p:p + k], buffers[b:b + kb])
            p, b = p + k, b + kb

    def initialize(self, rng):
        for layer in self.layers:
            layer.initialize(rng)

    def tensors(self):
        return {f"layers.{j}.{name}": view for j, layer in enumerate(self.layers)
                for name, view in layer.tensors().items()}

    def state_problem(self):
        for j, layer in enumerate(self.layers):
            problem = layer.state_problem()
            if problem:
                return f"layers.{j}: {problem}"
        return None

    def set_batch_reduce(self, reduce):
        for layer in self.layers:
            layer.set_batch_reduce(reduce)

    def forward(self, a_prev, training=False, rng=None, need_input_grad=True):
        """``y = x + F(x)``, shape (m, n) → (m, n)."""
        h = a_prev
        for j, layer in enumerate(self.layers):
            h = layer.forward(h, training=training, rng=rng, need_input_grad=need_input_grad or j > 0)
        return np.add(a_prev, h, out=self._workspace("out", a_prev.shape[0], self.n_out, h.dtype))

    def backward(self, grad, need_input_grad=True):
        """``∂L/∂x = G + J_F(x)ᵀ G``; fills the parameter gradients of ``F``'s layers."""
        g = self._workspace("g", grad.shape[0], self.n_out, grad.dtype)
        np.copyto(g, grad)                      # F's layers may overwrite what they are given; keep G for the skip
        for j in range(len(self.layers) - 1, -1, -1):
            g = self.layers[j].backward(g, need_input_grad=need_input_grad or j > 0)
        if not need_input_grad:
            return None
        g += grad                               # the skip's share: ∂L/∂x = J_F(x)ᵀ G + G
        return g

    def get_config(self):
        return {"type": "Residual", "n_in": self.n_in, "layers": [layer.get_config() for layer in self.layers]}

    @classmethod
    def from_config(cls, config):
        rest = {k: v for k, v in config.items() if k != "layers"}
        return cls(config.get("layers", []), **rest)

    def detached(self):
        copy = super().detached()
        copy.layers = [layer.detached() for layer in self.layers]
        return copy

    def __repr__(self):
        return f"Residual([{', '.join(repr(layer) for layer in self.layers)}])"


register("residual", Residual)
