r"""One step of backpropagation with its actual numbers: the seed's equations, watched on a tiny network.

:func:`walkthrough` takes one training step on one sample, computed in plain
NumPy from the seed's equations in their column-vector form

.. math::
    z^{(l)} = W^{(l)} a^{(l-1)} + b^{(l)},\quad a^{(l)} = σ(z^{(l)}),\quad a^{(0)} = x

    δ^{(L)} = ∂L/∂a^{(L)} ⊙ σ'(z^{(L)}),\quad δ^{(l)} = ((W^{(l+1)})^T δ^{(l+1)}) ⊙ σ'(z^{(l)})

    ∂L/∂W^{(l)} = δ^{(l)} (a^{(l-1)})^T,\quad ∂L/∂b^{(l)} = δ^{(l)}

    W^{(l)} ← W^{(l)} - η\,∂L/∂W^{(l)},\quad b^{(l)} ← b^{(l)} - η\,∂L/∂b^{(l)}

and returns a :class:`Walkthrough` holding every quantity, whose
:meth:`~Walkthrough.text` prints each line under the equation it instantiates.
The same step is then taken by deltaprop itself (``Network.forward``,
``Network.backward`` and an :class:`~deltaprop.optimizers.SGD` step on a
batch of one, in the row form ``Z = A_prev Wᵀ + b``), and both sets of
numbers are kept, so anyone can see that they agree.

What is shared with the network: σ, σ' and the loss ℓ, ∂ℓ/∂a come from the
activation and loss objects (:mod:`deltaprop.activations`,
:mod:`deltaprop.losses`), their one home; the products, the chain rule and
the update are written out here. A softmax, which is not elementwise, enters
through its Jacobian ``J = diag(a) − a aᵀ``: ``δ = Jᵀ ∂L/∂a`` replaces
``∂L/∂a ⊙ σ'(z)``.
"""

import dataclasses

import numpy as np

from . import losses as _losses
from .checks import check_int, check_number
from .errors import InvalidArgumentError, InvalidTypeError, describe
from .layers import Dense
from .network import FeedForward
from .optimizers import SGD

__all__ = ["walkthrough", "Walkthrough", "LayerStep", "MAX_WIDTH", "MAX_LAYERS"]

#: the widest layer a walkthrough prints (its matrices must fit a terminal)
MAX_WIDTH = 10
#: the most weight matrices (Dense layers) a walkthrough prints
MAX_LAYERS = 6
_MINUS = "\u2212"  # the minus sign of the equations


@dataclasses.dataclass
class LayerStep:
    """Layer ``l``'s quantities in one step (1-D arrays are column vectors; float64).

    Attributes
    ----------
    l : int
        The layer's number, 1 to L.
    activation : Activation
        σ of the layer.
    W, b : ndarray of shape (n_l, n_{l-1}) and (n_l,)
        The parameters before the step.
    z, a : ndarray of shape (n_l,)
        ``z = W a_prev + b`` and ``a = σ(z)``.
    sigma_prime : ndarray of shape (n_l,), or (n_l, n_l)
        ``σ'(z)``; for an activation that is not elementwise (softmax), its
        Jacobian ``J[i, j] = ∂a_i/∂z_j``.
    grad_a : ndarray of shape (n_l,)
        ``∂L/∂a``: the loss's gradient for the output layer,
        ``(W^(l+1))ᵀ δ^(l+1)`` for a hidden one.
    delta : ndarray of shape (n_l,)
        ``δ = ∂L/∂z``.
    grad_W, grad_b : ndarray of shape (n_l, n_{l-1}) and (n_l,)
        ``δ a_prevᵀ`` and ``δ``.
    W_new, b_new : ndarray
        The parameters after the step, ``W − η ∂L/∂W`` and ``b − η ∂L/∂b``.
    """

    l: int
    activation: object
    W: np.ndarray
    b: np.ndarray
    z: np.ndarray = None
    a: np.ndarray = None
    sigma_prime: np.ndarray = None
    grad_a: np.ndarray = None
    delta: np.ndarray = None
    grad_W: np.ndarray = None
    grad_b: np.ndarray = None
    W_new: np.ndarray = None
    b_new: np.ndarray = None

    _ARRAYS = ("W", "b", "z", "a", "sigma_prime", "grad_a", "delta", "grad_W", "grad_b", "W_new", "b_new")

    @property
    def elementwise(self):
        """Whether ``sigma_prime`` is the elementwise ``σ'(z)`` (else a Jacobian)."""
        return self.sigma_prime.ndim == 1


