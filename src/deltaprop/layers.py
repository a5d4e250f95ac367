"""The layer interface, and the layers that need nothing but it: Dense, Dropout and Activation.

Every layer keeps one contract (:class:`Layer`):

- ``build(n_in)`` fixes its input width and returns its output width (a
  network chains its layers this way; a layer given a width checks it);
- ``param_shapes()`` and ``buffer_shapes()`` name its trainable parameters
  and its non-trainable state (running statistics); ``bind`` makes them
  views into the network's flat ``params``, ``grads`` and ``buffers``;
- ``forward(a_prev, training, rng, need_input_grad)`` and
  ``backward(grad, need_input_grad)`` on batches (rows are samples).
  ``backward`` overwrites the parameter gradients (never accumulates), may
  overwrite ``grad`` itself, and returns ``∂L/∂a_prev`` (or None when
  ``need_input_grad`` is False);
- ``get_config()`` with a ``"type"`` key, and ``from_config``; a layer of
  your own is registered with :func:`register` under that type name, as an
  activation is.

Row form of the seed's equations for the fully connected layer and a batch of
``m`` samples (rows):

    Z = A_prev @ W.T + b            A = σ(Z)                  (forward)
    Δ = G ⊙ σ'(Z)                                              (G = ∂L/∂A)
    grad_W = Δ.T @ A_prev           grad_b = Δ.sum(axis=0)
    G_prev = Δ @ W                                             (skipped for the first layer)

``W`` has shape ``(n_out, n_in)``, so it is the seed's ``W^(l)`` itself. In
memory it is column-major: the network's flat store holds ``Wᵀ`` row by row,
so ``A_prev @ W.T`` and ``grad_W.T = A_prevᵀ Δ`` are plain and
transposed-left products, which OpenBLAS runs faster than the mirror forms
(measured by ``benchmarks/bench_layout.py``; ``benchmarks/results/layout.md``).

Speed: with a ReLU layer and numba installed (the ``fast`` extra), training
passes fuse the bias add with ReLU, and ReLU's backward mask with the bias
gradient, into one pass each (see :mod:`deltaprop._kernels`); the results are
bit-identical to the NumPy passes written out first in each method.
"""

import math

import numpy as np

from . import _kernels, activations, initializers
from .checks import check_number, check_positive_int
from .errors import InvalidArgumentError, InvalidTypeError, describe
from .registry import Registry

__all__ = ["Layer", "Dense", "Dropout", "Activation", "register", "lookup", "get", "from_config", "REGISTRY"]


