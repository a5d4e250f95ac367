"""Shared helpers for the core tests: names, random architectures, kink-free data, an autograd oracle.

Everything here is deterministic: every random draw comes from a
``numpy.random.default_rng(seed)`` passed explicitly.

Kinks. ReLU-like activations (relu, leaky_relu, elu), the absolute error,
Huber's switch point and the hinge margin are not smooth everywhere. A finite
difference taken across a kink, or two implementations choosing different
one-sided derivatives at it, would make a correct gradient look wrong, so the
data built here keeps every such quantity at least ``KINK_MARGIN`` away from
its kink and :func:`kink_distance` lets a test assert that precondition.
"""

import math

import numpy as np
import pytest

import deltaprop as dp

ACTIVATIONS = ["identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu", "softplus", "softmax"]
LOSSES = [
    "mean_squared_error",
    "mean_absolute_error",
    "huber",
    "binary_crossentropy",
    "categorical_crossentropy",
    "hinge",
]
#: activations with a kink at z = 0 (ELU's second derivative jumps there)
KINKED = {"relu", "leaky_relu", "elu"}
KINK_MARGIN = 1e-3


def compatible(output, loss):
    """Whether ``loss`` is defined for every value the ``output`` activation can produce.

    Cross-entropies take logarithms of the outputs: binary needs ``a`` in
    (0, 1) (sigmoid, softmax), categorical needs ``a > 0`` (also softplus).
    Every other loss accepts any real output.
    """
    if loss == "binary_crossentropy":
        return output in ("sigmoid", "softmax")
    if loss == "categorical_crossentropy":
        return output in ("sigmoid", "softmax", "softplus")
    return True


def out_sizes(output, loss):
    """Output widths worth testing for a pair: one output (binary forms) and several."""
    sizes = []
    if output != "softmax" and loss != "categorical_crossentropy":
        sizes.append(1)  # softmax of one unit is the constant 1; CCE needs classes
    sizes.append(3)
    return sizes


#: every (output activation, loss, n_out) that is defined
OUTPUT_LOSS_CASES = [
    (o, l, k) for o in ACTIVATIONS for l in LOSSES if compatible(o, l) for k in out_sizes(o, l)
]


def build_network(n_in, hidden, output, n_out, loss, dtype="float64", seed=0, dropout=0.0):
    """``hidden`` is a list of ``(width, activation)``; returns a seeded ``dp.Network``."""
    layers, prev = [], n_in
    for width, act in hidden:
        layers.append(dp.Dense(prev, width, activation=act, dropout=dropout))
        prev = width
    layers.append(dp.Dense(prev, n_out, activation=output))
    return dp.Network(layers, loss=loss, dtype=dtype, seed=seed)


def random_hidden(rng, max_layers=4, max_width=17, activations=None):
    """1 to ``max_layers`` hidden layers of widths 1 to ``max_width``, random activations.

    A softmax layer gets at least 2 units (softmax of one unit is the
    constant 1, which would cut every earlier layer's gradient to zero).
    """
    acts = ACTIVATIONS if activations is None else activations
    n_layers = int(rng.integers(1, max_layers + 1))
    hidden = []
    for _ in range(n_layers):
        act = str(rng.choice(acts))
        width = int(rng.integers(2 if act == "softmax" else 1, max_width + 1))
        hidden.append((width, act))
    return hidden


def forward_all(net, X):
    """Pre-activations ``Z_l`` and outputs ``A_l`` of every layer, in float64 NumPy (no dropout).

    Our activations are evaluated from their definitions (:func:`np_activation`),
    independently of deltaprop's code.
    """
    zs, activations = [], []
    a = np.asarray(X, dtype=np.float64)
    for layer in net.layers:
        z = a @ layer.W.T.astype(np.float64) + layer.b.astype(np.float64)
        name = getattr(layer.activation, "name", None)
        # a user's own activation (not one of ours) is evaluated by its own forward
        a = np_activation(name, z) if name in ACTIVATIONS else layer.activation.forward(z, np.empty_like(z))
        zs.append(z)
        activations.append(a)
    return zs, activations


def np_activation(name, z):
    """Plain NumPy σ from its definition (for moderate ``z``)."""
    if name == "identity":
        return z
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "leaky_relu":
        return np.where(z > 0, z, 0.01 * z)
    if name == "elu":
        return np.where(z > 0, z, np.expm1(np.minimum(z, 0.0)))
    if name == "gelu":
        return 0.5 * z * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (z + 0.044715 * z**3)))
    if name == "softplus":
        return np.log1p(np.exp(z))
    if name == "softmax":
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    raise KeyError(name)


def one_hot(idx, k):
    out = np.zeros((len(idx), k))
    out[np.arange(len(idx)), idx] = 1.0
    return out


