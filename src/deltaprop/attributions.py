r"""Exact input attributions: how each input of a row moves one output of the network, or the row's loss.

Training stops backpropagation at the first layer: its input's delta is never
needed. Carried one layer further, the same backward pass gives the gradient
with respect to the input itself (row form, ``Δ_1 = ∂f/∂Z_1``):

.. math::
    ∂f/∂X = Δ_1 W_1 \qquad (δ^{(0)} = (W^{(1)})^T δ^{(1)} \text{ for one column vector})

where ``f`` is, for each row on its own, either the row's loss ``ℓ_i`` (given
targets ``y``; no ``1/m``: rows are independent) or one output ``a_k`` (or
its pre-activation ``z_k`` with ``logits=True``), seeded at the output as

.. math::
    Δ_L = ∂ℓ_i/∂z_i \text{ (the loss's own output delta)} \quad\text{or}\quad
    Δ_L = e_k^T J_σ(z_i) \text{ (} e_k \text{ itself with logits)}

and carried back through every layer's own ``backward`` (Dense, Dropout off,
Activation, LayerNorm, BatchNorm on its running statistics, Residual).
Three attributions are built on it, for a row ``x`` and a baseline ``x'``
(default 0), each of shape (n_rows, n_in):

- ``"gradient"``: ``∂f/∂x_j`` itself;
- ``"gradient_x_input"``: ``(x_j − x'_j) ∂f/∂x_j(x)``;
- ``"integrated_gradients"`` (Sundararajan et al., 2017):

  .. math::
      IG_j = (x_j − x'_j) \int_0^1 ∂f/∂x_j\big(x' + α (x − x')\big)\, dα
      ≈ (x_j − x'_j) \sum_s w_s\, ∂f/∂x_j\big(x' + α_s (x − x')\big)

  with the nodes ``α_s`` and weights ``w_s`` of a quadrature rule
  (:func:`quadrature`). Completeness: by the fundamental theorem of calculus
  along the path, ``Σ_j IG_j = f(x) − f(x')`` exactly; the sum of the
  approximation differs from it by the quadrature's error alone (for a smooth
  ``f`` and the trapezoid rule, ``O(1/steps²)``; ReLU's kinks make the
  integrand jump, and the error falls as ``O(1/steps)``), which
  :attr:`Attributions.gap` reports for every row.

An :class:`~deltaprop.embedding.Embedding` first layer reads category codes,
which have no derivative: its input gradient is NaN at the code columns.
Attributions then run in the embedded space instead: the path goes from the
baseline's embedding (the zero vector for each coded column, unless a
``baseline`` is given, whose codes are then looked up) to the row's, and each
code column receives the sum of its vector's dimensions,
``Σ_d (e_d − e'_d) ∫ ∂f/∂e_d dα``, so that completeness still holds.

Passes run with dropout off and batch statistics frozen; the network's
``grads`` are kept (saved and restored), its workspaces are overwritten as by
:meth:`~deltaprop.network.FeedForward.predict`.
"""

import contextlib

import numpy as np

from .checks import check_array, check_positive_int, check_sample_weight
from .embedding import Embedding
from .errors import DataError, InvalidArgumentError, describe

__all__ = ["Attributions", "input_gradients", "gradient_x_input", "integrated_gradients", "attribute",
           "quadrature", "method_name", "METHODS", "RULES"]

#: attribution methods by name, with the names the command line uses
METHODS = {"integrated_gradients": "integrated_gradients", "integrated": "integrated_gradients",
           "ig": "integrated_gradients", "gradient_x_input": "gradient_x_input", "gradxinput": "gradient_x_input",
           "gradient": "gradient"}
#: quadrature rules of ∫_0^1 g(α) dα for integrated gradients (Captum's names)
RULES = ("riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle", "gausslegendre")


