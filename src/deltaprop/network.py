"""The network: a stack of Dense layers on one flat parameter store.

Every ``W`` and ``b`` lives in one contiguous 1-D array, ``params``; each
layer's ``W`` and ``b`` are reshaped views into it, in layer order
(``W1, b1, W2, b2, ...``). ``grads`` has the same layout and is overwritten by
each backward pass. An optimizer step is a few vectorised operations over
``params`` whatever the depth; a checkpoint is one array.
"""

import numpy as np

from . import losses as _losses
from .errors import DataError, InvalidArgumentError, InvalidTypeError, describe
from .layers import Dense

__all__ = ["Network", "resolve_dtype"]

_DTYPES = {"float32": np.float32, "float64": np.float64}


def resolve_dtype(dtype):
    """``"float32"``/``"float64"`` (or the NumPy types) -> ``np.dtype``; anything else is an error."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise InvalidTypeError(f"dtype must be 'float32' or 'float64', got {describe(dtype)}") from None
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise InvalidArgumentError(f"dtype must be 'float32' or 'float64', got {describe(dtype)}")
    return dt


def _default_loss(activation):
    return {
        "softmax": "categorical_crossentropy",
        "sigmoid": "binary_crossentropy",
    }.get(getattr(activation, "name", None), "mean_squared_error")


class Network:
    r"""A feedforward network trained by backpropagation.

    For ``l = 1..L`` and a batch ``X`` of shape ``(m, n_in)`` (samples are rows):

    .. math::
        Z_l = A_{l-1} W_l^T + b_l,\quad A_l = σ_l(Z_l),\quad A_0 = X

        Δ_L = ∂L/∂A_L ⊙ σ_L'(Z_L),\quad Δ_l = (Δ_{l+1} W_{l+1}) ⊙ σ_l'(Z_l)

        ∂L/∂W_l = Δ_l^T A_{l-1},\quad ∂L/∂b_l = Σ_{rows} Δ_l

    The batch loss is the (weighted) mean of the per-sample losses, its 1/m
    folded into ``Δ_L``.

    Parameters
    ----------
    layers : list of Dense
        ``layers[i].n_out`` must equal ``layers[i + 1].n_in``.
    loss : str, dict or Loss, optional
        Default: categorical cross-entropy for a softmax output, binary
        cross-entropy for a sigmoid output, mean squared error otherwise.
    dtype : {"float32", "float64"}, default "float32"
        Dtype of parameters, gradients, workspaces and outputs.
    seed : int or numpy.random.Generator, optional
        The run's random source: initial weights here, then shuffling and
        dropout masks in :meth:`fit`. Same seed, data and thread count give
        bit-identical weights.

    Attributes
    ----------
    params : ndarray of shape (n_params,)
        All weights and biases.
    grads : ndarray of shape (n_params,)
        Gradient of the batch loss with respect to ``params``.
    rng : numpy.random.Generator
    """

    def __init__(self, layers, loss=None, dtype="float32", seed=None):
        if isinstance(layers, Dense):
            layers = [layers]
        if not isinstance(layers, (list, tuple)) or not layers:
            raise InvalidArgumentError(f"layers must be a non-empty list of Dense layers, got {describe(layers)}")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Dense):
                raise InvalidTypeError(f"layers[{i}] must be a Dense layer, got {describe(layer)}")
        for i in range(len(layers) - 1):
            if layers[i].n_out != layers[i + 1].n_in:
                raise InvalidArgumentError(
                    f"layer sizes do not chain: layers[{i}] has n_out={layers[i].n_out} but "
                    f"layers[{i + 1}] has n_in={layers[i + 1].n_in}"
                )
        if layers[-1].dropout:
            raise InvalidArgumentError(
                f"dropout on the output layer would drop predictions; got dropout={layers[-1].dropout} on the last layer"
            )
        self.layers = list(layers)
        self.loss = _losses.get(_default_loss(self.layers[-1].activation) if loss is None else loss)
        self.dtype = resolve_dtype(dtype)
        if isinstance(seed, np.random.Generator):
            self.rng = seed
        elif seed is None or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0):
            self.rng = np.random.default_rng(seed)
        else:
            raise InvalidArgumentError(f"seed must be a non-negative integer or a numpy Generator, got {describe(seed)}")
        n = sum(layer.n_params for layer in self.layers)
        self.params = np.zeros(n, dtype=self.dtype)
        self.grads = np.zeros(n, dtype=self.dtype)
        self._bind()
        for layer in self.layers:
            layer.initialize(self.rng)
        self._delta_buf = None

    def __setstate__(self, state):
        # copy.deepcopy (and scikit-learn's clone of a fitted estimator) copy
        # params and each layer's W/b as separate arrays: make the layers'
        # W, b, grad_W, grad_b views of the copied flat store again.
        self.__dict__.update(state)
        self._bind()

    def _bind(self):
        offset = 0
        for layer in self.layers:
            k = layer.n_params
            layer.bind(self.params[offset:offset + k], self.grads[offset:offset + k])
            offset += k

    # ------------------------------------------------------------------ shape
    @property
    def n_in(self):
        return self.layers[0].n_in

    @property
    def n_out(self):
        return self.layers[-1].n_out

    @property
    def n_params(self):
        return self.params.size

    def weight_mask(self):
        """1 where ``params`` holds a weight, 0 where it holds a bias (for weight decay)."""
        mask = np.zeros(self.n_params, dtype=self.dtype)
        offset = 0
        for layer in self.layers:
            mask[offset:offset + layer.n_out * layer.n_in] = 1
            offset += layer.n_params
        return mask

    def flops_per_sample(self):
        """Floating-point operations of one training step per sample: ``6 Σ n_in n_out``.

        Forward ``2 n_in n_out``, ``grad_W`` ``2 n_in n_out``, input delta
        ``2 n_in n_out`` (skipped for the first layer).
        """
        total = 0
        for i, layer in enumerate(self.layers):
            total += (4 if i == 0 else 6) * layer.n_in * layer.n_out
        return total

    # --------------------------------------------------------------- checking
    def _check_X(self, X, name="X"):
        X = np.asarray(X)
        if X.dtype.kind not in "biuf":
            raise InvalidTypeError(f"{name} must be a numeric array, got dtype {X.dtype}")
        if X.ndim == 1 and self.n_in == 1:
            X = X.reshape(-1, 1)
        if X.ndim != 2:
            hint = " (use X.reshape(-1, 1) for a single feature)" if X.ndim == 1 else ""
            raise DataError(f"{name} must be 2-D (n_samples, n_features), got shape {X.shape}{hint}")
        if X.shape[1] != self.n_in:
            raise DataError(f"{name} has {X.shape[1]} features but the network expects {self.n_in}")
        if X.shape[0] == 0:
            raise DataError(f"{name} has 0 samples")
        X = np.ascontiguousarray(X, dtype=self.dtype)
        if not np.isfinite(X).all():
            bad = np.argwhere(~np.isfinite(X))[0]
            raise DataError(
                f"{name} contains NaN or infinity ({int(np.count_nonzero(~np.isfinite(X)))} values; "
                f"first at row {bad[0]}, column {bad[1]})"
            )
        return X

    def prepare_targets(self, y):
        """Targets in the loss's natural form -> a ``(m, n_out)`` array of the network's dtype."""
        return self.loss.prepare_targets(y, self.n_out, self.dtype)

    @staticmethod
    def sample_scale(m, sample_weight, dtype):
        """Weights ``s_i`` with ``Σ s_i = 1``: ``1/m``, or ``w_i / Σ w`` (shape (m, 1))."""
        if sample_weight is None:
            return dtype.type(1.0 / m)
        w = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
        if w.shape[0] != m:
            raise DataError(f"sample_weight has {w.shape[0]} entries for {m} samples")
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise DataError("sample_weight must be finite and non-negative")
        total = w.sum()
        if total <= 0:
            raise DataError("sample_weight sums to 0: no sample would count")
        return (w / total).astype(dtype).reshape(-1, 1)

    # ----------------------------------------------------------------- passes
    def forward(self, X, training=False, rng=None, mask_rows=None):
        """Forward pass over a batch; returns the output activations.

        Parameters
        ----------
        X : ndarray of shape (m, n_in)
            C-contiguous, the network's dtype (use :meth:`predict` for
            arbitrary input).
        training : bool
            Apply dropout, with masks from ``rng`` (default: ``self.rng``).
        mask_rows : (start, total), optional
            For data-parallel training: this batch is rows ``start:start+m``
            of a global batch of ``total`` rows (see :meth:`Dense.forward`).

        Returns
        -------
        ndarray of shape (m, n_out)
            A view into the last layer's workspace, overwritten by the next pass.
        """
        rng = self.rng if rng is None else rng
        a = X
        for i, layer in enumerate(self.layers):
            a = layer.forward(a, training=training, rng=rng, need_input_grad=i > 0, mask_rows=mask_rows)
        return a

    def batch_loss(self, a, Y, scale):
        """The batch loss ``L = Σ s_i ℓ_i`` of outputs ``a`` against prepared targets ``Y``.

        ``scale`` is :meth:`sample_scale`'s: ``1/m`` or a ``(m, 1)`` column of ``w_i / Σw``.
        """
        per_sample = self.loss.value(a, Y)
        if isinstance(scale, np.ndarray) and scale.ndim:
            return float(per_sample @ scale[:, 0])
        return float((per_sample * scale).sum())

    def backward(self, Y, scale):
        """Backward pass after :meth:`forward`; fills ``grads`` and returns the batch loss.

        Parameters
        ----------
        Y : ndarray of shape (m, n_out)
            Prepared targets (see :meth:`prepare_targets`).
        scale : float or ndarray of shape (m, 1)
            Per-sample weights summing to 1 (see :meth:`sample_scale`).
        """
        out_layer = self.layers[-1]
        a, z = out_layer.a, out_layer.z
        m = a.shape[0]
        if self._delta_buf is None or self._delta_buf.shape[0] < m or self._delta_buf.dtype != a.dtype:
            self._delta_buf = np.empty((m, self.n_out), dtype=a.dtype)
        delta = self._delta_buf[:m]
        loss = self.batch_loss(a, Y, scale)
        act_name = getattr(out_layer.activation, "name", None)
        if act_name is not None and act_name == getattr(self.loss, "canonical_activation", None):
            # Canonical pair: ∂ℓ/∂z directly (a - y up to a constant), exact and overflow-free.
            self.loss.fused_delta(a, Y, delta)
        else:
            np.copyto(delta, self.loss.gradient(a, Y))
            out_layer.activation.backward(z, a, delta, delta)
        delta *= scale  # fold in the 1/m (or w_i / Σw) of the mean loss
        n = len(self.layers)
        g = out_layer.backward_delta(delta, need_input_grad=n > 1)
        for i in range(n - 2, -1, -1):
            g = self.layers[i].backward(g, need_input_grad=i > 0)
        return loss

    def loss_and_gradients(self, X, y, sample_weight=None, training=True):
        """Forward and backward pass: fills ``grads`` and returns the mean loss.

        Parameters
        ----------
        X : array-like of shape (m, n_in)
        y : array-like
            Targets in the loss's natural form (class indices or one-hot rows
            for categorical cross-entropy, 0/1 for binary cross-entropy, real
            values for regression losses).
        sample_weight : array-like of shape (m,), optional
            The loss becomes ``Σ w_i ℓ_i / Σ w_i``.
        training : bool, default True
            Apply dropout (as during training).

        Returns
        -------
        float
            The batch loss (weighted mean of the per-sample losses).
        """
        X = self._check_X(X)
        Y = self.prepare_targets(y)
        if Y.shape[0] != X.shape[0]:
            raise DataError(f"X has {X.shape[0]} samples but y has {Y.shape[0]}")
        self.forward(X, training=training)
        return self.backward(Y, self.sample_scale(X.shape[0], sample_weight, self.dtype))

    def predict(self, X, batch_size=4096):
        """Output activations for ``X`` (dropout off).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_in)
        batch_size : int
            Rows per forward pass, to bound memory on large inputs.

        Returns
        -------
        ndarray of shape (n_samples, n_out), the network's dtype
        """
        X = np.asarray(X)
        n = X.shape[0] if X.ndim >= 1 else 0
        out = np.empty((n, self.n_out), dtype=self.dtype)
        if n == 0:
            self._check_X(X)  # raises the zero-sample error
        for start in range(0, n, batch_size):
            chunk = self._check_X(X[start:start + batch_size])
            out[start:start + chunk.shape[0]] = self.forward(chunk, training=False)
        return out

    def fit(self, X, y, **kwargs):
        """Train the network; see :func:`deltaprop.training.fit` for the arguments."""
        from .training import fit

        return fit(self, X, y, **kwargs)

    def evaluate(self, X, y, **kwargs):
        """Loss and metrics on ``(X, y)``, weights untouched; see :func:`deltaprop.training.evaluate`."""
        from .training import evaluate

        return evaluate(self, X, y, **kwargs)

    # ---------------------------------------------------------------- config
    def get_config(self):
        loss = self.loss
        return {
            "layers": [layer.get_config() for layer in self.layers],
            "loss": loss.get_config() if hasattr(loss, "get_config") else {"name": getattr(loss, "name", repr(loss))},
            "dtype": self.dtype.name,
        }

    @classmethod
    def from_config(cls, config, seed=None):
        """Rebuild an (initialised) network from :meth:`get_config` output."""
        layers = [
            Dense(c["n_in"], c["n_out"], activation=c["activation"], initializer=c.get("initializer"),
                  dropout=c.get("dropout", 0.0))
            for c in config["layers"]
        ]
        return cls(layers, loss=config["loss"], dtype=config.get("dtype", "float32"), seed=seed)

    def summary(self):
        """A short text table of the layers and parameter counts."""
        lines = [f"{'layer':<8}{'shape':>14}  {'activation':<12}{'params':>10}"]
        for i, layer in enumerate(self.layers):
            name = getattr(layer.activation, "name", type(layer.activation).__name__)
            drop = f" dropout={layer.dropout}" if layer.dropout else ""
            lines.append(f"{i + 1:<8}{f'{layer.n_in}->{layer.n_out}':>14}  {name:<12}{layer.n_params:>10}{drop}")
        lines.append(f"loss: {getattr(self.loss, 'name', self.loss)}, dtype: {self.dtype.name}, "
                     f"parameters: {self.n_params}")
        return "\n".join(lines)

    def __repr__(self):
        sizes = "-".join(str(s) for s in [self.n_in] + [layer.n_out for layer in self.layers])
        return f"Network({sizes}, loss={getattr(self.loss, 'name', self.loss)!r}, dtype={self.dtype.name!r})"
