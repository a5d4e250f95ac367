"""The network's math: a stack of layers on one flat parameter store.

Every ``W`` and ``b`` lives in one contiguous 1-D array, ``params``; each
layer's ``W`` and ``b`` are reshaped views into it, in layer order
(``W1, b1, W2, b2, ...``). ``grads`` has the same layout and is overwritten by
each backward pass. An optimizer step is a few vectorised operations over
``params`` whatever the depth; a checkpoint is one array.

:class:`FeedForward` is the math alone: forward, backward, prediction and
configuration. It knows no training loop; :class:`deltaprop.Network` (in
:mod:`deltaprop.model`) adds ``fit`` and ``evaluate`` on top of it, the way
Keras composes ``Model(Trainer, Layer)``.
"""

import numpy as np

from . import losses as _losses
from .checks import check_array, check_dtype, check_sample_weight, sample_scale
from .errors import DataError, InvalidArgumentError, InvalidTypeError, describe
from .layers import Dense
from .sparse import as_input

__all__ = ["FeedForward", "resolve_dtype"]

#: ``check_dtype`` under its old name: ``"float32"``/``"float64"`` -> ``np.dtype``.
resolve_dtype = check_dtype


def _per_layer(value, n, name, layers="hidden layer(s)"):
    """One value for every layer, or a list/tuple with one per layer."""
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise InvalidArgumentError(
                f"{name} has {len(value)} entries for {n} {layers}; give one for all or one per layer"
            )
        return list(value)
    return [value] * n