def method_name(method):
    """The canonical name of an attribution method (``"ig"`` → ``"integrated_gradients"``)."""
    if not isinstance(method, str) or method not in METHODS:
        raise InvalidArgumentError(f"method must be one of {sorted(set(METHODS.values()))} (or "
                                   f"{sorted(set(METHODS) - set(METHODS.values()))}), got {describe(method)}")
    return METHODS[method]


def quadrature(rule="riemann_trapezoid", steps=64):
    r"""Nodes and weights of ``∫_0^1 g(α) dα ≈ Σ_s w_s g(α_s)``, nodes 0 and 1 first (weight 0 where unused).

    ``steps`` intervals of width ``h = 1/steps`` (``steps`` nodes for Gauss–Legendre):

    - ``"riemann_trapezoid"``: ``h (g_0/2 + g_1 + ... + g_{S-1} + g_S/2)``, error ``O(h²)`` for smooth ``g``;
    - ``"riemann_left"``, ``"riemann_right"``: ``h Σ g`` at the left or right ends, error ``O(h)``;
    - ``"riemann_middle"``: ``h Σ g`` at the midpoints, error ``O(h²)``;
    - ``"gausslegendre"``: Gauss–Legendre nodes mapped to [0, 1], exact for polynomials of degree ``2S − 1``.

    Returns
    -------
    alphas, weights : ndarray of shape (n_nodes,), float64
        ``alphas[0] = 0`` and ``alphas[1] = 1`` always, so that every pass also gives ``f(x')`` and ``f(x)``.
    """
    steps = check_positive_int(steps, "steps")
    h = 1.0 / steps
    inner = np.arange(1, steps) * h
    ones = np.full(steps - 1, h)
    if rule == "riemann_trapezoid":
        return np.r_[0.0, 1.0, inner], np.r_[h / 2, h / 2, ones]
    if rule == "riemann_left":
        return np.r_[0.0, 1.0, inner], np.r_[h, 0.0, ones]
    if rule == "riemann_right":
        return np.r_[0.0, 1.0, inner], np.r_[0.0, h, ones]
    if rule == "riemann_middle":
        return np.r_[0.0, 1.0, (np.arange(steps) + 0.5) * h], np.r_[0.0, 0.0, np.full(steps, h)]
    if rule == "gausslegendre":
        t, w = np.polynomial.legendre.leggauss(steps)
        return np.r_[0.0, 1.0, (t + 1.0) / 2.0], np.r_[0.0, 0.0, w / 2.0]
    raise InvalidArgumentError(f"the integration method must be one of {list(RULES)}, got {describe(rule)}")