class Layer:
    """Base class: the contract every layer keeps (see the module notes).

    A subclass sets ``n_in`` (or leaves it None, to take the previous
    layer's width), and defines ``forward``, ``backward`` and
    ``get_config``; it names its parameters in ``param_shapes`` (those in
    ``decayed`` get weight decay) and its running state in
    ``buffer_shapes``. The default ``bind`` sets an attribute per name
    (``gamma`` and ``grad_gamma``, ``running_mean``...).

    Attributes
    ----------
    n_in, n_out : int or None
        Input and output widths (None until :meth:`build`).
    """

    n_in = None
    n_out = None
    #: parameter names weight decay applies to (weights, not biases, scales or shifts)
    decayed = ()
    #: whether the layer reads its input as codes, so that it can only come first (Embedding)
    first_only = False
    #: the fewest rows a training batch may have (2 for a layer of batch statistics)
    min_batch_rows = 1
    #: names of attributes that belong to the last pass or to the flat store, never to the configuration
    _transient = ()

    # ---------------------------------------------------------------- shape
    def build(self, n_in):
        """Fix the input width (checking it against one given at construction); returns ``n_out``."""
        n_in = check_positive_int(n_in, "n_in")
        if self.n_in is not None and self.n_in != n_in:
            raise InvalidArgumentError(f"{self!r} expects {self.n_in} inputs but the previous layer gives {n_in}")
        self.n_in = n_in
        self.n_out = self.output_width(n_in)
        return self.n_out

    def output_width(self, n_in):
        """``n_out`` for an input width (the default keeps the width)."""
        return n_in

    def param_shapes(self):
        """``{name: shape}`` of the trainable parameters, in their order in the flat store."""
        return {}

    def buffer_shapes(self):
        """``{name: shape}`` of the non-trainable state (saved in files, never trained)."""
        return {}

    @property
    def n_params(self):
        return sum(math.prod(s) for s in self.param_shapes().values())

    @property
    def n_buffers(self):
        return sum(math.prod(s) for s in self.buffer_shapes().values())

    def decay_mask(self):
        """1 for each parameter entry that weight decay applies to, 0 elsewhere (flat-store order)."""
        parts = [np.full(math.prod(shape), float(name in self.decayed)) for name, shape in self.param_shapes().items()]
        return np.concatenate(parts) if parts else np.zeros(0)

    def flops_per_sample(self, first=False):
        """Floating-point operations of one training step per sample in the matrix products (0 for none)."""
        return 0

    # ----------------------------------------------------------- parameters
    def bind(self, params, grads, buffers):
        """Make each parameter (and ``grad_<name>``) and each buffer a view into the flat arrays given."""
        self.params_, self.grads_, self.buffers_ = {}, {}, {}
        at = 0
        for name, shape in self.param_shapes().items():
            k = math.prod(shape)
            self.params_[name] = params[at:at + k].reshape(shape)
            self.grads_[name] = grads[at:at + k].reshape(shape)
            at += k
        at = 0
        for name, shape in self.buffer_shapes().items():
            k = math.prod(shape)
            self.buffers_[name] = buffers[at:at + k].reshape(shape)
            at += k
        for name in self.params_:
            if name.isidentifier():
                setattr(self, name, self.params_[name])
                setattr(self, "grad_" + name, self.grads_[name])
        for name, view in self.buffers_.items():
            if name.isidentifier():
                setattr(self, name, view)

    def initialize(self, rng):
        """Set the parameters' and buffers' initial values in place (``rng`` for random ones)."""

    def tensors(self):
        """``{name: view}`` of the parameters and buffers, as model files name them (after the layer's prefix)."""
        return {**self.params_, **self.buffers_}

    def state_problem(self):
        """What is wrong with the buffers' values, as a phrase (None when nothing is): checked when a file is loaded."""
        return None

    def set_batch_reduce(self, reduce):
        """Receive the function that sums an array over the processes of a data-parallel run (or None)."""

    # ------------------------------------------------------------- passes
    def forward(self, a_prev, training=False, rng=None, need_input_grad=True):
        raise NotImplementedError

    def backward(self, grad, need_input_grad=True):
        raise NotImplementedError

    def _workspace(self, key, m, n, dtype):
        """A reused ``(m, n)`` buffer (the first ``m`` rows of one sized for the largest batch seen)."""
        spaces = self.__dict__.setdefault("_spaces", {})
        ws = spaces.get(key)
        if ws is None or ws.shape[0] < m or ws.shape[1] != n or ws.dtype != dtype:
            rows = m if ws is None or ws.dtype != dtype or ws.shape[1] != n else max(m, ws.shape[0])
            ws = spaces[key] = np.empty((rows, n), dtype=dtype)
        return ws[:m]

    # -------------------------------------------------------------- config
    def get_config(self):
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        """Build the layer from :meth:`get_config`'s output (without its ``"type"``)."""
        return cls(**{k: v for k, v in config.items() if k != "type"})

    def detached(self):
        """A copy holding the configuration alone: no parameter views, no workspaces (what a network pickles)."""
        skip = set(self._transient) | {"params_", "grads_", "buffers_", "_spaces"}
        skip |= {n for n in self.param_shapes()} | {"grad_" + n for n in self.param_shapes()}
        skip |= set(self.buffer_shapes())
        copy = object.__new__(type(self))
        copy.__dict__.update({k: v for k, v in self.__dict__.items() if k not in skip})
        return copy

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "type")
        return f"{type(self).__name__}({args})"


