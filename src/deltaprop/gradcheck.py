"""Checking backpropagated gradients against finite differences.

The check runs on a float64 copy of the network (whatever its own dtype),
so the network's own running statistics are never touched. By default it
checks prediction mode (dropout off, BatchNorm on its running statistics);
``training=True`` checks training mode, where BatchNorm normalises with the
batch's own statistics (each row's output depends on the whole batch) and
dropout draws the same masks at every evaluation (a generator seeded afresh
each time). Either way the loss is a deterministic function of the parameters:

    L(p) = Σ_i s_i ℓ_i(p)     (s_i = 1/m, or w_i / Σw with sample weights)

Each parameter's derivative is estimated with a fourth-order central
difference,

    ∂L/∂p ≈ [8 (L(p + h) - L(p - h)) - (L(p + 2h) - L(p - 2h))] / (12 h),

whose truncation error is O(h⁴), so with ``h = 1e-5`` the estimate is limited
only by float64 rounding of ``L`` (about 1e-11 absolute for a loss of order 1).

The error reported for each block (a layer's ``W`` or ``b``) is

    max_i |g_i - d_i| / max(max_i |g_i|, max_i |d_i|, floor)

with ``g`` the backpropagated and ``d`` the finite-difference gradient: the
largest discrepancy relative to the block's largest gradient entry. The floor,
``1e-4 · max(1, |L|)``, keeps a block whose true gradient is zero or tiny (a
bias whose per-sample terms cancel, say) from reporting the finite
differences' rounding noise (about ``1e-16 |L| / h``, 1e-11 here) as a large
relative error: entries below it are judged in absolute terms, at 1e-10 for a
check at 1e-6.
"""

import numpy as np

__all__ = ["gradcheck", "directional_check", "numerical_gradient", "random_targets"]


def _prepare(network, X, y, sample_weight, training=False, seed=0):
    net = network.astype("float64")
    net.gradcheck_mode = (training, seed)
    X = net.check_X(X)
    Y = net.prepare_targets(y)
    scale = net.sample_scale(X.shape[0], sample_weight, net.dtype)
    return net, X, Y, scale


def _forward(net, X):
    """One forward pass in the check's mode: the same dropout masks every time in training mode."""
    training, seed = net.gradcheck_mode
    return net.forward(X, training=training, rng=np.random.default_rng(seed) if training else None)


def _loss(net, X, Y, scale):
    return net.batch_loss(_forward(net, X), Y, scale)


def numerical_gradient(network, X, y, sample_weight=None, h=1e-5, indices=None, training=False):
    """Fourth-order central-difference gradient of the mean loss (float64).

    Parameters
    ----------
    network : Network
    X : array-like of shape (m, n_in)
    y : array-like
        Targets in the loss's natural form.
    sample_weight : array-like of shape (m,), optional
    h : float
        Step.
    indices : array of int, optional
        Entries of the flat ``params`` to estimate (default: all).
    training : bool, default False
        Differentiate the training-mode loss (see the module notes).

    Returns
    -------
    ndarray of shape (n_params,)
        Estimated ``∂L/∂params`` (NaN where not estimated).
    """
    net, X, Y, scale = _prepare(network, X, y, sample_weight, training)
    return _numerical(net, X, Y, scale, h, indices)


def _numerical(net, X, Y, scale, h, indices):
    p = net.params
    out = np.full(p.shape, np.nan)
    idx = np.arange(p.size) if indices is None else np.asarray(indices)
    for i in idx:
        old = p[i]
        vals = []
        for k in (1, -1, 2, -2):
            p[i] = old + k * h
            vals.append(_loss(net, X, Y, scale))
        p[i] = old
        out[i] = (8.0 * (vals[0] - vals[1]) - (vals[2] - vals[3])) / (12.0 * h)
    return out