class Attributions:
    r"""Per-row attributions of one function ``f`` of the row, and what completeness is checked against.

    Attributes
    ----------
    values : ndarray of shape (n_rows, n_columns)
        One attribution per row and column (input, or original column of a data contract).
    columns : list of str
        The columns' names.
    method : str
        ``"integrated_gradients"``, ``"gradient_x_input"`` or ``"gradient"``.
    value : ndarray of shape (n_rows,)
        ``f(x)``: the explained output (or loss) of each row.
    baseline_value : ndarray of shape (n_rows,)
        ``f(x')`` at the baseline (NaN for ``"gradient"``, which has none).
    explained : ndarray of shape (n_rows,) or None
        What ``f`` is for each row: an output index, a class label, a target's name; None for the loss.

    Notes
    -----
    ``delta = value − baseline_value`` and the completeness ``gap = Σ_j values_j − delta``: integrated
    gradients make it the quadrature error (it shrinks as ``steps`` grows); for gradient × input it is the
    error of the first-order Taylor expansion about ``x`` (zero for an affine ``f``); NaN for the gradient.
    """

    def __init__(self, values, columns, method, value, baseline_value, explained=None):
        self.values = values
        self.columns = list(columns)
        self.method = method
        self.value = np.asarray(value, dtype=np.float64)
        self.baseline_value = np.asarray(baseline_value, dtype=np.float64)
        self.explained = explained

    @property
    def delta(self):
        """``f(x) − f(x')``, shape (n_rows,)."""
        return self.value - self.baseline_value

    @property
    def gap(self):
        """``Σ_j values_j − (f(x) − f(x'))``, shape (n_rows,): how far from completeness each row is."""
        return self.values.sum(axis=1, dtype=np.float64) - self.delta

    def summed(self, groups, names):
        """The columns summed into groups: ``groups[j]`` is column ``j``'s index into ``names``."""
        groups = np.asarray(groups, dtype=np.intp)
        if groups.shape != (self.values.shape[1],) or groups.min(initial=0) < 0 or \
                groups.max(initial=-1) >= len(names):
            raise InvalidArgumentError(f"groups must give each of the {self.values.shape[1]} columns an index "
                                       f"into the {len(names)} names")
        out = np.zeros((self.values.shape[0], len(names)), dtype=self.values.dtype)
        np.add.at(out.T, groups, self.values.T)
        return Attributions(out, names, self.method, self.value, self.baseline_value, self.explained)

    def rescaled(self, factor, offset):
        """The attributions of ``g = factor · f + offset`` (per row, or one for all): values times ``factor``."""
        factor = np.asarray(factor, dtype=np.float64)
        values = (self.values * factor.reshape(-1, 1) if factor.ndim else self.values * factor).astype(
            self.values.dtype, copy=False)
        return Attributions(values, self.columns, self.method, factor * self.value + offset,
                            factor * self.baseline_value + offset, self.explained)

    def table(self):
        """``(header, rows)``: the columns, then ``explained`` (if any), ``value``, ``baseline_value`` and ``gap``.

        A name that one of the columns already has gets leading underscores (``_value``).
        """
        meta = (["explained"] if self.explained is not None else []) + ["value", "baseline_value", "gap"]
        taken = set(self.columns)
        for i, name in enumerate(meta):
            while name in taken:
                name = "_" + name
            meta[i] = name
            taken.add(name)
        extra = ([np.asarray(self.explained).tolist()] if self.explained is not None else []) + [
            self.value.tolist(), self.baseline_value.tolist(), self.gap.tolist()]
        rows = [v + list(e) for v, e in zip(self.values.tolist(), zip(*extra))]
        return self.columns + meta, rows

    def to_rows(self):
        """One dict per row: ``{column: attribution, ..., "value": f(x), "baseline_value": f(x'), "gap": ...}``."""
        header, rows = self.table()
        return [dict(zip(header, row)) for row in rows]

    def __repr__(self):
        return (f"Attributions({self.method}, {self.values.shape[0]} rows x {self.values.shape[1]} columns, "
                f"largest |gap| {np.nanmax(np.abs(self.gap), initial=0.0):.3g})")


# ----------------------------------------------------------------------------- passes
class _Space:
    """Where gradients are taken: the input itself, or, after an Embedding first layer, the embedded rows."""

    def __init__(self, net):
        first = net.layers[0]
        self.embedding = first if isinstance(first, Embedding) else None
        self.start = 0 if self.embedding is None else 1
        self.n_in = net.n_in

    def embed(self, X):
        """Dense input rows (m, n_in) → rows of the space (a new array)."""
        return np.array(X if self.embedding is None else self.embedding.forward(X), copy=True)

    def fold(self, V, codes=None):
        """Values of the space (m, width) → per input column (m, n_in).

        Each embedded vector's dimensions are summed into its code column (or ``codes`` is put there).
        """
        emb = self.embedding
        if emb is None:
            return V
        out = np.empty((V.shape[0], self.n_in), dtype=V.dtype)
        n_pass = len(emb.passthrough)
        out[:, emb.passthrough] = V[:, :n_pass]
        at = n_pass
        for index, _, dim in emb.columns:
            out[:, index] = V[:, at:at + dim].sum(axis=1) if codes is None else codes
            at += dim
        return out