class Dense(Layer):
    r"""Fully connected layer: ``a = σ(W a_prev + b)``, batched as ``A = σ(A_prev Wᵀ + b)``.

    Parameters
    ----------
    n_in : int
        Number of inputs (units of the previous layer, or features).
    n_out : int
        Number of units.
    activation : str, dict, Activation or None, default "identity"
        σ, resolved by :func:`deltaprop.activations.get`.
    initializer : str or callable, optional
        Scheme for ``W`` (biases start at zero). Default: He uniform for the
        ReLU family, Glorot uniform otherwise.
    dropout : float, default 0.0
        Probability of zeroing each output unit while training (inverted
        dropout: kept units are scaled by ``1 / (1 - dropout)``, so nothing
        changes at prediction time, where dropout is off).
    bias : bool, default True
        False for ``Z = A_prev Wᵀ`` alone: what comes before a BatchNorm,
        which subtracts any constant shift, so that a bias there would have a
        gradient of exactly zero in exact arithmetic and of rounding noise in
        floating point (which Adam would amplify into a random walk).

    Attributes
    ----------
    W : ndarray of shape (n_out, n_in)
        View into the network's flat ``params`` (column-major: ``W.T`` is
        C-contiguous).
    b : ndarray of shape (n_out,)
        View into ``params``.
    grad_W, grad_b : ndarray
        Views into the network's flat ``grads``, same shapes, overwritten by
        each backward pass (never accumulated).
    delta : ndarray of shape (m, n_out) or None
        The last backward pass's ``Δ = ∂L/∂Z`` (the 1/m of the mean loss
        folded in): a reference to the buffer backward computed it in, no
        copy, valid until the next backward pass (None before the first).

    Notes
    -----
    The layer keeps what its backward pass needs from the forward pass:
    ``a_prev``, ``z`` and ``a`` (and the dropout mask). Its workspaces are
    sized for the largest batch seen and reused; a shorter batch uses their
    first rows.
    """

    def __init__(self, n_in, n_out, activation="identity", initializer=None, dropout=0.0, bias=True):
        self.n_in = check_positive_int(n_in, "n_in")
        self.n_out = check_positive_int(n_out, "n_out")
        self.activation = activations.get(activation)
        act_name = getattr(self.activation, "name", None)
        self.initializer = (
            initializers.default_for(act_name) if initializer is None else initializers.get(initializer)
        )
        self.dropout = check_number(dropout, "dropout", low=0.0, high=1.0, high_open=True)
        if not isinstance(bias, (bool, np.bool_)):
            raise InvalidTypeError(f"bias must be True or False, got {describe(bias)}")
        self.bias = bool(bias)
        self.W = self.b = self.grad_W = self.grad_b = None
        self._capacity = 0
        self.a_prev = self.z = self.a = self.out = self.mask = self.delta = None

    decayed = ("W",)
    _transient = ("W", "b", "grad_W", "grad_b", "a_prev", "z", "a", "out", "mask", "delta", "_z", "_a", "_out",
                  "_g_prev", "_capacity")

    def output_width(self, n_in):
        return self.n_out

    def param_shapes(self):
        return {"W": (self.n_out, self.n_in), "b": (self.n_out,)} if self.bias else {"W": (self.n_out, self.n_in)}

    def flops_per_sample(self, first=False):
        """``2 n_in n_out`` each for ``Z``, ``grad_W`` and (unless first) the input delta."""
        return (4 if first else 6) * self.n_in * self.n_out

    def bind(self, params, grads, buffers=None):
        """Make ``W``, ``b``, ``grad_W``, ``grad_b`` views into flat arrays of ``n_params`` entries.

        The first ``n_out·n_in`` entries hold ``Wᵀ`` (shape ``(n_in, n_out)``)
        in C order, then ``b``.
        """
        k = self.n_out * self.n_in
        self.W = params[:k].reshape(self.n_in, self.n_out).T
        self.grad_W = grads[:k].reshape(self.n_in, self.n_out).T
        self.params_, self.grads_, self.buffers_ = {"W": self.W}, {"W": self.grad_W}, {}
        if self.bias:
            self.b, self.grad_b = params[k:], grads[k:]
            self.params_["b"], self.grads_["b"] = self.b, self.grad_b

    def initialize(self, rng):
        """Draw ``W`` from the initializer (using ``rng``) and set ``b`` to zero, in place."""
        self.W[...] = self.initializer((self.n_out, self.n_in), rng, self.W.dtype)
        if self.bias:
            self.b[...] = 0

    def _ensure_workspace(self, m, dtype, need_input_grad):
        if (self._z is not None and m <= self._capacity and self._z.dtype == dtype
                and (self._g_prev is not None or not need_input_grad)
                and (self._out is not None or not self.dropout)):
            return
        cap = max(m, self._capacity if self._z is not None and self._z.dtype == dtype else 0)
        self._z = np.empty((cap, self.n_out), dtype=dtype)
        identity = isinstance(self.activation, activations.Identity)
        # The identity's output is Z itself: no second buffer, no copy.
        self._a = self._z if identity else np.empty((cap, self.n_out), dtype=dtype)
        self._out = np.empty((cap, self.n_out), dtype=dtype) if self.dropout else None
        self._g_prev = np.empty((cap, self.n_in), dtype=dtype) if need_input_grad else None
        self._capacity = cap

    _z = _a = _out = _g_prev = None

    def forward(self, a_prev, training=False, rng=None, need_input_grad=True):
        """Compute the layer's output for a batch.

        Parameters
        ----------
        a_prev : ndarray of shape (m, n_in), or a matrix of :mod:`deltaprop.sparse`
            Previous layer's output (C-contiguous, the network's dtype); a
            first layer also takes a ``OneHotMatrix`` or ``SparseRows`` in the
            network's dtype, whose ``matmul_into``/``tmatmul_into`` compute
            ``A_prev Wᵀ`` and ``A_prevᵀ Δ`` without its zeros.
        training : bool
            Apply dropout (drawing the mask from ``rng``).
        rng : numpy.random.Generator (or anything with ``random(shape, dtype)``)
            Needed when ``training`` and ``dropout > 0``.
        need_input_grad : bool
            Whether a later backward pass must return ``∂L/∂a_prev`` (False
            for the first layer: the input's delta is never needed).

        Returns
        -------
        ndarray of shape (m, n_out)
            A view of the layer's workspace, valid until its next forward.
        """
        m = a_prev.shape[0]
        self._ensure_workspace(m, a_prev.dtype, need_input_grad)
        z = self._z[:m]
        if isinstance(a_prev, np.ndarray):
            np.matmul(a_prev, self.W.T, out=z)              # Z = A_prev Wᵀ
        else:  # a OneHotMatrix or SparseRows input (deltaprop.sparse): the same product without its zeros
            a_prev.matmul_into(self.W.T, z)
        kernels = _kernels.peek() if training and self._fusable(z) else None
        if kernels is None:
            if self.bias:
                z += self.b                                 # Z += b
            # A = σ(Z); the identity's A is Z itself (its workspace is Z's), so nothing to copy
            a = z if self._a is self._z else self.activation.forward(z, self._a[:m])
        else:  # fast path (bit-identical, tests/test_speed_paths.py): z += b; a = max(z, 0) in one pass
            a = self._a[:m]
            kernels.bias_relu(z, self.b, a)
        self.a_prev, self.z, self.a = a_prev, z, a
        if training and self.dropout:
            keep = 1.0 - self.dropout
            mask = rng.random((m, self.n_out), dtype=a.dtype) < keep
            self.mask = mask.astype(a.dtype)
            self.mask *= 1.0 / keep
            self.out = np.multiply(a, self.mask, out=self._out[:m])
        else:
            self.mask = None
            self.out = a
        return self.out

    def backward(self, grad, need_input_grad=True):
        """Backpropagate ``grad = ∂L/∂out`` (shape (m, n_out)); fills ``grad_W``, ``grad_b``.

        ``grad`` is overwritten with the layer's delta ``Δ = grad ⊙ σ'(Z)``.
        Returns ``∂L/∂a_prev = Δ @ W`` (a workspace view), or None when
        ``need_input_grad`` is False.
        """
        if self.mask is not None:
            grad *= self.mask                               # dropout's mask (and 1/keep) on the way back
        fusable = self._fusable(grad) and self._fusable(self.z) and grad.shape == self.z.shape
        kernels = _kernels.peek() if fusable else None
        if kernels is None:
            delta = self.activation.backward(self.z, self.a, grad, grad)   # Δ = G ⊙ σ'(Z)
            return self.backward_delta(delta, need_input_grad)
        # fast path (bit-identical): Δ = grad ⊙ [z > 0] and grad_b = Σ_rows Δ in one pass; then the products
        kernels.relu_backward_bias(grad, self.z, self.grad_b)
        return self._backward_matmuls(grad, need_input_grad)

    def _fusable(self, x):
        """Whether the fused ReLU kernels apply to workspace ``x`` (C-ordered, the parameters' dtype)."""
        return (self.bias and type(self.activation) is activations.ReLU and x.dtype == self.b.dtype
                and x.dtype.char in "fd" and x.flags.c_contiguous)

    def backward_delta(self, delta, need_input_grad=True):
        """Given the layer's delta ``Δ = ∂L/∂Z`` (shape (m, n_out)), fill the gradients.

        ``grad_W = Δᵀ A_prev`` and ``grad_b = Σ_rows Δ`` (a sum over the
        batch: the 1/m of the mean loss is already inside Δ). Returns
        ``Δ @ W`` or None.
        """
        if self.bias:
            np.sum(delta, axis=0, out=self.grad_b)
        return self._backward_matmuls(delta, need_input_grad)

    def _backward_matmuls(self, delta, need_input_grad):
        """``grad_W = Δᵀ A_prev`` (computed as its transpose ``A_prevᵀ Δ``); returns ``Δ @ W`` (or None)."""
        self.delta = delta  # kept for inspection (deltaprop.inspector): a reference, valid until the next backward
        if isinstance(self.a_prev, np.ndarray):
            np.matmul(self.a_prev.T, delta, out=self.grad_W.T)
        else:  # a OneHotMatrix or SparseRows input: a scatter of Δ's rows, or a sparse product
            self.a_prev.tmatmul_into(delta, self.grad_W.T)
        if not need_input_grad:
            return None
        return np.matmul(delta, self.W, out=self._g_prev[: delta.shape[0]])

    def detached(self):
        copy = super().detached()
        copy.W = copy.b = copy.grad_W = copy.grad_b = None
        copy.a_prev = copy.z = copy.a = copy.out = copy.mask = copy.delta = None
        copy._capacity = 0
        return copy

    def get_config(self):
        act = self.activation
        return {
            "type": "Dense",
            "n_in": self.n_in,
            "n_out": self.n_out,
            "activation": act.get_config() if hasattr(act, "get_config") else {"name": getattr(act, "name", repr(act))},
            "initializer": getattr(self.initializer, "name", None),
            "dropout": self.dropout,
            **({} if self.bias else {"bias": False}),  # absent: a bias (the files of earlier versions)
        }

    def __repr__(self):
        extra = (f", dropout={self.dropout}" if self.dropout else "") + ("" if self.bias else ", bias=False")
        act = getattr(self.activation, "name", self.activation)
        return f"Dense({self.n_in}, {self.n_out}, activation={act!r}{extra})"


