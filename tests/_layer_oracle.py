"""An independent forward pass for networks of every layer kind, written in ``autograd.numpy``.

It reads nothing of deltaprop's but a network's ``get_config()`` (plain data)
and its flat ``params`` and ``buffers`` arrays, and computes the batch loss
from the layers' definitions:

- Dense: ``σ(x Wᵀ + b)``; the flat store holds ``Wᵀ`` (shape ``(n_in, n_out)``)
  in C order, then ``b``; inverted dropout when training.
- LayerNorm: ``γ (x − μ_row) / sqrt(σ²_row + ε) + β`` (biased variance).
- BatchNorm: the same over the batch's rows when training; with the running
  mean and variance (the flat ``buffers``: ``running_mean`` then
  ``running_var``) otherwise.
- Embedding: the numeric columns in input order, then ``T_k[c_k]`` for each
  coded column, written as the product ``onehot(c_k) @ T_k``.
- Residual: ``x + F(x)``; Dropout: ``x ⊙ M / (1 − p)``; Activation: ``σ(x)``.
- Losses: categorical cross-entropy (sum over classes), binary cross-entropy
  and mean squared error (means over outputs), each a mean over the batch.

Dropout masks: a mask is 1 where ``u < 1 − p`` for ``u`` drawn by
``rng.random((m, width))``, in forward order (a Dense layer draws after its
activation, a Residual's layers in order), from a generator the caller
seeds exactly as it seeded deltaprop's pass.
"""

import math

import autograd.numpy as anp
import numpy as np

_GELU_C = math.sqrt(2.0 / math.pi)


def act(spec, z):
    """σ(z) for an activation config ``{"name": ..., hyperparameters}``, in autograd's NumPy."""
    name = spec["name"]
    if name == "identity":
        return z
    if name == "sigmoid":
        return 1.0 / (1.0 + anp.exp(-z))
    if name == "tanh":
        return anp.tanh(z)
    if name == "relu":
        return anp.where(z > 0, z, 0.0 * z)
    if name == "leaky_relu":
        return anp.where(z > 0, z, spec.get("alpha", 0.01) * z)
    if name == "elu":
        return anp.where(z > 0, z, spec.get("alpha", 1.0) * (anp.exp(anp.minimum(z, 0.0)) - 1.0))
    if name == "gelu":
        return 0.5 * z * (1.0 + anp.tanh(_GELU_C * (z + 0.044715 * z ** 3)))
    if name == "softplus":
        return anp.log(1.0 + anp.exp(z))
    if name == "softmax":
        e = anp.exp(z - anp.max(z, axis=1, keepdims=True))
        return e / anp.sum(e, axis=1, keepdims=True)
    raise KeyError(name)


class _Cursor:
    """Reads consecutive blocks of a flat array."""

    def __init__(self, flat):
        self.flat, self.at = flat, 0

    def take(self, shape):
        k = int(np.prod(shape))
        block = anp.reshape(self.flat[self.at:self.at + k], shape)
        self.at += k
        return block


def _mask(rng, m, width, p):
    keep = 1.0 - p
    return (rng.random((m, width)) < keep).astype(np.float64) * (1.0 / keep)


def _forward_layers(configs, x, params, buffers, training, rng):
    for cfg in configs:
        x = _forward_layer(cfg, x, params, buffers, training, rng)
    return x