class _LossSeed:
    """``f_i = w_i ℓ_i`` (each row's own loss, no ``1/m``) and ``Δ_L = w_i ∂ℓ_i/∂z_i``."""

    def __init__(self, net, y, sample_weight, n):
        self.Y = net.prepare_targets(y)
        if self.Y.shape[0] != n:
            raise DataError(f"X has {n} samples but y has {self.Y.shape[0]}")
        self.w = None if sample_weight is None else check_sample_weight(sample_weight, n).astype(net.dtype)

    def __call__(self, net, rows):
        Y = self.Y[rows]
        w = 1.0 if self.w is None else self.w[rows]
        f = net.loss.value(net.layers[-1].a, Y) * w
        return f, net.output_delta(Y, w if self.w is None else w[:, None])


class _OutputSeed:
    """``f_i = a_{i k_i}`` (``z_{i k_i}`` with logits) and ``Δ_L = ∂f_i/∂z_i``: ``e_k`` through σ's Jacobian."""

    def __init__(self, k, logits):
        self.k, self.logits = k, logits

    def __call__(self, net, rows):
        out = net.layers[-1]
        k = self.k[rows]
        i = np.arange(len(rows))
        G = np.zeros((len(rows), net.n_out), dtype=out.z.dtype)
        G[i, k] = 1
        if self.logits:
            return out.z[i, k], G
        return out.a[i, k], out.activation.backward(out.z, out.a, G, G)   # e_kᵀ J_σ: softmax's couples units


def _gradients(net, A, start, seed, rows):
    """Forward from layer ``start`` on ``A`` (m, width), backward to its input: ``(f (m,), ∂f/∂A (m, width))``."""
    layers = net.layers
    a = A
    for layer in layers[start:]:
        a = layer.forward(a, training=False, rng=net.rng, need_input_grad=True)
    f, delta = seed(net, rows)
    g = layers[-1].backward_delta(delta, need_input_grad=True)           # Δ_L W_L
    for i in range(len(layers) - 2, start - 1, -1):
        g = layers[i].backward(g, need_input_grad=True)                  # down to Δ_1 W_1 = ∂f/∂A
    return np.asarray(f, dtype=np.float64), np.array(g, copy=True)


@contextlib.contextmanager
def _grads_kept(net):
    """The passes overwrite the parameter gradients: put them back afterwards."""
    saved = net.grads.copy()
    try:
        yield
    finally:
        np.copyto(net.grads, saved)


def _output_rows(output, n, n_out):
    """``output`` (one index, or one per row) as an index array of shape (n,), each in ``[0, n_out)``."""
    k = np.asarray(output)
    if k.dtype.kind not in "iu" or k.ndim > 1 or (k.ndim == 1 and k.shape[0] != n):
        raise InvalidArgumentError(f"output must be an output index (0..{n_out - 1}) or one per row ({n}), got "
                                   f"{describe(output)}")
    if k.size and (k.min() < 0 or k.max() >= n_out):
        raise InvalidArgumentError(f"output index {int(k.min() if k.min() < 0 else k.max())} is out of range "
                                   f"for a network with {n_out} outputs (0..{n_out - 1})")
    return np.broadcast_to(k, (n,)).astype(np.intp)


def _seed(net, n, y, output, logits, sample_weight):
    """What ``f`` is: the loss of each row (``y``) or one output (``output``); exactly one of the two."""
    if (y is None) == (output is None):
        raise InvalidArgumentError("give exactly one of y (each row's loss is differentiated) and output (an "
                                   f"output index), got {'both' if y is not None else 'neither'}")
    if y is not None:
        if logits:
            raise InvalidArgumentError("logits=True goes with output=; with y the loss is differentiated")
        return _LossSeed(net, y, sample_weight, n)
    if sample_weight is not None:
        raise InvalidArgumentError("sample_weight goes with y (it weights each row's loss)")
    return _OutputSeed(_output_rows(output, n, net.n_out), bool(logits))