def kink_distance(net, X, y):
    """Smallest distance of any kinked quantity from its kink (``inf`` when there is none).

    Covers pre-activations of relu / leaky_relu / elu layers, ``a - y`` for
    the absolute error, ``|a - y| - δ`` for Huber, the hinge margin and the
    gap between the two largest wrong-class scores (multi-class hinge).
    """
    zs, acts = forward_all(net, X)
    dist = math.inf
    for layer, z in zip(net.layers, zs):
        if layer.activation.name in KINKED:
            dist = min(dist, float(np.abs(z).min()))
    a = acts[-1]
    name = net.loss.name
    Y = net.prepare_targets(y).astype(np.float64)
    if name == "mean_absolute_error":
        dist = min(dist, float(np.abs(a - Y).min()))
    elif name == "huber":
        dist = min(dist, float(np.abs(np.abs(a - Y) - net.loss.delta).min()))
    elif name == "hinge":
        if a.shape[1] == 1:
            dist = min(dist, float(np.abs(1.0 - (2.0 * Y - 1.0) * a).min()))
        else:
            true = (a * Y).sum(axis=1)
            wrong = np.sort(np.where(Y > 0, -np.inf, a), axis=1)
            dist = min(dist, float(np.abs(1.0 + wrong[:, -1] - true).min()))
            if a.shape[1] > 2:
                gap = wrong[:, -1] - wrong[:, -2]
                # two wrong classes tied at a relu's flat 0 are no kink: neither moves
                flat = (wrong[:, -1] == 0.0) & (wrong[:, -2] == 0.0) & (net.layers[-1].activation.name == "relu")
                dist = min(dist, float(gap[~flat].min(initial=math.inf)))
    return dist


def make_targets(net, X, rng):
    """Targets in the loss's natural form, away from the loss's kinks at the network's output."""
    name, n_out = net.loss.name, net.n_out
    m = X.shape[0]
    _, acts = forward_all(net, X)
    a = acts[-1]
    sign = np.where(rng.random(a.shape) < 0.5, -1.0, 1.0)
    if name == "mean_squared_error":
        return a + rng.normal(0.0, 0.5, size=a.shape)
    if name == "mean_absolute_error":
        # a - y > 0 in even columns, < 0 in odd ones: both signs, and a sum of
        # signs over the samples that can never cancel to an exact zero
        col_sign = np.where(np.arange(n_out) % 2 == 0, 1.0, -1.0)
        return a - col_sign * rng.uniform(0.05, 0.5, size=a.shape)
    if name == "huber":
        # both branches: |r| in [0.1, 0.8] (squared) or [1.2, 2] (linear)
        far = rng.random(a.shape) < 0.5
        mag = np.where(far, rng.uniform(1.2, 2.0, size=a.shape), rng.uniform(0.1, 0.8, size=a.shape))
        return a + sign * mag * net.loss.delta
    if name == "binary_crossentropy":
        y = rng.integers(0, 2, size=(m, n_out)).astype(np.float64)
        return y[:, 0] if n_out == 1 else y
    if name in ("categorical_crossentropy", "hinge"):
        if n_out == 1:
            return rng.integers(0, 2, size=m).astype(np.float64)
        return rng.integers(0, n_out, size=m)
    raise KeyError(name)


#: every W and b block of a gradient test has an entry at least this large, so that
#: float64 finite-difference rounding (about 1e-11 absolute) is far below 1e-6 of it
GRADIENT_FLOOR = 1e-4


def smallest_block_gradient(net, X, y, sample_weight=None):
    """The smallest over blocks (each layer's W and b) of the block's largest |gradient| entry.

    Data on which some block's gradient is zero or tiny (a sum of ±1/m that
    cancels exactly, as the hinge or absolute error can give, or a dead ReLU
    layer) tests nothing there and makes a relative error meaningless.
    """
    saved = net.grads.copy()
    net.loss_and_gradients(X, y, sample_weight=sample_weight, training=False)
    smallest = min(min(np.abs(layer.grad_W).max(), np.abs(layer.grad_b).max()) for layer in net.layers)
    net.grads[...] = saved
    return float(smallest)


def make_problem(hidden, output, n_out, loss, seed=0, n_in=3, m=6, dtype="float64", x_scale=1.0,
                 floor=GRADIENT_FLOOR):
    """A network and data ``(net, X, y)``: kinked quantities ≥ ``KINK_MARGIN`` from their kinks,
    and every gradient block ≥ ``floor`` (see :func:`smallest_block_gradient`).

    Tries successive network and data seeds derived from ``seed`` until both hold (they
    almost always hold at the first try); tests assert them again.
    """
    for attempt in range(50):
        net = build_network(n_in, hidden, output, n_out, loss, dtype=dtype, seed=1000 * seed + attempt)
        rng = np.random.default_rng([seed, attempt])
        # Non-zero biases: with the initial zeros, a sample whose previous
        # ReLU layer is all dead would sit exactly on the next layer's kink.
        for layer in net.layers:
            layer.b[...] = rng.normal(0.0, 0.2, size=layer.b.shape)
        X = rng.normal(0.0, x_scale, size=(m, n_in))
        y = make_targets(net, X, rng)
        if kink_distance(net, X, y) >= KINK_MARGIN and smallest_block_gradient(net, X, y) >= floor:
            return net, X, y
    pytest.fail(f"no kink-free, non-degenerate data found for {hidden}, {output}, {loss} (seed {seed})")


