r"""Normalisation layers: LayerNorm over each row's features, BatchNorm over the batch's rows.

Both standardise, then scale and shift with learned ``γ`` and ``β``
(shape ``(n,)``, starting at 1 and 0, never weight-decayed):

    x̂ = (x − μ) / sqrt(σ² + ε)          y = γ ⊙ x̂ + β

LayerNorm takes ``μ`` and ``σ²`` over each row's ``n`` features; BatchNorm
over the batch's ``M`` rows, for each feature (while training; at
prediction time it uses running averages of them, its non-trainable state).

Backward, with ``G = ∂L/∂y`` (the 1/m of the mean loss already inside it)
and ``Ĝ = G ⊙ γ``, the chain rule through ``μ`` and ``σ²`` gives

    ∂L/∂γ = Σ_rows G ⊙ x̂                ∂L/∂β = Σ_rows G
    ∂L/∂x = (Ĝ − mean(Ĝ) − x̂ ⊙ mean(Ĝ ⊙ x̂)) / sqrt(σ² + ε)

where ``mean`` is over the same axis as ``μ`` (features for LayerNorm, rows
for BatchNorm). The last line is the whole derivation: ``x̂`` depends on
``x`` directly, through ``μ`` (the ``−mean(Ĝ)`` term) and through ``σ²``
(the ``x̂ ⊙ mean(Ĝ ⊙ x̂)`` term).

Under data parallelism (MPI) BatchNorm's batch is the global one: the sums
behind ``μ``, ``σ²``, ``mean(Ĝ)`` and ``mean(Ĝ ⊙ x̂)`` are reduced over the
processes (three small all-reduces per layer and step), so N processes train
the model one process trains, as they do for Dense layers.
"""

import numpy as np

from .checks import check_number, check_positive_int
from .errors import DataError
from .layers import Layer, register

__all__ = ["LayerNorm", "BatchNorm"]


class _Norm(Layer):
    """What both norms share: ``γ``, ``β`` and the affine output ``y = γ ⊙ x̂ + β``."""

    _transient = ("xhat", "inv_std", "reduce", "count")
    xhat = inv_std = reduce = count = None

    def __init__(self, n_in=None, eps=1e-5):
        self.n_in = None if n_in is None else check_positive_int(n_in, "n_in")
        self.eps = check_number(eps, "eps", low=0.0, low_open=True)
        self.xhat = self.inv_std = None
        self.reduce = None

    def param_shapes(self):
        return {"gamma": (self.n_in,), "beta": (self.n_in,)}

    def initialize(self, rng):
        self.gamma[...] = 1
        self.beta[...] = 0

    def _affine(self, xhat):
        """``y = γ ⊙ x̂ + β`` into the output workspace."""
        out = self._workspace("out", xhat.shape[0], self.n_out, xhat.dtype)
        np.multiply(xhat, self.gamma, out=out)
        out += self.beta
        return out

    def _param_grads(self, grad):
        """``∂L/∂γ = Σ_rows G ⊙ x̂`` and ``∂L/∂β = Σ_rows G`` (this process's rows)."""
        np.sum(grad, axis=0, out=self.grad_beta)
        gx = self._workspace("gx", grad.shape[0], self.n_in, grad.dtype)
        np.multiply(grad, self.xhat, out=gx)
        np.sum(gx, axis=0, out=self.grad_gamma)

    def get_config(self):
        return {"type": type(self).__name__, "n_in": self.n_in, "eps": self.eps}