@dataclasses.dataclass
class Walkthrough:
    """One forward and backward pass and one update, with every number: see :func:`walkthrough`.

    Attributes
    ----------
    sizes : list of int
        ``[n_0, n_1, ..., n_L]``.
    loss : Loss
        ℓ; the loss of the step is ``L = ℓ(a^(L), y)`` (one sample).
    learning_rate : float
        η.
    x : ndarray of shape (n_0,)
        ``a^(0)``.
    y : ndarray of shape (n_L,)
        The target as the loss reads it (class indices become one-hot rows).
    layers : list of LayerStep
        ``layers[l - 1]`` is layer ``l``.
    loss_before, loss_after : float
        ``L`` with the parameters before and after the step.
    canonical : bool
        Whether the output activation and the loss are a canonical pair, whose
        fused ``δ^(L)`` (``a − y`` up to a constant) the output layer uses.
    chain_delta : ndarray of shape (n_L,) or None
        For a canonical pair, ``δ^(L)`` by the seed's chain rule, which equals
        the fused one up to rounding.
    reference : dict
        The same step taken by deltaprop's network: lists (one array per
        layer) under ``"z"``, ``"a"``, ``"delta"``, ``"grad_W"``,
        ``"grad_b"``, ``"W_new"``, ``"b_new"``, and floats under
        ``"loss_before"`` and ``"loss_after"``.
    max_difference : float
        The largest absolute difference between the two.
    digits : int
        Significant digits of :meth:`text`.
    source : str
        Where ``W``, ``b``, ``x`` and ``y`` came from, in words.
    """

    sizes: list
    loss: object
    learning_rate: float
    x: np.ndarray
    y: np.ndarray
    layers: list
    loss_before: float
    loss_after: float
    canonical: bool
    chain_delta: np.ndarray
    reference: dict
    max_difference: float
    digits: int = 4
    source: str = ""

    def text(self, digits=None):
        """The step as text: each equation of the seed, then the matrices it multiplies, with their numbers."""
        return _render(self, self.digits if digits is None else _check_digits(digits))

    def __str__(self):
        return self.text()

    def to_dict(self):
        """Every number as plain lists and floats (what ``deltaprop walkthrough --json`` prints)."""
        return {
            "sizes": list(self.sizes),
            "activations": [_name(step.activation) for step in self.layers],
            "loss": _name(self.loss),
            "learning_rate": self.learning_rate,
            "canonical": self.canonical,
            "x": self.x.tolist(),
            "y": self.y.tolist(),
            "layers": [{"l": step.l, **{k: getattr(step, k).tolist() for k in LayerStep._ARRAYS}}
                       for step in self.layers],
            "chain_delta": None if self.chain_delta is None else self.chain_delta.tolist(),
            "loss_before": self.loss_before,
            "loss_after": self.loss_after,
            "max_difference": self.max_difference,
            "source": self.source,
        }