class Dropout(Layer):
    r"""Inverted dropout: ``a = a_prev ⊙ M / (1 - p)`` while training, ``a = a_prev`` otherwise.

    ``M`` has entries 1 with probability ``1 - p`` (drawn from the run's
    generator), so the expected output equals the input and nothing changes
    at prediction time. Backward: ``∂L/∂a_prev = G ⊙ M / (1 - p)``.

    ``[Dense(n_in, n_out, σ), Dropout(p)]`` draws the same masks as
    ``Dense(n_in, n_out, σ, dropout=p)`` and trains bit-identically.

    Parameters
    ----------
    p : float in [0, 1)
        Probability of zeroing each unit.
    n_in : int, optional
        The width, checked against the previous layer's (default: taken from it).
    """

    _transient = ("mask",)
    mask = None

    def __init__(self, p=0.5, n_in=None):
        self.p = check_number(p, "p", low=0.0, high=1.0, high_open=True)
        self.n_in = None if n_in is None else check_positive_int(n_in, "n_in")
        self.mask = None

    def forward(self, a_prev, training=False, rng=None, need_input_grad=True):
        """``(m, n)`` → ``(m, n)``; the mask is drawn only when ``training`` and ``p > 0``."""
        if not (training and self.p):
            self.mask = None
            return a_prev
        m = a_prev.shape[0]
        keep = 1.0 - self.p
        mask = rng.random((m, self.n_out), dtype=a_prev.dtype) < keep
        self.mask = mask.astype(a_prev.dtype)
        self.mask *= 1.0 / keep
        return np.multiply(a_prev, self.mask, out=self._workspace("out", m, self.n_out, a_prev.dtype))

    def backward(self, grad, need_input_grad=True):
        if not need_input_grad:
            return None
        if self.mask is not None:
            grad *= self.mask
        return grad

    def get_config(self):
        return {"type": "Dropout", "n_in": self.n_in, "p": self.p}