class LayerNorm(_Norm):
    r"""Layer normalisation (Ba et al., 2016): each row standardised over its features, then ``γ ⊙ x̂ + β``.

    .. math::
        μ_i = \frac{1}{n} Σ_j x_{ij},\quad σ_i^2 = \frac{1}{n} Σ_j (x_{ij} − μ_i)^2,\quad
        y_{ij} = γ_j \frac{x_{ij} − μ_i}{\sqrt{σ_i^2 + ε}} + β_j

    Rows are independent, so training and prediction compute the same thing.
    Backward: see the module notes, with means over each row's features.

    Parameters
    ----------
    n_in : int, optional
        The width ``n`` (default: the previous layer's).
    eps : float, default 1e-5
        ``ε``, added to the variance (PyTorch's default).

    Attributes
    ----------
    gamma, beta : ndarray of shape (n,)
        Views into the network's flat ``params``; ``grad_gamma``, ``grad_beta`` into ``grads``.
    """

    def forward(self, a_prev, training=False, rng=None, need_input_grad=True):
        """``(m, n)`` → ``(m, n)``; keeps ``x̂`` and ``1/sqrt(σ² + ε)`` for the backward pass."""
        m, n = a_prev.shape
        xhat = self._workspace("xhat", m, n, a_prev.dtype)
        np.subtract(a_prev, a_prev.mean(axis=1, keepdims=True), out=xhat)          # x − μ
        var = np.einsum("ij,ij->i", xhat, xhat)[:, None] / n                      # σ² (mean over features)
        self.inv_std = 1.0 / np.sqrt(var + self.eps)
        xhat *= self.inv_std                                                      # x̂
        self.xhat = xhat
        return self._affine(xhat)

    def backward(self, grad, need_input_grad=True):
        """``grad = ∂L/∂y`` (m, n) → ``∂L/∂x`` (in ``grad``'s memory); fills ``grad_gamma``, ``grad_beta``."""
        self._param_grads(grad)
        if not need_input_grad:
            return None
        grad *= self.gamma                                                        # Ĝ = G ⊙ γ
        mean_g = grad.mean(axis=1, keepdims=True)                                 # mean(Ĝ)
        mean_gx = np.einsum("ij,ij->i", grad, self.xhat)[:, None] / self.n_in     # mean(Ĝ ⊙ x̂)
        grad -= mean_g
        grad -= self.xhat * mean_gx
        grad *= self.inv_std                                                      # ÷ sqrt(σ² + ε)
        return grad