def _forward_layer(cfg, x, params, buffers, training, rng):
    kind = cfg.get("type", "Dense").lower()
    m, width = x.shape
    if kind == "dense":
        n_in, n_out = cfg["n_in"], cfg["n_out"]
        assert n_in == width, (cfg, width)
        w_t = params.take((n_in, n_out))       # Wᵀ, as the flat store holds it
        b = params.take((n_out,))
        a = act(cfg["activation"], anp.dot(x, w_t) + b)
        if training and cfg.get("dropout", 0.0):
            a = a * _mask(rng, m, n_out, cfg["dropout"])
        return a
    if kind == "layernorm":
        gamma, beta = params.take((width,)), params.take((width,))
        mu = anp.mean(x, axis=1, keepdims=True)
        var = anp.mean((x - mu) ** 2, axis=1, keepdims=True)
        return gamma * (x - mu) / anp.sqrt(var + cfg["eps"]) + beta
    if kind == "batchnorm":
        gamma, beta = params.take((width,)), params.take((width,))
        running_mean, running_var = buffers.take((width,)), buffers.take((width,))
        if training:
            mu = anp.mean(x, axis=0)
            var = anp.mean((x - mu) ** 2, axis=0)
        else:
            mu, var = running_mean, running_var
        return gamma * (x - mu) / anp.sqrt(var + cfg["eps"]) + beta
    if kind == "embedding":
        columns = cfg["columns"]
        coded = [c[0] for c in columns]
        numeric = [j for j in range(width) if j not in coded]
        parts = [x[:, numeric]] if numeric else []
        for index, n_cat, dim in columns:
            table = params.take((n_cat, dim))
            codes = np.asarray(x[:, index], dtype=np.float64)
            onehot = (codes[:, None] == np.arange(n_cat)[None, :]).astype(np.float64)
            assert np.all(onehot.sum(axis=1) == 1.0), "codes must be in range"
            parts.append(anp.dot(onehot, table))
        return anp.concatenate(parts, axis=1)
    if kind == "residual":
        return x + _forward_layers(cfg["layers"], x, params, buffers, training, rng)
    if kind == "dropout":
        if training and cfg["p"]:
            return x * _mask(rng, m, width, cfg["p"])
        return x
    if kind == "activation":
        return act(cfg["activation"], x)
    raise KeyError(kind)


def _loss(name, a_pre, out_act, Y):
    """Mean over the batch of the per-sample loss, from the output layer's pre-activation ``a_pre``."""
    if name == "categorical_crossentropy":
        assert out_act == "softmax"
        z = a_pre - anp.max(a_pre, axis=1, keepdims=True)
        log_p = z - anp.log(anp.sum(anp.exp(z), axis=1, keepdims=True))
        return -anp.mean(anp.sum(Y * log_p, axis=1))
    if name == "binary_crossentropy":
        assert out_act == "sigmoid"
        # log σ(z) = −log(1 + e^{−z}), log(1 − σ(z)) = −log(1 + e^{z})
        log_a = -anp.log(1.0 + anp.exp(-a_pre))
        log_1a = -anp.log(1.0 + anp.exp(a_pre))
        return -anp.mean(anp.mean(Y * log_a + (1.0 - Y) * log_1a, axis=1))
    if name == "mean_squared_error":
        assert out_act == "identity"
        return anp.mean(anp.mean((a_pre - Y) ** 2, axis=1))
    raise KeyError(name)


def oracle_loss(config, flat_params, X, Y, training, buffers=None, seed=0):
    """The batch loss of the network ``config`` (``get_config()``) at ``flat_params``.

    ``Y`` is the targets as an ``(m, n_out)`` float array (one-hot rows for
    categorical cross-entropy). ``buffers`` is the network's flat running
    statistics; ``seed`` seeds the generator the dropout masks are drawn
    from in training mode. Differentiable in ``flat_params`` with autograd.
    """
    layers = config["layers"]
    params = _Cursor(flat_params)
    bufs = _Cursor(np.zeros(0) if buffers is None else np.asarray(buffers, dtype=np.float64))
    rng = np.random.default_rng(seed)
    x = np.asarray(X, dtype=np.float64)
    x = _forward_layers(layers[:-1], x, params, bufs, training, rng)
    out = dict(layers[-1])
    out_act = out["activation"]["name"]
    out["activation"] = {"name": "identity"}            # the loss takes the pre-activation (log-domain, stable)
    z = _forward_layer(out, x, params, bufs, training, rng)
    assert params.at == flat_params.shape[0], "every parameter read exactly once"
    assert bufs.at == len(bufs.flat), "every buffer read exactly once"
    return _loss(config["loss"]["name"], z, out_act, np.asarray(Y, dtype=np.float64))