class Activation(Layer):
    r"""An activation on its own: ``a = σ(a_prev)``; backward ``∂L/∂a_prev = G ⊙ σ'(a_prev)``.

    What follows a normalisation (``Dense → BatchNorm → Activation``), where
    σ cannot sit inside the Dense layer. Softmax works too: its backward is
    the Jacobian-vector product of :class:`deltaprop.activations.Softmax`.

    Parameters
    ----------
    activation : str, dict or Activation
        σ, resolved by :func:`deltaprop.activations.get`.
    """

    _transient = ("z", "a")
    z = a = None

    def __init__(self, activation="relu", n_in=None):
        self.activation = activations.get(activation)
        self.n_in = None if n_in is None else check_positive_int(n_in, "n_in")
        self.z = self.a = None

    def forward(self, a_prev, training=False, rng=None, need_input_grad=True):
        m = a_prev.shape[0]
        self.z = a_prev
        self.a = self.activation.forward(a_prev, self._workspace("a", m, self.n_out, a_prev.dtype))
        return self.a

    def backward(self, grad, need_input_grad=True):
        if not need_input_grad:
            return None
        return self.activation.backward(self.z, self.a, grad, grad)   # G ⊙ σ'(Z), in place

    def get_config(self):
        act = self.activation
        return {"type": "Activation", "n_in": self.n_in,
                "activation": act.get_config() if hasattr(act, "get_config")
                else {"name": getattr(act, "name", repr(act))}}

    def __repr__(self):
        return f"Activation({getattr(self.activation, 'name', self.activation)!r})"


