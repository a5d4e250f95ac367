r"""Entity embeddings (Guo and Berkhahn, 2016): each integer-coded categorical column becomes a learned vector.

An input row holds numeric columns and, at chosen positions, category codes
``c ∈ {0, ..., n_k − 1}`` (stored as floats, exact up to 2**24). For each
coded column ``k`` with table ``T_k`` of shape ``(n_k, d_k)``:

    forward     y = [x_numeric, T_1[c_1], ..., T_K[c_K]]
    backward    ∂L/∂T_k[r] = Σ_{i : c_{ik} = r} G_i[k's slice]        (a scatter-add over the batch's rows)
                ∂L/∂x_numeric = G[numeric slice]                      (codes have no gradient: 0 there)

This is the one-hot product ``onehot(c_k) T_k`` without its zeros, so the
gradient of a row of ``T_k`` is nonzero only where the batch holds its code:
the backward adds the batch's ``m`` rows of ``G`` into the rows seen (cost
``O(m d_k)``) after clearing the table's gradient. Optimizers then update the
flat store as for any parameter, so a table trains exactly as the equivalent
one-hot Dense layer without bias would (tested), momentum and Adam's moments
included: rows not seen get a zero gradient, not a skipped update.
"""

import numpy as np

from .checks import check_positive_int
from .errors import DataError, InvalidArgumentError, describe
from .layers import Layer, register

__all__ = ["Embedding"]


class Embedding(Layer):
    r"""Learned vectors for integer-coded categorical input columns; the other columns pass through.

    Parameters
    ----------
    columns : sequence of (int, int, int)
        For each coded column: ``(index, n_categories, dim)``, its position
        in the input row, its number of codes and the width of its vector.
    n_in : int, optional
        The input width (default: the network's input width; an Embedding
        is always the first layer, since it reads codes).

    Attributes
    ----------
    tables : list of ndarray of shape (n_categories, dim)
        Views into the network's flat ``params`` (tensors ``tables.{k}`` in
        files); ``grad_tables`` the same into ``grads``.

    Notes
    -----
    Output width: ``n_in − K + Σ_k dim_k``: the numeric columns in input
    order, then each table's vector in the order of ``columns``. Tables
    start as draws from N(0, 1) (PyTorch's ``nn.Embedding``); weight decay
    applies to them. A code that is not an integer in ``[0, n_categories)``
    is a :class:`~deltaprop.errors.DataError` naming the column and value.
    """

    first_only = True
    _transient = ("tables", "grad_tables", "codes")
    tables = grad_tables = codes = None

    def __init__(self, columns, n_in=None):
        if not isinstance(columns, (list, tuple)) or not columns:
            raise InvalidArgumentError(f"columns must be a non-empty list of (index, n_categories, dim), "
                                       f"got {describe(columns)}")
        parsed = []
        for k, entry in enumerate(columns):
            if not isinstance(entry, (list, tuple)) or len(entry) != 3:
                raise InvalidArgumentError(f"columns[{k}] must be (index, n_categories, dim), got {describe(entry)}")
            index, n_cat, dim = entry
            if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
                raise InvalidArgumentError(f"columns[{k}] index must be a non-negative integer, got {describe(index)}")
            parsed.append((int(index), check_positive_int(n_cat, f"columns[{k}] n_categories"),
                           check_positive_int(dim, f"columns[{k}] dim")))
        indices = [c[0] for c in parsed]
        if len(set(indices)) != len(indices):
            raise InvalidArgumentError(f"columns name an input column twice: indices {indices}")
        self.columns = parsed
        self.n_in = None if n_in is None else check_positive_int(n_in, "n_in")
        self.tables = self.grad_tables = self.codes = None

    def output_width(self, n_in):
        largest = max(c[0] for c in self.columns)
        if largest >= n_in:
            raise InvalidArgumentError(f"Embedding reads input column {largest}, but the input has {n_in} columns")
        coded = {c[0] for c in self.columns}
        self._passthrough_index = [j for j in range(n_in) if j not in coded]
        return n_in - len(self.columns) + sum(c[2] for c in self.columns)

    def param_shapes(self):
        return {f"tables.{k}": (n_cat, dim) for k, (_, n_cat, dim) in enumerate(self.columns)}

    decayed = property(lambda self: tuple(self.param_shapes()))

    def bind(self, params, grads, buffers):
        super().bind(params, grads, buffers)
        self.tables = list(self.params_.values())
        self.grad_tables = list(self.grads_.values())

    def initialize(self, rng):
        for table in self.tables:
            table[...] = rng.standard_normal(table.shape).astype(table.dtype, copy=False)

    @property
    def passthrough(self):
        """Indices of the input columns that pass through unchanged (in order)."""
        return self._passthrough_index

    def _codes(self, x, k):
        """Column ``k``'s codes as integers, checked to be whole numbers in ``[0, n_categories)``."""
        index, n_cat, _ = self.columns[k]
        values = x[:, index]
        bad = ~((values >= 0) & (values < n_cat))         # before the cast: 1e20 would overflow it (RuntimeWarning)
        codes = np.where(bad, 0, values).astype(np.intp)
        bad |= codes != values
        if bad.any():
            row = int(np.argmax(bad))
            raise DataError(f"Embedding column {index} must hold category codes 0..{n_cat - 1}; "
                            f"row {row} has {values[row].item()!r}")
        return codes

    def forward(self, a_prev, training=False, rng=None, need_input_grad=False):
        """``(m, n_in)`` → ``(m, n_out)``: numeric columns, then each code's row of its table."""
        if not isinstance(a_prev, np.ndarray):
            raise DataError(f"Embedding reads category codes from a dense array, got {type(a_prev).__name__}")
        m = a_prev.shape[0]
        out = self._workspace("out", m, self.n_out, a_prev.dtype)
        passthrough = self.passthrough
        n_pass = len(passthrough)
        if n_pass:
            out[:, :n_pass] = a_prev[:, passthrough]              # the numeric columns, in input order
        self.codes = []
        at = n_pass
        for k, table in enumerate(self.tables):
            codes = self._codes(a_prev, k)
            dim = table.shape[1]
            out[:, at:at + dim] = table[codes]                    # y_k = T_k[c_k]
            self.codes.append(codes)
            at += dim
        return out

    def backward(self, grad, need_input_grad=False):
        """Scatter ``grad``'s slices into the rows of each table seen; returns ``∂L/∂x`` (0 at codes) or None."""
        at = len(self.passthrough)
        for codes, g_table in zip(self.codes, self.grad_tables):
            dim = g_table.shape[1]
            g_table.fill(0)
            np.add.at(g_table, codes, grad[:, at:at + dim])      # ∂L/∂T_k[r] = Σ_{i: c_ik = r} G_i
            at += dim
        if not need_input_grad:
            return None
        g_prev = self._workspace("g_prev", grad.shape[0], self.n_in, grad.dtype)
        g_prev.fill(0)
        passthrough = self.passthrough
        g_prev[:, passthrough] = grad[:, :len(passthrough)]
        return g_prev

    def get_config(self):
        return {"type": "Embedding", "n_in": self.n_in, "columns": [list(c) for c in self.columns]}

    def __repr__(self):
        return f"Embedding({len(self.columns)} columns, {self.n_in}->{self.n_out})"


register("embedding", Embedding)