def walkthrough(sizes=(2, 3, 2), activation="sigmoid", output_activation="sigmoid", loss="mean_squared_error",
                learning_rate=0.5, x=None, y=None, seed=0, digits=4, network=None):
    r"""One training step on one sample, every number of the seed's equations kept: ``print(walkthrough())``.

    The defaults (a 2-3-2 sigmoid network with mean squared error) are not a
    canonical pair, so the output delta is the seed's generic
    ``δ^(L) = ∂L/∂a^(L) ⊙ σ'(z^(L))``; with a canonical pair (softmax with
    ``categorical_crossentropy``, sigmoid with ``binary_crossentropy``,
    identity with ``mean_squared_error``) the text shows that rule and the
    fused ``δ^(L) = a^(L) − y`` (up to a constant) that deltaprop uses, and
    why they agree. Weights, biases, ``x`` and ``y`` not given are drawn
    from ``seed`` and rounded to one decimal, so that each line can be
    checked by hand.

    Parameters
    ----------
    sizes : sequence of int
        ``[n_0, n_1, ..., n_L]``: input, hidden and output widths (each at
        most :data:`MAX_WIDTH`, at most :data:`MAX_LAYERS` layers).
    activation : str, dict, Activation, or a list of them
        σ of the hidden layers: one for all, or one per hidden layer.
    output_activation : str, dict or Activation
        σ of the output layer.
    loss : str, dict or Loss
        ℓ; the loss of one sample is ``L = ℓ(a^(L), y)``.
    learning_rate : float
        η, positive.
    x : array-like of shape (n_0,), optional
        The sample (default: drawn from ``seed``, in [−1, 1]).
    y : array-like, optional
        Its target in the loss's natural form: a class index (or a one-hot
        row) for ``categorical_crossentropy`` and a multi-class hinge, 0/1
        labels for ``binary_crossentropy``, ``n_L`` real values otherwise
        (default: drawn from ``seed``).
    seed : int
        Draws what is not given: ``W`` (uniform in [−1, 1]) and ``b``
        (in [−0.5, 0.5]) unless ``network`` is given, then ``x``, then ``y``.
    digits : int
        Significant digits shown by :meth:`Walkthrough.text` (1 to 17).
    network : FeedForward or Network, optional
        Take the layers, the weights and the loss from this network instead
        (``sizes``, ``activation``, ``output_activation`` and ``loss`` are
        then not used): Dense layers with biases and without dropout. It is
        not changed: the step is taken on a float64 copy.

    Returns
    -------
    Walkthrough
        Every quantity as arrays, and the same step as taken by deltaprop's
        network (``reference``, ``max_difference``).

    Examples
    --------
    >>> w = walkthrough()
    >>> w.layers[0].z            # z^(1) = W^(1) x + b^(1), a column vector   # doctest: +SKIP
    >>> print(w.text())          # doctest: +SKIP
    """
    learning_rate = check_number(learning_rate, "learning_rate", low=0.0, low_open=True)
    digits = _check_digits(digits)
    seed = check_int(seed, "seed", 0)
    rng = np.random.default_rng(seed)
    if network is None:
        if not isinstance(sizes, (list, tuple, np.ndarray)):
            raise InvalidTypeError(f"sizes must be a list of layer widths such as [2, 3, 2], got {describe(sizes)}")
        _check_sizes([n if isinstance(n, (int, np.integer)) else 0 for n in sizes])  # before building anything
        net = FeedForward.from_sizes(list(sizes), activation=activation, output_activation=output_activation,
                                     loss=loss, dtype="float64", seed=seed)
        _check_network(net)
        for layer in net.layers:
            layer.W[...] = np.round(rng.uniform(-1.0, 1.0, layer.W.shape), 1)
            layer.b[...] = np.round(rng.uniform(-0.5, 0.5, layer.b.shape), 1)
    else:
        if not isinstance(network, FeedForward):
            raise InvalidTypeError(f"network must be a deltaprop Network, got {describe(network)}")
        _check_network(network)
        net = network.astype("float64")
    source = _source(seed, network is not None, x is not None, y is not None)
    x_drawn = np.round(rng.uniform(-1.0, 1.0, net.n_in), 1)
    y_drawn = _draw_target(rng, net.loss, net.n_out)
    x = _sample(net, x_drawn if x is None else x)
    Y = _target(net, y_drawn if y is None else y)
    steps, loss_before, loss_after, chain = _seed_step(net, x, Y, learning_rate)
    reference = _network_step(net, x, Y, learning_rate)
    return Walkthrough(
        sizes=[net.n_in] + [layer.n_out for layer in net.layers], loss=net.loss, learning_rate=learning_rate,
        x=x, y=Y[0], layers=steps, loss_before=loss_before, loss_after=loss_after, canonical=chain is not None,
        chain_delta=chain, reference=reference, max_difference=_max_difference(steps, reference, loss_before,
                                                                               loss_after),
        digits=digits, source=source)


# ---------------------------------------------------------------------------
# The arguments
# ---------------------------------------------------------------------------


def _check_digits(digits):
    digits = check_int(digits, "digits", 1)
    if digits > 17:
        raise InvalidArgumentError(f"digits must be at most 17 (what float64 holds), got {digits}")
    return digits