#: type name -> layer class (the built-in layers of other modules register themselves on import)
REGISTRY = {"dense": Dense, "dropout": Dropout, "activation": Activation}
_REGISTRY = Registry("layer", REGISTRY, base=Layer, methods=("forward", "backward", "get_config"),
                     hint="; register your own with deltaprop.layers.register(name, cls)")


def lookup(name):
    """The layer class registered under ``name`` (UnknownNameError, listing the names, when there is none)."""
    return _REGISTRY.lookup(name)


def register(name, cls):
    """Register a layer class under ``name`` (its ``get_config()["type"]``), so model files that name it load."""
    return _REGISTRY.register(name, cls)


def from_config(config):
    """Build a layer (not yet bound) from its ``get_config()`` output: ``{"type": ..., **arguments}``."""
    if not isinstance(config, dict):
        raise InvalidTypeError(f"a layer config must be a dict with a 'type', got {describe(config)}")
    name = config.get("type", "Dense")
    if not isinstance(name, str):
        raise InvalidArgumentError(f"a layer config's 'type' must be a string, got {describe(name)}")
    cls = _REGISTRY.lookup(name)
    try:
        return cls.from_config({k: v for k, v in config.items() if k != "type"})
    except TypeError as exc:
        raise InvalidArgumentError(f"bad parameters for layer {name!r}: {exc}") from None


def get(spec):
    """A layer object from a layer, a config dict or a registered class (instantiated with no arguments)."""
    if isinstance(spec, dict):
        return from_config(spec)
    return _REGISTRY.resolve(spec)
