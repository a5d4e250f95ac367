"""The fully connected layer.

Row form of the seed's equations for a batch of ``m`` samples (rows):

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

import numpy as np

from . import _kernels, activations, initializers
from .checks import check_number, check_positive_int

__all__ = ["Dense"]

#: what a layer holds for its network's flat store and its last pass, never for itself
_TRANSIENT = ("W", "b", "grad_W", "grad_b", "a_prev", "z", "a", "out", "mask", "_z", "_a", "_out", "_g_prev",
              "_capacity")


class Dense:
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

    Notes
    -----
    The layer keeps what its backward pass needs from the forward pass:
    ``a_prev``, ``z`` and ``a`` (and the dropout mask). Its workspaces are
    sized for the largest batch seen and reused; a shorter batch uses their
    first rows.
    """

    def __init__(self, n_in, n_out, activation="identity", initializer=None, dropout=0.0):
        self.n_in = check_positive_int(n_in, "n_in")
        self.n_out = check_positive_int(n_out, "n_out")
        self.activation = activations.get(activation)
        act_name = getattr(self.activation, "name", None)
        self.initializer = (
            initializers.default_for(act_name) if initializer is None else initializers.get(initializer)
        )
        self.dropout = check_number(dropout, "dropout", low=0.0, high=1.0, high_open=True)
        self.W = self.b = self.grad_W = self.grad_b = None
        self._capacity = 0
        self.a_prev = self.z = self.a = self.out = self.mask = None

    @property
    def n_params(self):
        return self.n_out * self.n_in + self.n_out

    def bind(self, params, grads):
        """Make ``W``, ``b``, ``grad_W``, ``grad_b`` views into flat arrays of ``n_params`` entries.

        The first ``n_out·n_in`` entries hold ``Wᵀ`` (shape ``(n_in, n_out)``)
        in C order, then ``b``.
        """
        k = self.n_out * self.n_in
        self.W = params[:k].reshape(self.n_in, self.n_out).T
        self.b = params[k:]
        self.grad_W = grads[:k].reshape(self.n_in, self.n_out).T
        self.grad_b = grads[k:]

    def initialize(self, rng):
        """Draw ``W`` from the initializer (using ``rng``) and set ``b`` to zero, in place."""
        self.W[...] = self.initializer((self.n_out, self.n_in), rng, self.W.dtype)
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
            z += self.b                                     # Z += b
            a = self.activation.forward(z, self._a[:m])     # A = σ(Z)
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
        return (type(self.activation) is activations.ReLU and x.dtype == self.b.dtype
                and x.dtype.char in "fd" and x.flags.c_contiguous)

    def backward_delta(self, delta, need_input_grad=True):
        """Given the layer's delta ``Δ = ∂L/∂Z`` (shape (m, n_out)), fill the gradients.

        ``grad_W = Δᵀ A_prev`` and ``grad_b = Σ_rows Δ`` (a sum over the
        batch: the 1/m of the mean loss is already inside Δ). Returns
        ``Δ @ W`` or None.
        """
        np.sum(delta, axis=0, out=self.grad_b)
        return self._backward_matmuls(delta, need_input_grad)

    def _backward_matmuls(self, delta, need_input_grad):
        """``grad_W = Δᵀ A_prev`` (computed as its transpose ``A_prevᵀ Δ``); returns ``Δ @ W`` (or None)."""
        if isinstance(self.a_prev, np.ndarray):
            np.matmul(self.a_prev.T, delta, out=self.grad_W.T)
        else:  # a OneHotMatrix or SparseRows input: a scatter of Δ's rows, or a sparse product
            self.a_prev.tmatmul_into(delta, self.grad_W.T)
        if not need_input_grad:
            return None
        return np.matmul(delta, self.W, out=self._g_prev[: delta.shape[0]])

    def detached(self):
        """A copy holding the configuration alone: no parameter views, no workspaces (what a network pickles)."""
        copy = object.__new__(type(self))
        copy.__dict__.update({k: v for k, v in self.__dict__.items() if k not in _TRANSIENT})
        copy.W = copy.b = copy.grad_W = copy.grad_b = None
        copy.a_prev = copy.z = copy.a = copy.out = copy.mask = None
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
        }

    def __repr__(self):
        extra = f", dropout={self.dropout}" if self.dropout else ""
        act = getattr(self.activation, "name", self.activation)
        return f"Dense({self.n_in}, {self.n_out}, activation={act!r}{extra})"