def _check_network(net):
    """Refuse a network the walkthrough cannot follow: other layers than Dense, no bias, dropout, too big."""
    for i, layer in enumerate(net.layers):
        if type(layer) is not Dense or not layer.bias or layer.dropout:
            raise InvalidArgumentError(f"a walkthrough follows Dense layers with a bias and without dropout, "
                                       f"the seed's layers; layer {i} is {layer!r}")
    _check_sizes([net.n_in] + [layer.n_out for layer in net.layers])


def _check_sizes(widths):
    if len(widths) > MAX_LAYERS + 1 or max(widths, default=0) > MAX_WIDTH:
        raise InvalidArgumentError(
            f"a walkthrough prints every matrix, so it takes at most {MAX_LAYERS} layers of at most {MAX_WIDTH} "
            f"units; got sizes {'-'.join(map(str, widths))}")


def _draw_target(rng, loss, n_out):
    """A target in the loss's natural form: a class index, 0/1 labels, or values in [0, 1] to one decimal."""
    task = getattr(loss, "task", "regression")
    if task == "classification" and n_out > 1 and _name(loss) != "binary_crossentropy":
        return int(rng.integers(n_out))
    if task == "classification":
        return rng.integers(0, 2, size=n_out).astype(np.float64)
    return np.round(rng.uniform(0.0, 1.0, n_out), 1)


def _sample(net, x):
    """``x`` as a float64 vector of ``n_in`` finite numbers (one sample)."""
    arr = np.asarray(x)
    if arr.ndim > 2 or (arr.ndim == 2 and arr.shape[0] != 1):
        raise InvalidArgumentError(f"x must be one sample of {net.n_in} numbers, got an array of shape {arr.shape}")
    return net.check_X(arr.reshape(1, -1), name="x")[0].copy()


def _target(net, y):
    """``y`` prepared by the loss: shape (1, n_out), float64."""
    arr = np.asarray(y)
    if arr.ndim > 2:
        raise InvalidArgumentError(f"y must be the target of one sample, got an array of shape {arr.shape}")
    Y = net.prepare_targets(arr.reshape(1) if arr.ndim == 0 else arr.reshape(1, -1) if arr.ndim == 1 else arr)
    if Y.shape[0] != 1:
        raise InvalidArgumentError(f"y must be the target of one sample, got {Y.shape[0]}")
    return Y


def _source(seed, network, x_given, y_given):
    drawn = [] if network else ["W", "b"]
    drawn += [name for name, given in (("x", x_given), ("y", y_given)) if not given]
    given = [name for name, is_given in (("x", x_given), ("y", y_given)) if is_given]
    parts = [f"{_and(drawn)} drawn with seed {seed} and rounded to one decimal"] if drawn else []
    parts += ["W and b from the network given"] if network else []
    return "; ".join(parts + ([f"{_and(given)} given"] if given else []))


def _and(names):
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _name(obj):
    return getattr(obj, "name", type(obj).__name__)


# ---------------------------------------------------------------------------
# The step, twice: the seed's equations, and deltaprop's network
# ---------------------------------------------------------------------------


def _apply(activation, z):
    """``σ(z)`` for a column vector (the activation's own forward, on one row)."""
    return activation.forward(z[None, :], np.empty((1, z.size)))[0]


def _sigma_prime(activation, z, a):
    """``σ'(z)`` elementwise, or the Jacobian ``J[i, j] = ∂a_i/∂z_j`` of an activation that is not elementwise."""
    if _name(activation) == "softmax":
        return np.diag(a) - np.outer(a, a)                  # J = diag(a) − a aᵀ
    if getattr(activation, "elementwise", True) and hasattr(activation, "derivative"):
        return np.asarray(activation.derivative(z[None, :], a[None, :]), dtype=np.float64)[0]
    # Any other: row i of J is the vector-Jacobian product of the unit vector e_i.
    eye = np.eye(z.size)
    return np.stack([activation.backward(z[None, :], a[None, :], eye[i:i + 1].copy(), np.empty((1, z.size)))[0]
                     for i in range(z.size)])


def _delta(step):
    """``δ = ∂L/∂a ⊙ σ'(z)``, or ``Jᵀ ∂L/∂a`` (sets ``step.sigma_prime``)."""
    step.sigma_prime = _sigma_prime(step.activation, step.z, step.a)
    if step.elementwise:
        return step.grad_a * step.sigma_prime
    return step.sigma_prime.T @ step.grad_a


