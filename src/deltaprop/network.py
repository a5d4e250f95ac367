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

from . import attributions as _attributions
from . import losses as _losses
from .checks import check_array, check_dtype, check_positive_int, check_sample_weight, sample_scale
from .errors import DataError, InvalidArgumentError, InvalidTypeError, describe
from . import activations as _activations
from . import initializers
from .blocks import Residual
from .embedding import Embedding
from .layers import Activation, Dense, Dropout, Layer
from .layers import from_config as layer_from_config
from .norms import BatchNorm, LayerNorm
from .sparse import as_input

__all__ = ["FeedForward", "resolve_dtype"]

#: ``check_dtype`` under its old name: ``"float32"``/``"float64"`` -> ``np.dtype``.
resolve_dtype = check_dtype


def _norm_class(norm):
    """``None``, ``"batch"`` or ``"layer"`` → the normalisation layer class (or None)."""
    table = {None: None, "none": None, "batch": BatchNorm, "layer": LayerNorm}
    if not isinstance(norm, (str, type(None))) or norm not in table:
        raise InvalidArgumentError(f"norm must be 'batch', 'layer' or None, got {describe(norm)}")
    return table[norm]


def _describe_layer(layer):
    """One line for :meth:`FeedForward.summary`: the kind and what sets it apart."""
    if isinstance(layer, Dense):
        act = getattr(layer.activation, "name", type(layer.activation).__name__)
        return f"Dense {act}" + (f" dropout={layer.dropout}" if layer.dropout else "")
    if isinstance(layer, Residual):
        return "Residual[" + ", ".join(_describe_layer(inner).split(" ")[0] if not isinstance(inner, Residual)
                                       else _describe_layer(inner) for inner in layer.layers) + "]"
    if isinstance(layer, Activation):
        return f"Activation {getattr(layer.activation, 'name', layer.activation)}"
    if isinstance(layer, Dropout):
        return f"Dropout p={layer.p}"
    return type(layer).__name__


def _per_layer(value, n, name, layers="hidden layer(s)"):
    """One value for every layer, or a list/tuple with one per layer."""
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise InvalidArgumentError(
                f"{name} has {len(value)} entries for {n} {layers}; give one for all or one per layer"
            )
        return list(value)
    return [value] * n