class FeedForward:
    r"""A feedforward network: forward and backward passes over a stack of layers.

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
        Default: the output activation's matching loss
        (:func:`deltaprop.losses.default_loss_for`): categorical
        cross-entropy for softmax, binary cross-entropy for sigmoid, mean
        squared error otherwise.
    dtype : {"float32", "float64"}, default "float32"
        Dtype of parameters, gradients, workspaces and outputs.
    seed : int or numpy.random.Generator, optional
        The run's random source: initial weights here, then shuffling and
        dropout masks in ``fit``. Same seed, data and thread count give
        bit-identical weights.

    Attributes
    ----------
    params : ndarray of shape (n_params,)
        All weights and biases.
    grads : ndarray of shape (n_params,)
        Gradient of the batch loss with respect to ``params``.
    rng : numpy.random.Generator
        The random source the network was seeded with, which a training run
        goes on drawing from (it is the run's, lent to the network so that
        one seed fixes everything).

    Notes
    -----
    A network pickles (and deep-copies) as its layers' configuration, its
    parameters and its generator; the workspaces of the last pass are not
    kept, and are rebuilt on the next pass.
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
                f"dropout on the output layer would drop predictions; got dropout={layers[-1].dropout} "
                f"on the last layer"
            )
        self.layers = list(layers)
        output = getattr(self.layers[-1].activation, "name", None)
        self.loss = _losses.get(_losses.default_loss_for(output) if loss is None else loss)
        self.dtype = check_dtype(dtype)
        if isinstance(seed, np.random.Generator):
            self.rng = seed
        elif seed is None or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0):
            self.rng = np.random.default_rng(seed)
        else:
            raise InvalidArgumentError(
                f"seed must be a non-negative integer or a numpy Generator, got {describe(seed)}")
        n = sum(layer.n_params for layer in self.layers)
        self.params = np.zeros(n, dtype=self.dtype)
        self.grads = np.zeros(n, dtype=self.dtype)
        self._bind()
        for layer in self.layers:
            layer.initialize(self.rng)
        self._delta_buf = None

    @classmethod
    def from_sizes(cls, sizes, activation="relu", output_activation=None, loss=None, dropout=0.0, initializer=None,
                   dtype="float32", seed=None):
        """Build a network from its layer sizes: the one builder the command line and estimators share.

        Parameters
        ----------
        sizes : sequence of int
            ``[n_in, hidden_1, ..., hidden_k, n_out]`` (two entries: no hidden layer).
        activation : str, dict, Activation, or a list of them
            Hidden activation: one for every hidden layer, or one per layer.
        output_activation : str, dict or Activation, optional
            Default: the loss's matching activation
            (:func:`deltaprop.losses.default_activation_for`), identity
            without a loss.
        loss : str, dict or Loss, optional
            Default: the output activation's matching loss.
        dropout : float or list of float
            After each hidden layer: one for all, or one per layer.
        initializer : str, callable, or a list of them (one per layer, output included), optional
            Default: He for the ReLU family, Glorot otherwise.
        dtype, seed
            As for the constructor.
        """
        sizes = list(sizes)
        if len(sizes) < 2:
            raise InvalidArgumentError(f"sizes must list n_in, any hidden sizes and n_out, got {describe(sizes)}")
        n_hidden = len(sizes) - 2
        acts = _per_layer(activation, n_hidden, "activation")
        drops = _per_layer(dropout, n_hidden, "dropout")
        if output_activation is None:
            output_activation = "identity" if loss is None else _losses.default_activation_for(_losses.get(loss))
        inits = _per_layer(initializer, n_hidden + 1, "initializer", "layers (the output layer included)")
        layers = [Dense(a, b, activation=act, dropout=p, initializer=init)
                  for a, b, act, p, init in zip(sizes[:-2], sizes[1:-1], acts, drops, inits)]
        layers.append(Dense(sizes[-2], sizes[-1], activation=output_activation, initializer=inits[-1]))
        return cls(layers, loss=loss, dtype=dtype, seed=seed)

    def astype(self, dtype):
        """A network of the same layers, loss and parameters in ``dtype`` (a new flat store; dropout kept)."""
        sizes = [self.n_in] + [layer.n_out for layer in self.layers]
        copy = type(self).from_sizes(
            sizes, activation=[layer.activation for layer in self.layers[:-1]],
            output_activation=self.layers[-1].activation, loss=self.loss,
            dropout=[layer.dropout for layer in self.layers[:-1]], initializer="zeros", dtype=dtype, seed=0)
        copy.params[...] = self.params
        return copy

    # --------------------------------------------------------------- pickling
    def __getstate__(self):
        state = self.__dict__.copy()
        state["layers"] = [layer.detached() for layer in self.layers]
        state["grads"] = None
        state["_delta_buf"] = None
        return state

    def __setstate__(self, state):
        # The layers' W, b, grad_W, grad_b are views of the flat store: made again here.
        self.__dict__.update(state)
        if self.grads is None:
            self.grads = np.zeros_like(self.params)
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

    # ------------------------------------------------------------- checking
    def check_X(self, X, name="X"):
        """``X`` checked and converted for a pass: 2-D, ``n_in`` columns, finite, C-ordered, the network's dtype.

        See :func:`deltaprop.checks.check_array`. A
        :class:`~deltaprop.sparse.OneHotMatrix`, a
        :class:`~deltaprop.sparse.SparseRows` or a scipy sparse matrix is
        checked the same way and returned as a matrix of
        :mod:`deltaprop.sparse` (never densified): the first layer multiplies
        it without its zeros.
        """
        if not isinstance(X, np.ndarray):
            matrix = as_input(X, self.dtype, n_features=self.n_in, name=name)
            if matrix is not None:
                return matrix
        return check_array(X, name, n_features=self.n_in, dtype=self.dtype)

    def prepare_targets(self, y):
        """Targets in the loss's natural form -> a ``(m, n_out)`` array of the network's dtype."""
        return self.loss.prepare_targets(y, self.n_out, self.dtype)

    @staticmethod
    def sample_scale(m, sample_weight, dtype):
        """Weights ``s_i`` with ``Σ s_i = 1``: ``1/m``, or ``w_i / Σ w`` (shape (m, 1)).

        See :func:`deltaprop.checks.sample_scale`; the weights are checked first.
        """
        w = None if sample_weight is None else check_sample_weight(sample_weight, m, positive_sum=True)
        return sample_scale(m, w, dtype)

    # ----------------------------------------------------------------- passes
    def forward(self, X, training=False, rng=None):
        """Forward pass over a batch; returns the output activations.

        Parameters
        ----------
        X : ndarray of shape (m, n_in), or a matrix of :mod:`deltaprop.sparse`
            C-contiguous, the network's dtype (use :meth:`predict` for
            arbitrary input); a ``OneHotMatrix`` or ``SparseRows`` (from
            :meth:`check_X`) feeds the first layer without its zeros.
        training : bool
            Apply dropout, with masks from ``rng`` (default: ``self.rng``;
            anything with ``random(shape, dtype)`` works, such as a
            data-parallel rank's :class:`deltaprop.batches.ShardRandom`).

        Returns
        -------
        ndarray of shape (m, n_out)
            A view into the last layer's workspace, overwritten by the next pass.
        """
        rng = self.rng if rng is None else rng
        a = X
        for i, layer in enumerate(self.layers):
            a = layer.forward(a, training=training, rng=rng, need_input_grad=i > 0)
        return a

    def batch_loss(self, a, Y, scale):
        """The batch loss ``L = Σ s_i ℓ_i`` of outputs ``a`` against prepared targets ``Y``.

        ``scale`` is :func:`deltaprop.checks.sample_scale`'s: ``1/m`` or a ``(m, 1)`` column of ``w_i / Σw``.
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
            Per-sample weights summing to 1 (see :func:`deltaprop.checks.sample_scale`).
        """
        out_layer = self.layers[-1]
        a, z = out_layer.a, out_layer.z
        m = a.shape[0]
        if self._delta_buf is None or self._delta_buf.shape[0] < m or self._delta_buf.dtype != a.dtype:
            self._delta_buf = np.empty((m, self.n_out), dtype=a.dtype)
        delta = self._delta_buf[:m]
        loss = self.batch_loss(a, Y, scale)
        if _losses.is_canonical_pair(out_layer.activation, self.loss):
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
        X : array-like of shape (m, n_in), a OneHotMatrix or a scipy sparse matrix
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
        X = self.check_X(X)
        Y = self.prepare_targets(y)
        if Y.shape[0] != X.shape[0]:
            raise DataError(f"X has {X.shape[0]} samples but y has {Y.shape[0]}")
        self.forward(X, training=training)
        return self.backward(Y, self.sample_scale(X.shape[0], sample_weight, self.dtype))

    def _chunks(self, X, batch_size, logits):
        """Forward passes over ``X`` in chunks of ``batch_size`` rows: output activations or ``Z_L``."""
        if not isinstance(X, np.ndarray):
            matrix = as_input(X, self.dtype, n_features=self.n_in, allow_empty=True)  # checked once, kept sparse
            X = np.asarray(X) if matrix is None else matrix
        n = X.shape[0] if X.ndim >= 1 else 0
        if n == 0:
            self.check_X(X)  # raises the zero-sample (or shape) error
        out = np.empty((n, self.n_out), dtype=self.dtype)
        for start in range(0, n, batch_size):
            chunk = self.check_X(X[start:start + batch_size])
            a = self.forward(chunk, training=False)
            out[start:start + chunk.shape[0]] = self.layers[-1].z if logits else a
        return out

    def predict(self, X, batch_size=4096):
        """Output activations for ``X`` (dropout off).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_in), a OneHotMatrix or a scipy sparse matrix
            A matrix of :mod:`deltaprop.sparse` (or scipy's) is checked once
            and fed chunk by chunk without being densified.
        batch_size : int
            Rows per forward pass, to bound memory on large inputs.

        Returns
        -------
        ndarray of shape (n_samples, n_out), the network's dtype
        """
        return self._chunks(X, batch_size, logits=False)

    def logits(self, X, batch_size=4096):
        """The output layer's pre-activations ``Z_L`` for ``X`` (dropout off), shape (n_samples, n_out).

        What log-probabilities and margins are computed from: ``log softmax(Z_L)``
        stays finite where ``log(predict(X))`` underflows.
        """
        return self._chunks(X, batch_size, logits=True)

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
        loss = getattr(self.loss, "name", self.loss)
        return f"{type(self).__name__}({sizes}, loss={loss!r}, dtype={self.dtype.name!r})"