def gradcheck(network, X, y, sample_weight=None, h=1e-5, max_entries=None, seed=0, training=False):
    """Compare backpropagated gradients with float64 finite differences.

    Parameters
    ----------
    network : Network
        Checked through a float64 copy; the network itself is not changed.
    X : array-like of shape (m, n_in)
    y : array-like
        Targets in the loss's natural form.
    sample_weight : array-like of shape (m,), optional
    h : float, default 1e-5
        Finite-difference step.
    max_entries : int, optional
        Check at most this many randomly chosen entries per block (for
        large layers); default all.
    seed : int
        Chooses the entries when ``max_entries`` is set, and the dropout
        masks in training mode.
    training : bool, default False
        Check the training-mode gradient (BatchNorm's batch statistics,
        dropout with fixed masks); see the module notes.

    Returns
    -------
    list of dict
        One per layer: ``{"layer": l, name: error, ...}`` for each of its
        parameter blocks (``W`` and ``b`` of a Dense layer; ``gamma`` and
        ``beta`` of a norm; ``tables.{k}`` of an Embedding; a Residual
        block's as ``layers.{j}.{name}``), with the block errors defined in
        the module notes. A layer without parameters has the layer number alone.
    """
    net, X, Y, scale = _prepare(network, X, y, sample_weight, training, seed)
    _forward(net, X)
    loss = net.backward(Y, scale)
    backprop = net.grads.copy()
    floor = 1e-4 * max(1.0, abs(loss))
    rng = np.random.default_rng(seed)
    blocks, offset = [], 0  # (layer number, block name, indices into params)
    for layer_no, layer in enumerate(net.layers):
        for name, shape in layer.param_shapes().items():
            k = int(np.prod(shape))
            idx = np.arange(offset, offset + k)
            if max_entries is not None and idx.size > max_entries:
                idx = np.sort(rng.choice(idx, size=max_entries, replace=False))
            blocks.append((layer_no, name, idx))
            offset += k
    numeric = _numerical(net, X, Y, scale, h, np.concatenate([b[2] for b in blocks]) if blocks else [])
    report = [{"layer": i + 1} for i in range(len(net.layers))]
    for layer_no, name, idx in blocks:
        g, d = backprop[idx], numeric[idx]
        denom = max(np.max(np.abs(g), initial=0.0), np.max(np.abs(d), initial=0.0), floor)
        report[layer_no][name] = float(np.max(np.abs(g - d), initial=0.0) / denom)
    return report


def directional_check(network, X, y, sample_weight=None, h=1e-4, seed=0, training=False):
    """Random-direction check: ``⟨∇L, v⟩`` against the directional difference.

    For a random unit direction ``v`` in parameter space, compares the
    backpropagated ``⟨∇L, v⟩`` with ``[L(p + h v) - L(p - h v)] / 2h``
    (fourth-order, as in :func:`numerical_gradient`). Cheap for any size.

    Returns
    -------
    float
        ``|⟨∇L, v⟩ - D_v L| / max(|⟨∇L, v⟩|, |D_v L|, tiny)``.
    """
    net, X, Y, scale = _prepare(network, X, y, sample_weight, training, seed)
    _forward(net, X)
    net.backward(Y, scale)
    v = np.random.default_rng(seed).standard_normal(net.n_params)
    v /= np.linalg.norm(v)
    analytic = float(net.grads @ v)
    p0 = net.params.copy()
    vals = []
    for k in (1, -1, 2, -2):
        net.params[...] = p0 + k * h * v
        vals.append(_loss(net, X, Y, scale))
    net.params[...] = p0
    numeric = (8.0 * (vals[0] - vals[1]) - (vals[2] - vals[3])) / (12.0 * h)
    return abs(analytic - numeric) / max(abs(analytic), abs(numeric), np.finfo(np.float64).tiny)


def random_targets(loss_name, n_out, m, rng):
    """``m`` random targets in the loss's natural form, for a check on random rows.

    Class indices (m,) for categorical cross-entropy or a multi-output hinge;
    0/1 columns (m, n_out) for binary cross-entropy or a one-output hinge;
    standard-normal reals (m, n_out) for a regression loss.
    """
    if loss_name in ("categorical_crossentropy", "hinge") and n_out > 1:
        return rng.integers(0, n_out, size=m)
    if loss_name in ("binary_crossentropy", "hinge"):
        return rng.integers(0, 2, size=(m, n_out)).astype(np.float64)
    return rng.standard_normal((m, n_out))