def _forward(steps, x, new=False):
    """``z^(l) = W^(l) a^(l−1) + b^(l)``, ``a^(l) = σ(z^(l))``; records z and a unless ``new`` (updated W, b)."""
    a = x
    for step in steps:
        W, b = (step.W_new, step.b_new) if new else (step.W, step.b)
        z = W @ a + b
        a = _apply(step.activation, z)
        if not new:
            step.z, step.a = z, a
    return a


def _seed_step(net, x, Y, learning_rate):
    """The step from the seed's equations on column vectors: (steps, loss before, loss after, chain-rule δ^(L))."""
    steps = [LayerStep(l, layer.activation, layer.W.copy(), layer.b.copy()) for l, layer in enumerate(net.layers, 1)]
    a = _forward(steps, x)
    loss_before = float(net.loss.value(a[None, :], Y)[0])
    out = steps[-1]
    out.grad_a = net.loss.gradient(a[None, :], Y)[0]       # ∂L/∂a^(L): one sample, so L = ℓ
    chain = _delta(out)
    if _losses.is_canonical_pair(out.activation, net.loss):
        # Canonical link: σ' cancels the loss's denominators; ∂ℓ/∂z^(L) computed directly, as the network does.
        out.delta = net.loss.fused_delta(a[None, :], Y, np.empty((1, a.size)))[0]
    else:
        out.delta, chain = chain, None
    for below, above in zip(steps[-2::-1], steps[:0:-1]):
        below.grad_a = above.W.T @ above.delta               # ∂L/∂a^(l) = (W^(l+1))ᵀ δ^(l+1)
        below.delta = _delta(below)
    a_prev = x
    for step in steps:
        step.grad_W = np.outer(step.delta, a_prev)           # δ^(l) (a^(l−1))ᵀ
        step.grad_b = step.delta.copy()
        step.W_new = step.W - learning_rate * step.grad_W
        step.b_new = step.b - learning_rate * step.grad_b
        a_prev = step.a
    a_after = _forward(steps, x, new=True)
    return steps, loss_before, float(net.loss.value(a_after[None, :], Y)[0]), chain


def _network_step(net, x, Y, learning_rate):
    """The same step taken by the network (row form, as ``fit`` takes it) on a batch of one; its numbers."""
    X = x[None, :].copy()
    net.forward(X, training=True)
    ref = {"z": [layer.z[0].copy() for layer in net.layers], "a": [layer.a[0].copy() for layer in net.layers]}
    ref["loss_before"] = float(net.backward(Y, net.sample_scale(1, None, net.dtype)))
    # For a batch of one, ∂L/∂b = Σ_rows Δ is δ itself.
    ref["delta"] = [layer.grad_b.copy() for layer in net.layers]
    ref["grad_b"] = [layer.grad_b.copy() for layer in net.layers]
    ref["grad_W"] = [layer.grad_W.copy() for layer in net.layers]
    SGD(learning_rate).step(net.params, net.grads)
    ref["W_new"] = [layer.W.copy() for layer in net.layers]
    ref["b_new"] = [layer.b.copy() for layer in net.layers]
    ref["loss_after"] = float(net.batch_loss(net.forward(X), Y, 1.0))
    return ref


_COMPARED = ("z", "a", "delta", "grad_W", "grad_b", "W_new", "b_new")


def _max_difference(steps, ref, loss_before, loss_after):
    diffs = [abs(loss_before - ref["loss_before"]), abs(loss_after - ref["loss_after"])]
    for key in _COMPARED:
        diffs += [float(np.max(np.abs(getattr(step, key) - value))) for step, value in zip(steps, ref[key])]
    return max(diffs)


# The text
# ---------------------------------------------------------------------------


def _fmt(value, digits):
    text = f"{value:.{digits}g}"
    return "0" if text == "-0" else text