class BatchNorm(_Norm):
    r"""Batch normalisation (Ioffe and Szegedy, 2015): each feature standardised over the batch's rows.

    While training, with the batch's ``M`` rows (over all processes of a
    data-parallel run):

    .. math::
        μ = \frac{1}{M} Σ_i x_i,\quad σ^2 = \frac{1}{M} Σ_i (x_i − μ)^2,\quad
        y_i = γ ⊙ \frac{x_i − μ}{\sqrt{σ^2 + ε}} + β

    and the running statistics move towards the batch's (PyTorch's
    convention: ``momentum`` is the weight of the new value, and the running
    variance takes the unbiased ``σ² M / (M − 1)``):

    .. math::
        \hat μ ← (1 − \text{momentum}) \hat μ + \text{momentum}\, μ,\quad
        \hat σ^2 ← (1 − \text{momentum}) \hat σ^2 + \text{momentum}\, σ^2 \frac{M}{M − 1}

    At prediction (``training=False``) ``y = γ ⊙ (x − \hat μ) / sqrt(\hat σ^2 + ε) + β``,
    an affine map whose backward is ``∂L/∂x = G ⊙ γ / sqrt(\hat σ^2 + ε)``.
    The training backward is the module notes' formula with means over rows.

    Parameters
    ----------
    n_in : int, optional
        The number of features ``n`` (default: the previous layer's width).
    momentum : float in (0, 1], default 0.1
        Weight of the batch's statistics in the running averages.
    eps : float, default 1e-5

    Attributes
    ----------
    gamma, beta : ndarray of shape (n,)
        Trainable, views into ``params``.
    running_mean, running_var : ndarray of shape (n,)
        Non-trainable, views into the network's flat ``buffers`` (saved in
        model files and checkpoints; start at 0 and 1).
    """

    min_batch_rows = 2
    _transient = _Norm._transient + ("xc",)
    xc = None

    def __init__(self, n_in=None, momentum=0.1, eps=1e-5):
        super().__init__(n_in, eps)
        self.momentum = check_number(momentum, "momentum", low=0.0, high=1.0, low_open=True)
        self.count = None

    def buffer_shapes(self):
        return {"running_mean": (self.n_in,), "running_var": (self.n_in,)}

    def initialize(self, rng):
        super().initialize(rng)
        self.running_mean[...] = 0
        self.running_var[...] = 1

    def set_batch_reduce(self, reduce):
        self.reduce = reduce

    def state_problem(self):
        for name in ("running_mean", "running_var"):
            values = getattr(self, name)
            bad = np.flatnonzero(~np.isfinite(values))
            if bad.size:
                return f"{name}[{bad[0]}] is {float(values[bad[0]])!r}; running statistics are finite"
        bad = np.flatnonzero(self.running_var < 0)
        if bad.size:
            return f"running_var[{bad[0]}] is {float(self.running_var[bad[0]])!r}; a variance is never negative"
        return None

    def _sum_rows(self, x, extra=None):
        """``Σ_rows x`` over the global batch (``extra`` appended to the same all-reduce)."""
        local = x.sum(axis=0)
        if self.reduce is None:
            return local if extra is None else (local, extra)
        buf = np.append(local, np.asarray(extra, dtype=local.dtype)) if extra is not None else local
        self.reduce(buf)
        return buf if extra is None else (buf[:-1], buf[-1])

    def forward(self, a_prev, training=False, rng=None, need_input_grad=True):
        """``(m, n)`` → ``(m, n)``: batch statistics while ``training``, running ones otherwise.

        Keeps ``x − μ`` and ``1/sqrt(σ² + ε)`` (``x̂`` is their product, never
        stored), and writes ``y = (x − μ) ⊙ (γ / sqrt(σ² + ε)) + β`` in two passes.
        """
        m, n = a_prev.shape
        xc = self._workspace("xc", m, n, a_prev.dtype)
        if not training:
            self.count = None
            np.subtract(a_prev, self.running_mean, out=xc)                        # x − μ̂
            self.inv_std = 1.0 / np.sqrt(self.running_var + self.eps)
            self.xc = xc
            return self._scaled(xc)
        total, count = self._sum_rows(a_prev, float(m))                           # Σ_rows x, M
        count = float(count)
        if count < self.min_batch_rows:
            raise DataError(f"BatchNorm needs at least 2 rows in a training batch to estimate a variance, "
                            f"got a batch of {int(count)}; choose a batch size that leaves no batch of 1 row "
                            f"(the last batch of an epoch included), or use LayerNorm")
        mean = total / count                                                      # μ
        np.subtract(a_prev, mean, out=xc)                                         # x − μ
        var = self._sum_squares(xc) / count                                       # σ²
        self.inv_std = 1.0 / np.sqrt(var + self.eps)
        self.xc, self.count = xc, count
        mom = self.momentum
        self.running_mean *= 1 - mom
        self.running_mean += mom * mean
        self.running_var *= 1 - mom
        self.running_var += (mom * count / (count - 1)) * var
        return self._scaled(xc)

    def _scaled(self, xc):
        """``y = (x − μ) ⊙ (γ ⊙ inv_std) + β``, into the output workspace."""
        out = self._workspace("out", xc.shape[0], self.n_out, xc.dtype)
        np.multiply(xc, self.gamma * self.inv_std, out=out)
        out += self.beta
        return out

    def _sum_squares(self, xc):
        """``Σ_rows (x − μ)²`` over the global batch (one pass, no temporary)."""
        local = np.einsum("ij,ij->j", xc, xc)
        if self.reduce is not None:
            self.reduce(local)
        return local

    def backward(self, grad, need_input_grad=True):
        """``grad = ∂L/∂y`` (m, n) → ``∂L/∂x`` (in ``grad``'s memory); fills ``grad_gamma``, ``grad_beta``.

        With ``s = γ ⊙ inv_std`` the module notes' formula reads
        ``∂L/∂x = s ⊙ G − s ⊙ ΣG/M − (x − μ) ⊙ (s ⊙ inv_std ⊙ Σ(G ⊙ x̂)/M)``.
        The parameter gradients hold this process's rows (the run sums them
        over processes with every other gradient); ``∂L/∂x`` uses the global
        ``Σ_rows G`` and ``Σ_rows G ⊙ x̂``.
        """
        np.sum(grad, axis=0, out=self.grad_beta)                                  # ∂L/∂β = Σ G
        np.multiply(np.einsum("ij,ij->j", grad, self.xc), self.inv_std, out=self.grad_gamma)  # Σ G ⊙ x̂
        if not need_input_grad:
            return None
        scale = self.gamma * self.inv_std
        if self.count is None:                                                    # prediction mode: an affine map
            grad *= scale
            return grad
        sums = np.concatenate([self.grad_beta, self.grad_gamma])
        if self.reduce is not None:
            self.reduce(sums)
        n = self.n_in
        grad *= scale                                                             # Ĝ ⊙ inv_std
        grad -= scale * (sums[:n] / self.count)                                   # − inv_std ⊙ mean(Ĝ)
        tmp = self._workspace("tmp", grad.shape[0], n, grad.dtype)
        np.multiply(self.xc, scale * self.inv_std * (sums[n:] / self.count), out=tmp)
        grad -= tmp                                                               # − inv_std ⊙ x̂ ⊙ mean(Ĝ ⊙ x̂)
        return grad

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum}


register("layernorm", LayerNorm)
register("batchnorm", BatchNorm)