def input_gradients(net, X, y=None, output=None, logits=False, sample_weight=None, batch_size=4096):
    r"""``∂f_i/∂x_i`` for every row: the input's delta, one layer further than training carries it.

    Parameters
    ----------
    net : FeedForward
    X : array-like of shape (n, n_in), a OneHotMatrix, SparseRows or scipy sparse matrix
        A sparse matrix is fed to the first layer as it is; the gradient is dense (every column).
    y : array-like, optional
        Targets in the loss's natural form: ``f_i = ℓ_i``, the loss of row ``i`` alone (not divided by
        ``m``, so rows are independent; ``∂L/∂X`` of the mean batch loss is this divided by ``m``).
    output : int or array-like of int of shape (n,), optional
        ``f_i = a_{i k}`` (``z_{i k}`` with ``logits``): one output for every row, or one per row.
    logits : bool
        Differentiate the output layer's pre-activation ``z_k`` rather than ``a_k = σ(z)_k``.
    sample_weight : array-like of shape (n,), optional
        With ``y``: ``f_i = w_i ℓ_i`` (not normalised).
    batch_size : int
        Rows per pass.

    Returns
    -------
    ndarray of shape (n, n_in), the network's dtype
        NaN at the code columns an Embedding first layer reads (a code has no derivative).

    Notes
    -----
    One forward pass (prediction mode, the first layer asked for its input gradient) and one backward pass
    per batch, seeded with ``Δ_L = ∂f/∂Z_L``. The network's ``grads`` are kept.
    """
    X = net.check_X(X)
    n = X.shape[0]
    seed = _seed(net, n, y, output, logits, sample_weight)
    batch_size = check_positive_int(batch_size, "batch_size")
    space = _Space(net)
    out = np.empty((n, net.n_in), dtype=net.dtype)
    with _grads_kept(net):
        for start in range(0, n, batch_size):
            rows = np.arange(start, min(n, start + batch_size))
            chunk = X[start:start + batch_size]
            A = chunk if space.embedding is None else space.embed(chunk)
            out[rows] = space.fold(_gradients(net, A, space.start, seed, rows)[1], codes=np.nan)
    return out


def _baseline(net, baseline, n):
    """None, or the baseline as a (1, n_in) or (n, n_in) array of the network's dtype."""
    if baseline is None:
        return None
    B = np.asarray(baseline)
    if B.ndim == 1:
        B = B.reshape(1, -1)
    B = check_array(B, "baseline", n_features=net.n_in, dtype=net.dtype)
    if B.shape[0] not in (1, n):
        raise DataError(f"baseline must be one row or one per row of X ({n}), got {B.shape[0]} rows")
    return B