def _grid(M, digits):
    """A matrix (a 1-D array: a column vector) as lines ``[ 0.2  -0.4]``, each column aligned on its point."""
    M = np.asarray(M)
    M = M.reshape(-1, 1) if M.ndim == 1 else M
    columns = []
    for j in range(M.shape[1]):
        cells = [_fmt(v, digits) for v in M[:, j]]
        heads = [c.split(".")[0] for c in cells]
        tails = [c[len(h):] for c, h in zip(cells, heads)]
        wh, wt = max(map(len, heads)), max(map(len, tails))
        columns.append([h.rjust(wh) + t.ljust(wt) for h, t in zip(heads, tails)])
    return ["[" + "  ".join(col[i] for col in columns) + "]" for i in range(M.shape[0])]


def _hcat(indent, *parts):
    """Blocks side by side (a str is a block of one line), each centred on the tallest."""
    blocks = [[p] if isinstance(p, str) else p for p in parts]
    height = max(len(b) for b in blocks)
    rows = [indent] * height
    for block in blocks:
        width, top = max(map(len, block)), (height - len(block)) // 2
        for r in range(height):
            cell = block[r - top] if 0 <= r - top < len(block) else ""
            rows[r] += cell.ljust(width) + " "
    return [r.rstrip() for r in rows]


def _eq(label, *parts, note=""):
    """An equation of the seed, then ``= numbers`` under it, the ``=`` below the equation's own ``=`` (or ``←``)."""
    column = min(i for i in (label.find("="), label.find("←"), len(label)) if i >= 0)
    return [f"  {label}{note}"] + _hcat(" " * (2 + column), "=", *parts)


def _formula(obj):
    """The summary line of an activation's or a loss's docstring when it states the formula (its one home)."""
    lines = (type(obj).__doc__ or "").strip().splitlines()
    first = lines[0].strip() if lines else ""
    return first.split(". ")[0].rstrip(".") if first.startswith(("σ", "ℓ")) else ""


def _render(w, digits):
    """:meth:`Walkthrough.text`."""
    def g(M):
        return _grid(M, digits)

    lines = _header(w, digits) + _given(w, g) + _forward_text(w, g, digits) + ["", "Backward pass"]
    for s in reversed(w.layers):
        lines += _delta_text(w, s, g)
        prev = w.x if s.l == 1 else w.layers[s.l - 2].a
        lines += _eq(f"∂L/∂W^({s.l}) = δ^({s.l}) (a^({s.l - 1}))ᵀ", g(s.delta), g(prev[None, :]), "=", g(s.grad_W))
        lines += _eq(f"∂L/∂b^({s.l}) = δ^({s.l})", g(s.grad_b))
    eta = f"{w.learning_rate:g}"
    lines += ["", f"Update: plain gradient descent (deltaprop.SGD), η = {eta}"]
    for s in w.layers:
        lines += _eq(f"W^({s.l}) ← W^({s.l}) {_MINUS} η ∂L/∂W^({s.l})", g(s.W), _MINUS, eta, g(s.grad_W), "=",
                     g(s.W_new))
        lines += _eq(f"b^({s.l}) ← b^({s.l}) {_MINUS} η ∂L/∂b^({s.l})", g(s.b), _MINUS, eta, g(s.grad_b), "=",
                     g(s.b_new))
    return "\n".join(lines + _check_text(w, digits))


def _header(w, digits):
    layers = ", ".join(f"{s.l}: {_name(s.activation)} ({w.sizes[s.l - 1]} → {w.sizes[s.l]})" for s in w.layers)
    lines = [f"One step of backpropagation on a {'-'.join(map(str, w.sizes))} network, with its numbers",
             f"  layers {layers}; loss {_name(w.loss)}; learning rate η = {w.learning_rate:g}",
             f"  one sample, column vectors as in the seed; float64, shown to {digits} significant digits",
             f"  {w.source}"]
    for obj, symbol in [(s.activation, "σ") for s in w.layers] + [(w.loss, "ℓ")]:
        line = f"  {symbol} = {_name(obj)}" + (f": {_formula(obj)}" if _formula(obj) else "")
        if line not in lines:
            lines.append(line)
    return lines


def _given(w, g):
    lines = ["", "Given"] + _hcat("  ", "x = a^(0) =", g(w.x), "   y =", g(w.y))
    for s in w.layers:
        lines += _hcat("  ", f"W^({s.l}) =", g(s.W), f"   b^({s.l}) =", g(s.b))
    return lines