def _checked(X):
    """``X`` as it is: rows of a matrix that :func:`~deltaprop.sparse.as_input` has checked whole."""
    return X


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
    layers : list of Layer
        Dense, Dropout, Activation, LayerNorm, BatchNorm, Embedding (first
        only), Residual, or a registered layer of your own. The first layer
        knows its input width; each later one takes its predecessor's (one
        given a width checks it). The last is a Dense layer: the output
        layer, whose activation pairs with the loss.
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
        if isinstance(layers, Layer):
            layers = [layers]
        if not isinstance(layers, (list, tuple)) or not layers:
            raise InvalidArgumentError(f"layers must be a non-empty list of layers, got {describe(layers)}")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise InvalidTypeError(f"layers[{i}] must be a layer (Dense, BatchNorm, ...), got {describe(layer)}")
            if layer.first_only and i:
                raise InvalidArgumentError(f"layers[{i}] is {layer!r}, which reads input codes and can only be "
                                           f"the first layer")
        if layers[0].n_in is None:
            raise InvalidArgumentError(f"the first layer must know its input width; give {layers[0]!r} n_in")
        width = layers[0].n_in
        for i, layer in enumerate(layers):
            if i and layer.n_in is not None and layer.n_in != width:
                raise InvalidArgumentError(
                    f"layer sizes do not chain: layers[{i - 1}] has n_out={width} but "
                    f"layers[{i}] has n_in={layer.n_in}"
                )
            width = layer.build(width)
        if not isinstance(layers[-1], Dense):
            raise InvalidArgumentError(f"the last layer must be a Dense layer (the output layer, whose activation "
                                       f"pairs with the loss), got {layers[-1]!r}")
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
        self.buffers = np.zeros(sum(layer.n_buffers for layer in self.layers), dtype=self.dtype)
        self._bind()
        for layer in self.layers:
            layer.initialize(self.rng)
        self._delta_buf = None

    @classmethod
    def from_sizes(cls, sizes, activation="relu", output_activation=None, loss=None, dropout=0.0, initializer=None,
                   dtype="float32", seed=None, norm=None, residual=False, embed=None):
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
            Default: He for the ReLU family, Glorot otherwise; with
            ``residual``, ``fan_in_uniform`` (PyTorch's ``nn.Linear`` default).
        dtype, seed
            As for the constructor.
        norm : {None, "batch", "layer"}
            Without ``residual``: each hidden layer becomes
            ``Dense(σ = identity) → BatchNorm or LayerNorm → Activation(σ) → Dropout``.
            With it: the norm that opens each block and the head.
        residual : bool
            Each hidden size ``d`` is a residual block of width ``d``
            (Gorishniy et al., 2021): a linear ``Dense`` stem to the first
            width (and a linear projection wherever the width changes), then
            ``Residual([norm, Dense(d, d, σ, dropout), Dense(d, d), Dropout])``
            per hidden size, then the head ``norm → Activation(σ) → Dense(d, n_out)``.
        embed : sequence of (index, n_categories, dim), optional
            Start with an :class:`~deltaprop.embedding.Embedding` that reads
            those input columns as category codes (``sizes[0]`` is the width
            of the coded input).
        """
        sizes = list(sizes)
        if len(sizes) < 2:
            raise InvalidArgumentError(f"sizes must list n_in, any hidden sizes and n_out, got {describe(sizes)}")
        norm_layer = _norm_class(norm)
        n_hidden = len(sizes) - 2
        acts = _per_layer(activation, n_hidden, "activation")
        drops = _per_layer(dropout, n_hidden, "dropout")
        if output_activation is None:
            output_activation = "identity" if loss is None else _losses.default_activation_for(_losses.get(loss))
        inits = _per_layer(initializer, n_hidden + 1, "initializer", "layers (the output layer included)")
        layers = []
        width = sizes[0]
        if embed is not None:
            layers.append(Embedding(embed, n_in=width))
            width = layers[0].build(width)
        if residual and n_hidden:
            # With BatchNorm the residual stream reaches nothing but BatchNorms, which subtract any constant
            # shift: a bias added to it (stem, projection, a block's last Dense without dropout after it)
            # would have a zero gradient, so it is left out (see Dense's ``bias``).
            batch = norm_layer is BatchNorm
            # PyTorch's Linear default, U(±1/sqrt(fan_in)), as the reference implementation (see initializers)
            inits = ["fan_in_uniform" if init is None else init for init in inits]
            for i, (d, act, p, init) in enumerate(zip(sizes[1:-1], acts, drops, inits)):
                if i == 0 or d != width:
                    layers.append(Dense(width, d, initializer=init, bias=not batch))   # stem or projection (linear)
                block = [] if norm_layer is None else [norm_layer()]
                block += [Dense(d, d, activation=act, dropout=p, initializer=init),
                          Dense(d, d, initializer=init, bias=not (batch and not p))]
                block += [Dropout(p)] if p else []
                layers.append(Residual(block))
                width = d
            layers += ([] if norm_layer is None else [norm_layer()]) + [Activation(acts[-1])]
        else:
            for d, act, p, init in zip(sizes[1:-1], acts, drops, inits):
                if norm_layer is None:
                    layers.append(Dense(width, d, activation=act, dropout=p, initializer=init))
                else:
                    init = init if init is not None else initializers.default_for(getattr(
                        _activations.get(act), "name", None))
                    # no bias before a BatchNorm: it would cancel it (see Dense's ``bias``)
                    layers += [Dense(width, d, initializer=init, bias=norm_layer is not BatchNorm), norm_layer(),
                               Activation(act)]
                    layers += [Dropout(p)] if p else []
                width = d
        layers.append(Dense(width, sizes[-1], activation=output_activation, initializer=inits[-1]))
        return cls(layers, loss=loss, dtype=dtype, seed=seed)

    def astype(self, dtype):
        """A network of the same layers, loss, parameters and buffers in ``dtype`` (a new flat store)."""
        # Detached layers keep the very activation objects, so an unregistered one of the user's is kept too.
        copy = type(self)([layer.detached() for layer in self.layers], loss=self.loss, dtype=dtype, seed=0)
        copy.params[...] = self.params
        copy.buffers[...] = self.buffers
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
        if getattr(self, "buffers", None) is None:  # a network pickled before buffers existed
            self.buffers = np.zeros(sum(layer.n_buffers for layer in self.layers), dtype=self.dtype)
        p = b = 0
        for layer in self.layers:
            k, kb = layer.n_params, layer.n_buffers
            layer.bind(self.params[p:p + k], self.grads[p:p + k], self.buffers[b:b + kb])
            p, b = p + k, b + kb

    def tensors(self):
        """``{"layers.{i}.{name}": view}`` of every layer's parameters and buffers (how model files name them)."""
        return {f"layers.{i}.{name}": view for i, layer in enumerate(self.layers)
                for name, view in layer.tensors().items()}

    def set_batch_reduce(self, reduce):
        """Hand each layer the function that sums an array in place over the processes of a run (None: one)."""
        for layer in self.layers:
            layer.set_batch_reduce(reduce)

    @property
    def min_batch_rows(self):
        """The fewest rows a training batch may have (2 with BatchNorm, else 1)."""
        return max(layer.min_batch_rows for layer in self.layers)

    def buffers_problem(self, buffers=None):
        """What is wrong with running statistics (``buffers``, default the network's own), or None.

        Each layer judges its own (a variance is never negative, statistics are finite); the buffers are kept.
        """
        saved = None if buffers is None else self.buffers.copy()
        try:
            if buffers is not None:
                np.copyto(self.buffers, buffers)
            for i, layer in enumerate(self.layers):
                problem = layer.state_problem()
                if problem:
                    return f"layer {i} ({type(layer).__name__}): {problem}"
            return None
        finally:
            if saved is not None:
                np.copyto(self.buffers, saved)

    def check_batch_plan(self, n, batch_size):
        """Refuse batches of ``n`` samples that would leave a layer of batch statistics too few rows."""
        least = self.min_batch_rows
        smallest = min(batch_size, n, n % batch_size or batch_size)
        if smallest < least:
            raise InvalidArgumentError(
                f"BatchNorm needs at least {least} rows in every training batch, but {n} samples in batches "
                f"of {batch_size} leave a batch of {smallest}; choose another batch_size, or use LayerNorm")

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
        """1 where ``params`` holds a weight (``W``, embedding tables), 0 elsewhere (biases, ``γ``, ``β``).

        What weight decay applies to.
        """
        return np.concatenate([layer.decay_mask() for layer in self.layers]).astype(self.dtype)

    def flops_per_sample(self):
        """Floating-point operations of one training step's matrix products per sample: ``6 Σ n_in n_out``.

        For each Dense layer: forward ``2 n_in n_out``, ``grad_W`` ``2 n_in
        n_out``, input delta ``2 n_in n_out`` (skipped for the first layer).
        Normalisation, embedding lookups and activations are not counted.
        """
        return sum(layer.flops_per_sample(first=i == 0) for i, layer in enumerate(self.layers))

    # ------------------------------------------------------------- checking
    def check_X(self, X, name="X"):
        """``X`` checked and converted for a pass: 2-D, ``n_in`` columns, finite, C-ordered, the network's dtype.

        See :func:`deltaprop.checks.check_array`. A :class:`~deltaprop.sparse.OneHotMatrix`, a
        :class:`~deltaprop.sparse.SparseRows` or a scipy sparse matrix is checked the same way and returned
        as a matrix of :mod:`deltaprop.sparse` (never densified): the first layer multiplies it without its
        zeros. Only a Dense first layer can; any other refuses it (InvalidTypeError).
        """
        if not isinstance(X, np.ndarray):
            matrix = as_input(X, self.dtype, n_features=self.n_in, name=name)
            if matrix is not None:
                self._check_matrix_reader(name)
                return matrix
        return check_array(X, name, n_features=self.n_in, dtype=self.dtype)

    def _check_matrix_reader(self, name="X"):
        """Refuse a matrix of :mod:`deltaprop.sparse` unless the first layer is Dense (InvalidTypeError)."""
        if not isinstance(self.layers[0], Dense):
            raise InvalidTypeError(
                f"{name} is a sparse matrix, which only a Dense first layer reads without densifying it; "
                f"this network starts with {self.layers[0]!r}: pass a dense array ({name}.toarray())")

    def _check_scanned(self, X):
        """:meth:`check_X` for rows of an array in the network's dtype already scanned for NaN and infinity."""
        return check_array(X, n_features=self.n_in, dtype=self.dtype, finite=False)

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
            C-contiguous, the network's dtype (use :meth:`predict` for arbitrary input); a ``OneHotMatrix``
            or ``SparseRows`` (from :meth:`check_X`) feeds the first layer without its zeros.
        training : bool
            Apply dropout, with masks from ``rng`` (default: ``self.rng``; anything with
            ``random(shape, dtype)`` works, such as a data-parallel rank's :class:`deltaprop.batches.ShardRandom`).

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
        loss = self.batch_loss(self.layers[-1].a, Y, scale)
        delta = self.output_delta(Y, scale)
        n = len(self.layers)
        g = self.layers[-1].backward_delta(delta, need_input_grad=n > 1)
        for i in range(n - 2, -1, -1):
            g = self.layers[i].backward(g, need_input_grad=i > 0)
        return loss

    def output_delta(self, Y, scale):
        """``Δ_L = ∂L/∂Z_L`` of ``L = Σ s_i ℓ_i`` after :meth:`forward`: shape (m, n_out), a workspace.

        ``scale`` as for :meth:`backward` (a column of ``1`` gives each row's own ``∂ℓ_i/∂z_i``).
        """
        out_layer = self.layers[-1]
        a, z = out_layer.a, out_layer.z
        m = a.shape[0]
        if self._delta_buf is None or self._delta_buf.shape[0] < m or self._delta_buf.dtype != a.dtype:
            self._delta_buf = np.empty((m, self.n_out), dtype=a.dtype)
        delta = self._delta_buf[:m]
        if _losses.is_canonical_pair(out_layer.activation, self.loss):
            # Canonical pair: ∂ℓ/∂z directly (a - y up to a constant), exact and overflow-free.
            self.loss.fused_delta(a, Y, delta)
        else:
            np.copyto(delta, self.loss.gradient(a, Y))
            out_layer.activation.backward(z, a, delta, delta)
        delta *= scale  # fold in the 1/m (or w_i / Σw) of the mean loss
        return delta

    def input_gradients(self, X, y=None, output=None, logits=False, sample_weight=None, batch_size=4096):
        """``∂ℓ_i/∂x_i`` (given ``y``) or ``∂a_k/∂x_i`` (given ``output=k``) per row: shape (n, n_in).

        See :func:`deltaprop.attributions.input_gradients`, which this calls.
        """
        return _attributions.input_gradients(self, X, y=y, output=output, logits=logits,
                                             sample_weight=sample_weight, batch_size=batch_size)

    def loss_and_gradients(self, X, y, sample_weight=None, training=True):
        """Forward and backward pass: fills ``grads`` and returns the mean loss.

        Parameters
        ----------
        X : array-like of shape (m, n_in), a OneHotMatrix or a scipy sparse matrix
        y : array-like
            Targets in the loss's natural form (class indices or one-hot rows for categorical
            cross-entropy, 0/1 for binary cross-entropy, real values for regression losses).
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

    def _chunks(self, X, batch_size=4096, logits=False, finite_checked=False):
        """Forward passes over ``X`` in chunks of ``batch_size`` rows: output activations or ``Z_L``, shape (n, n_out).

        A dense ``X`` is checked (and converted) chunk by chunk by :meth:`check_X`, never copied whole; a matrix of
        :mod:`deltaprop.sparse` is checked whole, once, by :func:`~deltaprop.sparse.as_input`. One chunk (a few
        rows: the usual prediction) returns a copy of the last layer's workspace; each row goes through the same
        products either way. ``finite_checked``: the caller (an estimator) has already scanned the ndarray ``X``
        for NaN and infinity, so the scan is not repeated unless a conversion changes the values.
        """
        if not (type(batch_size) is int and batch_size > 0):
            batch_size = check_positive_int(batch_size, "batch_size")
        check = self.check_X
        if not isinstance(X, np.ndarray):
            matrix = as_input(X, self.dtype, n_features=self.n_in, allow_empty=True)  # checked once, kept sparse
            X = np.asarray(X) if matrix is None else matrix
        elif finite_checked and X.dtype == self.dtype:
            check = self._check_scanned
        n = X.shape[0] if X.ndim >= 1 else 0
        if n == 0:
            self.check_X(X)  # raises the zero-sample (or shape) error
        if not isinstance(X, np.ndarray):  # a checked matrix: of check_X's rules, only the first layer's is left
            self._check_matrix_reader()
            check = _checked
        if n <= batch_size:
            a = self.forward(check(X), training=False)
            return (self.layers[-1].z if logits else a).copy()
        out = np.empty((n, self.n_out), dtype=self.dtype)
        for start in range(0, n, batch_size):
            chunk = check(X[start:start + batch_size])
            a = self.forward(chunk, training=False)
            out[start:start + chunk.shape[0]] = self.layers[-1].z if logits else a
        return out

    def predict(self, X, batch_size=4096):
        """Output activations for ``X`` (dropout off).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_in), a OneHotMatrix or a scipy sparse matrix
            A sparse matrix is checked once and fed chunk by chunk without being densified.
        batch_size : int
            Rows per forward pass, to bound memory on large inputs (a positive integer).

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
        """Rebuild an (initialised) network from :meth:`get_config` output (each layer by its registered type)."""
        layers = [layer_from_config(c) for c in config["layers"]]
        return cls(layers, loss=config["loss"], dtype=config.get("dtype", "float32"), seed=seed)

    def summary(self):
        """A short text table of the layers, their widths and parameter counts."""
        kinds = [_describe_layer(layer) for layer in self.layers]
        w = max(len(k) for k in kinds) + 2
        lines = [f"{'layer':<7}{'kind':<{w}}{'shape':>12}{'params':>10}"]
        for i, (layer, kind) in enumerate(zip(self.layers, kinds)):
            lines.append(f"{i + 1:<7}{kind:<{w}}{f'{layer.n_in}->{layer.n_out}':>12}{layer.n_params:>10}")
        extra = f", running statistics: {self.buffers.size}" if self.buffers.size else ""
        lines.append(f"loss: {getattr(self.loss, 'name', self.loss)}, dtype: {self.dtype.name}, "
                     f"parameters: {self.n_params}{extra}")
        return "\n".join(lines)

    def __repr__(self):
        sizes = "-".join(str(s) for s in [self.n_in] + [layer.n_out for layer in self.layers
                                                         if isinstance(layer, Dense) or layer is self.layers[0]])
        loss = getattr(self.loss, "name", self.loss)
        return f"{type(self).__name__}({sizes}, loss={loss!r}, dtype={self.dtype.name!r})"