# --------------------------------------------------------------------------- autograd oracle


def autograd_loss_fn(net, X, y, sample_weight=None):
    """The mean loss as a function of ``[(W1, b1), ...]``, written in ``autograd.numpy``.

    Independent of deltaprop's own code: each activation and loss is written
    from its definition (losses: mean over the batch, or ``Σ w_i ℓ_i / Σ w_i``;
    MSE/MAE/Huber/BCE also a mean over outputs; CCE a sum over classes; hinge
    Crammer–Singer for several outputs, ``max(0, 1 - (2y-1) a)`` for one;
    GELU in its tanh form).
    """
    import autograd.numpy as anp

    acts = [layer.activation.name for layer in net.layers]
    loss = net.loss.name
    delta = getattr(net.loss, "delta", 1.0)
    n_out = net.n_out
    X = np.asarray(X, dtype=np.float64)
    m = X.shape[0]
    y = np.asarray(y)
    if loss in ("categorical_crossentropy", "hinge") and n_out > 1:
        Y = one_hot(y.astype(np.int64).reshape(-1), n_out)
    else:
        Y = y.astype(np.float64).reshape(m, n_out)
    if sample_weight is None:
        s = np.full(m, 1.0 / m)
    else:
        w = np.asarray(sample_weight, dtype=np.float64)
        s = w / w.sum()
    from _layer_oracle import act  # the one autograd transcription of the activations

    def sigma(name, z):
        return act({"name": name}, z)

    def per_sample(a):
        if loss == "mean_squared_error":
            return anp.mean((a - Y) ** 2, axis=1)
        if loss == "mean_absolute_error":
            return anp.mean(anp.abs(a - Y), axis=1)
        if loss == "huber":
            r = anp.abs(a - Y)
            return anp.mean(anp.where(r <= delta, 0.5 * r**2, delta * (r - 0.5 * delta)), axis=1)
        if loss == "binary_crossentropy":
            return -anp.mean(Y * anp.log(a) + (1.0 - Y) * anp.log(1.0 - a), axis=1)
        if loss == "categorical_crossentropy":
            return -anp.sum(Y * anp.log(a), axis=1)
        if loss == "hinge":
            if n_out == 1:
                return anp.maximum(0.0, 1.0 - (2.0 * Y[:, 0] - 1.0) * a[:, 0])
            true = anp.sum(a * Y, axis=1)
            wrong = anp.max(a - 1e6 * Y, axis=1)  # the largest score among the wrong classes
            return anp.maximum(0.0, 1.0 + wrong - true)
        raise KeyError(loss)

    def f(params):
        a = X
        for (W, b), name in zip(params, acts):
            a = sigma(name, anp.dot(a, W.T) + b)
        return anp.sum(s * per_sample(a))

    return f


def autograd_gradients(net, X, y, sample_weight=None):
    """``(loss, [(grad_W, grad_b), ...])`` from autograd at the network's current parameters (float64)."""
    from autograd import value_and_grad

    f = autograd_loss_fn(net, X, y, sample_weight)
    params = [(np.array(layer.W, dtype=np.float64), np.array(layer.b, dtype=np.float64)) for layer in net.layers]
    value, grads = value_and_grad(f)(params)
    return float(value), grads


def block_rel_error(g, ref):
    """``max |g - ref| / max(max |g|, max |ref|)``; 0 when both are exactly zero."""
    g = np.asarray(g, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    denom = max(np.abs(g).max(initial=0.0), np.abs(ref).max(initial=0.0))
    diff = np.abs(g - ref).max(initial=0.0)
    if denom == 0.0:
        return 0.0 if diff == 0.0 else math.inf
    return float(diff / denom)


def central_difference(net, X, y, h=1e-6, sample_weight=None):
    """A deliberately simple second-order central difference of the loss over every entry of ``net.params``.

    Uses only ``net.params`` and ``net.loss_and_gradients(...)`` (for the
    loss value); restores the parameters afterwards.
    """
    p = net.params
    out = np.empty(p.size)
    saved = p.copy()
    for i in range(p.size):
        p[i] = saved[i] + h
        up = net.loss_and_gradients(X, y, sample_weight=sample_weight, training=False)
        p[i] = saved[i] - h
        down = net.loss_and_gradients(X, y, sample_weight=sample_weight, training=False)
        p[i] = saved[i]
        out[i] = (up - down) / (2.0 * h)
    p[...] = saved
    return out


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="module")
def one_blas_thread():
    """Small matrices: one BLAS thread is faster, and steady on a shared machine (``pytestmark = usefixtures``)."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(limits=1):
        yield