def _forward_text(w, g, digits):
    lines = ["", "Forward pass"]
    for s in w.layers:
        l, prev = s.l, (w.x if s.l == 1 else w.layers[s.l - 2].a)
        lines += _eq(f"z^({l}) = W^({l}) a^({l - 1}) + b^({l})", g(s.W), g(prev), "+", g(s.b), "=", g(s.z))
        lines += _eq(f"a^({l}) = σ(z^({l}))", g(s.a), note=f"   σ = {_name(s.activation)}")
    lines.append(f"  L = ℓ(a^({len(w.layers)}), y) = {_fmt(w.loss_before, digits)}")
    return lines


def _delta_text(w, s, g):
    """``δ^(l)``: ∂L/∂a, σ'(z) (or the Jacobian), the equation and its numbers; the fused δ of a canonical pair."""
    l, out, name = s.l, s.l == len(w.layers), _name(s.activation)
    lines = _eq(f"∂L/∂a^({l}) = ∂ℓ/∂a at a^({l}) and y", g(s.grad_a), note=f"   ({_name(w.loss)}'s gradient)") \
        if out else []
    if s.elementwise:
        lines += _eq(f"σ'(z^({l}))", g(s.sigma_prime), note=f"   ({name}'s derivative at z^({l}))")
        prefix = []
    else:
        form = f" = diag(a^({l})) {_MINUS} a^({l}) (a^({l}))ᵀ" if name == "softmax" else ""
        lines += [f"  ({name} is not elementwise: its Jacobian J^({l}) takes the place of ⊙ σ'(z^({l})))"]
        lines += _eq(f"J^({l}) = ∂a^({l})/∂z^({l}){form}", g(s.sigma_prime))
        prefix = [g(s.sigma_prime.T)]
    times = ["⊙", g(s.sigma_prime)] if s.elementwise else []
    if out:
        label, numbers = "∂L/∂a^(%d)" % l, [*prefix, g(s.grad_a), *times]
    else:
        nxt = w.layers[l]
        label = f"((W^({l + 1}))ᵀ δ^({l + 1}))"
        numbers = [*prefix, "(", g(nxt.W.T), g(nxt.delta), ")", *times, "=", *prefix, g(s.grad_a), *times]
    label = f"δ^({l}) = {label} ⊙ σ'(z^({l}))" if s.elementwise else f"δ^({l}) = (J^({l}))ᵀ {label}"
    chain = w.chain_delta if out and w.canonical else s.delta
    lines += _eq(label, *numbers, "=", g(chain), note="   (the seed's rule)" if out and w.canonical else "")
    if out and w.canonical:
        differ = _fmt(float(np.max(np.abs(chain - s.delta))), 2)
        why = "σ' is 1" if name == "identity" else "σ' cancels the denominators of ∂ℓ/∂a"
        lines += [f"  {name} with {_name(w.loss)} is a canonical pair: {why}, so deltaprop computes",
                  f"  ∂ℓ/∂z^({l}) directly (exact, no division by a^({l}); the rule above differs by {differ}):"]
        lines += _eq(f"δ^({l}) = {_fused_label(w)}", g(s.delta))
    return lines


def _fused_label(w):
    """The fused output delta of a canonical pair, as an equation."""
    L, n, name = len(w.layers), w.sizes[-1], _name(w.loss)
    if name == "categorical_crossentropy":
        return f"a^({L}) Σ_j y_j {_MINUS} y  (a^({L}) {_MINUS} y for a one-hot y)"
    if name == "binary_crossentropy":
        return f"a^({L}) {_MINUS} y" if n == 1 else f"(a^({L}) {_MINUS} y) / {n}"
    if name == "mean_squared_error":
        return f"2 (a^({L}) {_MINUS} y) / {n}"
    return f"∂ℓ/∂z^({L})  ({name}'s fused delta)"


def _check_text(w, digits):
    before, after = w.loss_before, w.loss_after
    verdict = ("lower: the step went downhill" if after < before else "higher: η is too large for this step"
               if after > before else "unchanged")
    how = "its row form Z = A_prev Wᵀ + b rounds differently" if w.max_difference else \
        "the same step in its row form Z = A_prev Wᵀ + b"
    return ["", "Check",
            f"  loss before → after: {_fmt(before, digits)} → {_fmt(after, digits)} ({verdict})",
            f"  checked against deltaprop.Network: max difference {w.max_difference:.1e} ({how})"]