def _path(net, X, seed, baseline, alphas, weights, batch_size):
    """Along ``A' + α (A − A')``: ``(A − A') ⊙ Σ_s w_s ∇f(α_s)`` per input column, ``∇f(x)``, ``f(x)``, ``f(x')``."""
    space = _Space(net)
    n, P = X.shape[0], len(alphas)
    per = max(1, check_positive_int(batch_size, "batch_size") // P)   # rows per pass: P path points each
    values, grad = np.empty((n, net.n_in), dtype=net.dtype), np.empty((n, net.n_in), dtype=net.dtype)
    fx, fb = np.empty(n), np.empty(n)
    dtype_alphas = alphas.astype(net.dtype)[:, None, None]
    with _grads_kept(net):
        for start in range(0, n, per):
            rows = np.arange(start, min(n, start + per))
            chunk = X[start:start + per]
            A = space.embed(chunk if isinstance(chunk, np.ndarray) else chunk.toarray())
            if baseline is None:
                A0 = np.zeros_like(A)
            else:
                A0 = space.embed(np.broadcast_to(baseline if len(baseline) == 1 else baseline[rows], chunk.shape))
            D = A - A0
            points = (A0[None] + dtype_alphas * D[None]).reshape(P * len(rows), -1)
            f, g = _gradients(net, points, space.start, seed, np.tile(rows, P))
            g = g.reshape(P, len(rows), -1)
            values[rows] = space.fold(D * np.tensordot(weights.astype(net.dtype), g, axes=1))
            grad[rows] = space.fold(g[1], codes=np.nan)
            fb[rows], fx[rows] = f.reshape(P, len(rows))[:2]
    return values, grad, fx, fb


def attribute(net, X, method="integrated_gradients", *, y=None, output=None, logits=False, baseline=None,
              steps=64, rule="riemann_trapezoid", sample_weight=None, batch_size=4096, columns=None):
    """Attributions of ``f`` (each row's loss, or an output) to the inputs of every row, by ``method``.

    Parameters
    ----------
    net : FeedForward
    X : array-like of shape (n, n_in), or a sparse matrix (densified a batch at a time)
    method : {"integrated_gradients", "gradient_x_input", "gradient"}
        See the module notes (aliases: ``"integrated"``, ``"ig"``, ``"gradxinput"``).
    y, output, logits, sample_weight
        What ``f`` is, as for :func:`input_gradients`.
    baseline : array-like of shape (n_in,) or (n, n_in), optional
        ``x'`` (default: 0, in the embedded space after an Embedding).
    steps : int
        Intervals of the quadrature rule (integrated gradients).
    rule : str
        One of :data:`RULES` (integrated gradients).
    batch_size : int
        Path points per pass (at least one row's points).
    columns : list of str, optional
        Names of the inputs (default ``x0``, ``x1``, ...).

    Returns
    -------
    Attributions
        ``values`` of shape (n, n_in); ``value``, ``baseline_value`` and ``gap`` per row.
    """
    method = method_name(method)
    X = net.check_X(X)
    n = X.shape[0]
    seed = _seed(net, n, y, output, logits, sample_weight)
    B = _baseline(net, baseline, n)
    if method == "integrated_gradients":
        alphas, weights = quadrature(rule, steps)
    else:                                        # the gradient at x (α = 1); f(x') at α = 0
        alphas, weights = np.array([0.0, 1.0]), np.array([0.0, 1.0])
    values, grad, fx, fb = _path(net, X, seed, B, alphas, weights, batch_size)
    if method == "gradient":
        values, fb = grad, np.full(n, np.nan)
    names = [f"x{j}" for j in range(net.n_in)] if columns is None else list(columns)
    explained = None if output is None else np.broadcast_to(np.asarray(output), (n,)).copy()
    return Attributions(values, names, method, fx, fb, explained)


def integrated_gradients(net, X, baseline=None, steps=64, method="riemann_trapezoid", output=None, y=None,
                         logits=False, sample_weight=None, batch_size=4096):
    r"""Integrated gradients ``IG_j = (x_j − x'_j) ∫_0^1 ∂f/∂x_j(x' + α(x − x')) dα``, shape (n, n_in).

    The integral is approximated by the quadrature rule ``method`` with ``steps`` intervals
    (:func:`quadrature`); ``Attributions.gap`` is ``Σ_j IG_j − (f(x) − f(x'))``, the rule's error. See
    :func:`attribute` for the parameters.
    """
    return attribute(net, X, "integrated_gradients", y=y, output=output, logits=logits, baseline=baseline,
                     steps=steps, rule=method, sample_weight=sample_weight, batch_size=batch_size)


def gradient_x_input(net, X, baseline=None, output=None, y=None, logits=False, sample_weight=None,
                     batch_size=4096):
    r"""Gradient × input ``(x_j − x'_j) ∂f/∂x_j(x)``, shape (n, n_in): integrated gradients with one right node.

    ``Attributions.gap`` is the first-order Taylor error ``Σ_j (x_j − x'_j) ∂f/∂x_j − (f(x) − f(x'))``. See
    :func:`attribute` for the parameters.
    """
    return attribute(net, X, "gradient_x_input", y=y, output=output, logits=logits, baseline=baseline,
                     sample_weight=sample_weight, batch_size=batch_size)
