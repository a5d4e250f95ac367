"""Input matrices that are not dense arrays: one-hot blocks as row indices, and scipy sparse matrices.

A network's first layer needs two products of its input ``A_prev`` (``X``, shape ``(m, n_in)``):

    Z = A_prev Wᵀ                    (forward)
    grad_Wᵀ = A_prevᵀ Δ              (backward; Δ has shape (m, n_out))

For a dense ``X`` these are BLAS calls (:class:`deltaprop.layers.Dense`). The
classes here compute them without the zeros:

- :class:`OneHotMatrix` is ``[dense | onehot(codes[:, 0]) | ... ]``: a
  one-hot column block is stored as one integer code per row. Its row of
  ``X Wᵀ`` is the dense part's product plus, for each categorical column, the
  row of ``Wᵀ`` its category selects (a gather); ``Xᵀ Δ`` scatters the rows of
  ``Δ`` onto the rows of the categories they hold (a scatter-add).
- :class:`SparseRows` wraps a scipy sparse matrix (found by duck typing:
  deltaprop's core never imports scipy) as CSR in the network's dtype; its
  products are scipy's sparse-dense products.

Both offer the same small interface, which is all a network, a batch server
and the training loop use: ``shape``, ``dtype``, ``ndim``, ``len()``, row
selection ``X[rows]`` (a slice or an integer array, giving the same kind of
matrix), ``matmul_into(M, out)`` (``out = X M``), ``tmatmul_into(delta, out)``
(``out = Xᵀ Δ``), ``toarray()``, ``astype(dtype)`` and
``check_finite(name)``. Neither turns into a dense array implicitly
(``np.asarray`` of one is an error that says to call ``toarray()``), so no
step densifies a whole matrix.

The sums run in a fixed order, so the same data gives bit-identical results;
against a dense product of ``toarray()`` they differ only by rounding (the
dense product adds the same non-zero terms, plus exact zeros, in BLAS's
order).

This module imports NumPy and deltaprop's ground modules only.
"""

import numbers

import numpy as np

from .checks import check_array, check_finite, check_float_dtype, check_positive_int
from .errors import DataError, InvalidTypeError, describe

__all__ = ["OneHotMatrix", "SparseRows", "as_input", "is_matrix_like", "is_scipy_sparse", "BLOCK_RATIO"]

#: In ``OneHotMatrix.tmatmul_into``, a categorical column with at most
#: ``m / BLOCK_RATIO`` categories for a batch of ``m`` rows (so each category
#: present repeats about BLOCK_RATIO times or more) is scattered as one small
#: product ``Bᵀ Δ`` with ``B`` its ``(m, size)`` one-hot block for the batch;
#: wider columns are scattered row by row. The crossover was measured with
#: ``m = n_out = 256`` on OpenBLAS (float64 near 64 categories, float32 near 128).
BLOCK_RATIO = 4


def _rows_key(rows, what):
    """A row selection for ``what[rows]``: a slice, or a 1-D integer (or boolean) array."""
    if isinstance(rows, slice):
        return rows
    if isinstance(rows, tuple) or isinstance(rows, (numbers.Integral, str)) or rows is None:
        raise InvalidTypeError(
            f"{what} selects rows only, with a slice or a 1-D array of row indices (X[i:i+1] for one row), "
            f"got {describe(rows)}")
    key = np.asarray(rows)
    if key.ndim != 1 or key.dtype.kind not in "biu":
        raise InvalidTypeError(
            f"{what} selects rows with a slice or a 1-D integer array, got an array of dtype {key.dtype} "
            f"and shape {key.shape}")
    return key


def _no_dense_copy(obj):
    n, c = obj.shape
    raise InvalidTypeError(
        f"a {type(obj).__name__} is not turned into a dense array implicitly (it would be {n} x {c} values); "
        f"call .toarray() if that is what you want")


class OneHotMatrix:
    r"""``[dense | onehot(codes[:, 0], sizes[0]) | ... | onehot(codes[:, k-1], sizes[k-1])]`` without its zeros.

    The matrix has shape ``(n, d + Σ sizes)``: ``d`` dense columns, then for
    each categorical column ``j`` a block of ``sizes[j]`` columns holding a
    single 1, at ``codes[i, j]``, in each row ``i``.

    Parameters
    ----------
    dense : array-like of shape (n, d), or None
        The numeric columns (``d`` may be 0; None means none). float32 and
        float64 are kept; other numbers become float64.
    codes : array-like of int, shape (n, k)
        Category codes, ``0 <= codes[:, j] < sizes[j]`` (a 1-D array is one
        column). ``k`` may be 0: the matrix is then ``dense`` alone.
    sizes : sequence of k positive ints
        The number of categories of each categorical column.

    Attributes
    ----------
    dense : ndarray of shape (n, d)
    cols : ndarray of intp, shape (n, k)
        Each row's column index of its 1 in each block (``codes + offsets``).
    sizes : list of int
    offsets : ndarray of intp, shape (k,)
        The column of each block's category 0.

    Raises
    ------
    InvalidTypeError
        ``codes`` not integers, ``sizes`` not positive integers.
    DataError
        Shapes that do not agree, a code out of range (the message names the
        column, the row and the value), or no columns at all.

    Notes
    -----
    With ``offsets[j] = d + Σ_{i<j} sizes[i]`` the column of code ``c`` in
    block ``j`` is ``offsets[j] + c``; the matrix stores these column indices
    ``cols[i, j]``. The first layer's products are then

    .. math::
        (X M)_i = \mathrm{dense}_i\, M_{:d} + Σ_j M_{\mathrm{cols}[i, j]}

        (X^T Δ)_{:d} = \mathrm{dense}^T Δ,\qquad
        (X^T Δ)_c = Σ_{(i, j):\ \mathrm{cols}[i, j] = c} Δ_i

    a gather of rows of ``M = Wᵀ`` and a scatter-add of rows of ``Δ``
    (:meth:`matmul_into`, :meth:`tmatmul_into`). No zero is stored or
    multiplied.
    """

    ndim = 2

    def __init__(self, dense, codes, sizes):
        sizes = [check_positive_int(s, f"sizes[{j}]") for j, s in enumerate(_as_list(sizes, "sizes"))]
        codes = np.asarray(codes)
        if codes.ndim == 1 and len(sizes) == 1:
            codes = codes.reshape(-1, 1)
        if codes.ndim != 2 or codes.shape[1] != len(sizes):
            raise DataError(f"codes must have shape (n_samples, {len(sizes)}) for {len(sizes)} size(s), "
                            f"got shape {codes.shape}")
        if codes.dtype.kind not in "iu" and codes.size:
            raise InvalidTypeError(f"codes must be integers, got dtype {codes.dtype}")
        n = codes.shape[0]
        dense = self._dense_part(dense, n)
        if dense.shape[1] + sum(sizes) == 0:
            raise DataError("a OneHotMatrix needs at least one column; got no dense column and no categorical one")
        if codes.size and not ((codes.min(axis=0) >= 0).all() and (codes.max(axis=0) < sizes).all()):
            for j, size in enumerate(sizes):  # one is out of range: name the first column that has one
                _check_codes(codes[:, j], j, size)
        self._set(dense, np.ascontiguousarray(codes, dtype=np.intp), sizes, finite=False, add_offsets=True)

    @staticmethod
    def _dense_part(dense, n):
        if dense is None:
            return np.zeros((n, 0))
        dense = np.asarray(dense)
        if dense.ndim != 2 or dense.shape[0] != n:
            raise DataError(f"dense must have shape (n_samples, d) with the {n} rows of codes, got shape {dense.shape}")
        dtype = dense.dtype if dense.dtype in (np.float32, np.float64) else np.float64
        if dense.shape[1] == 0:
            return np.zeros((n, 0), dtype=dtype)
        return check_array(dense, "dense", dtype=dtype, allow_empty=True, finite=False)

    def _set(self, dense, cols, sizes, finite, add_offsets=False):
        """Keep checked parts; ``add_offsets``: ``cols`` holds codes, to which each block's offset is added here."""
        self.dense, self.sizes = dense, list(sizes)
        self._finite = finite
        # offsets[j]: the column of block j's category 0
        self.offsets = dense.shape[1] + np.concatenate(([0], np.cumsum(self.sizes, dtype=np.intp)))[:-1]
        self.cols = cols + self.offsets if add_offsets else cols

    @classmethod
    def _from_parts(cls, dense, cols, sizes, finite):
        """A matrix from checked parts (row selections and dtype changes): no check again."""
        obj = object.__new__(cls)
        obj._set(dense, cols, sizes, finite)
        return obj

    # ------------------------------------------------------------ the array's face
    @property
    def shape(self):
        return (self.dense.shape[0], self.dense.shape[1] + sum(self.sizes))

    @property
    def dtype(self):
        return self.dense.dtype

    @property
    def n_dense(self):
        """``d``, the number of dense columns."""
        return self.dense.shape[1]

    @property
    def codes(self):
        """The category codes, shape (n, k) (``cols`` less each block's offset)."""
        return self.cols - self.offsets

    def __len__(self):
        return self.dense.shape[0]

    def __getitem__(self, rows):
        """Rows ``rows`` (a slice or a 1-D integer array), as a OneHotMatrix."""
        key = _rows_key(rows, "OneHotMatrix")
        return self._from_parts(self.dense[key], self.cols[key], self.sizes, self._finite)

    def __array__(self, dtype=None, copy=None):
        _no_dense_copy(self)

    def __repr__(self):
        n, c = self.shape
        return (f"OneHotMatrix({n} rows x {c} columns: {self.n_dense} dense, categorical sizes {self.sizes}, "
                f"dtype={self.dtype.name})")

    def toarray(self):
        """The dense ``(n, d + Σ sizes)`` array (for tests and small data)."""
        n, c = self.shape
        out = np.zeros((n, c), dtype=self.dtype)
        out[:, : self.n_dense] = self.dense
        if self.sizes:
            out[np.arange(n)[:, None], self.cols] = 1
        return out

    def astype(self, dtype):
        """The same matrix with its dense part in ``dtype`` (float32 or float64); self when already."""
        dtype = check_float_dtype(dtype)
        if dtype == self.dtype:
            return self
        widening = dtype.itemsize >= self.dtype.itemsize
        return self._from_parts(self.dense.astype(dtype), self.cols, self.sizes, self._finite and widening)

    def _checked_as(self, dtype, name):
        """In ``dtype``, its dense part checked finite (values too large for ``dtype`` named as such)."""
        if dtype != self.dtype and self.n_dense:
            dense = check_array(self.dense, name, dtype=dtype, allow_empty=True)
            return self._from_parts(dense, self.cols, self.sizes, True)
        matrix = self.astype(dtype)
        matrix.check_finite(name)
        return matrix

    def check_finite(self, name="X"):
        """DataError if the dense part holds NaN or infinity (count and first (row, column) named); scans once."""
        if not self._finite:
            check_finite(self.dense, name)
            self._finite = True

    # ------------------------------------------------------------------ products
    def matmul_into(self, M, out):
        r"""``out = X M`` for ``M`` of shape (n_cols, p): the first layer's ``Z = A_prev Wᵀ`` with ``M = Wᵀ``.

        .. math::
            Z_i = \mathrm{dense}_i\, M_{:d} + Σ_j M_{\mathrm{cols}[i, j]}

        The one-hot blocks are a gather of rows of ``Wᵀ`` (columns of ``W``):
        one fancy-indexed gather and add per categorical column, measured
        faster than one ``(m, k, p)`` gather summed over ``k``.

        Parameters
        ----------
        M : ndarray of shape (n_cols, p)
            Any strides (``W.T`` is C-contiguous in deltaprop's layout).
        out : ndarray of shape (m, p)
            Overwritten; returned.
        """
        d = self.n_dense
        if d:
            np.matmul(self.dense, M[:d], out=out)
        elif self.sizes:
            out[...] = M[self.cols[:, 0]]
        else:
            out[...] = 0
        for j in range(0 if d else 1, len(self.sizes)):
            np.add(out, M[self.cols[:, j]], out=out)
        return out

    def tmatmul_into(self, delta, out):
        r"""``out = Xᵀ Δ`` for ``Δ`` of shape (m, p): the first layer's ``grad_Wᵀ = A_prevᵀ Δ``.

        .. math::
            (X^T Δ)_{:d} = \mathrm{dense}^T Δ,\qquad (X^T Δ)_c = Σ_{(i, j):\ \mathrm{cols}[i, j] = c} Δ_i

        The one-hot rows are a scatter-add of the rows of ``Δ`` (a sum over
        the batch rows holding category ``c``, in row order; rows of
        categories absent from the batch are 0). Columns with few categories
        for the batch (``size * BLOCK_RATIO <= m``) are done, each run of
        adjacent ones at once, as one product ``Bᵀ Δ`` with ``B`` their
        ``(m, Σ size)`` one-hot block for the batch; the other columns by
        rounds of row scatters (see :data:`BLOCK_RATIO`). ``np.add.at``
        measured 5 to 10 times slower than both.

        Parameters
        ----------
        delta : ndarray of shape (m, p)
        out : ndarray of shape (n_cols, p)
            Overwritten (not accumulated); returned.
        """
        d, m = self.n_dense, delta.shape[0]
        if d:
            np.matmul(self.dense.T, delta, out=out[:d])
        narrow = [m > 0 and size * BLOCK_RATIO <= m for size in self.sizes]
        wide = [j for j, is_narrow in enumerate(narrow) if not is_narrow]
        if wide:
            out[d:] = 0
        offsets, j, k = self.offsets, 0, len(self.sizes)
        while j < k:  # each run of adjacent narrow columns: one block product into its rows of out
            if not narrow[j]:
                j += 1
                continue
            end = j
            while end < k and narrow[end]:
                end += 1
            lo = int(offsets[j])
            hi = lo + sum(self.sizes[j:end])
            block = np.zeros((m, hi - lo), dtype=delta.dtype)
            block[np.arange(m)[:, None], self.cols[:, j:end] - lo] = 1
            np.matmul(block.T, delta, out=out[lo:hi])
            j = end
        if wide and m:
            _scatter_add_rows(self.cols[:, wide].ravel(), len(wide), delta, out)
        return out


def _scatter_add_rows(flat, k, delta, out):
    """``out[flat[t]] += delta[t // k]`` for every ``t``, in order of ``t``, with ``out``'s rows there zero.

    The targets are sorted (stably) and the rows added in rounds: round
    ``r`` adds the ``r``-th occurrence of each target, so no round repeats a
    target and a fancy-indexed ``+=`` is exact. The number of rounds is the
    largest multiplicity, small for the wide columns this is used for.
    """
    order = np.argsort(flat, kind="stable")
    targets = flat[order]
    rows = order // k
    n = targets.size
    first = np.empty(n, dtype=bool)
    first[0] = True
    np.not_equal(targets[1:], targets[:-1], out=first[1:])
    pos = np.arange(n)
    rank = pos - np.maximum.accumulate(np.where(first, pos, 0))
    out[targets[first]] = delta[rows[first]]
    for r in range(1, int(rank.max()) + 1):
        sel = rank == r
        out[targets[sel]] += delta[rows[sel]]


def _as_list(value, name):
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        raise InvalidTypeError(f"{name} must be a sequence of positive integers, got {describe(value)}")
    return list(value)


def _check_codes(column, j, size):
    """DataError naming column ``j``, the row and the value when a code is outside ``0..size-1``."""
    if column.size == 0:
        return
    lo, hi = column.min(), column.max()
    if lo >= 0 and hi < size:
        return
    bad = np.flatnonzero((column < 0) | (column >= size))
    row = int(bad[0])
    raise DataError(
        f"codes[:, {j}] must lie in 0..{size - 1} (sizes[{j}] = {size}); {bad.size} do not, the first is "
        f"{int(column[row])} at row {row}")


def is_scipy_sparse(X):
    """Whether ``X`` looks like a 2-D scipy sparse matrix or array (duck typing: no scipy import)."""
    return (not isinstance(X, np.ndarray) and hasattr(X, "tocsr") and hasattr(X, "nnz")
            and len(getattr(X, "shape", ())) == 2)


class SparseRows:
    """A scipy sparse matrix as CSR in one float dtype, with the products a first layer needs.

    Parameters
    ----------
    X : scipy sparse matrix or array, shape (n, n_cols)
        Any format (``tocsr()`` is taken; a CSR already in ``dtype`` is not
        copied). Found by duck typing: deltaprop's core does not import scipy.
    dtype : {None, "float32", "float64"}
        The stored values' dtype; default: float32 and float64 kept, other
        numbers float64.

    Notes
    -----
    ``matmul_into`` is ``csr @ M`` and ``tmatmul_into`` is ``csr.T @ Δ`` (a
    CSC view, no transpose copy): scipy's compiled loops over the stored
    values only. Row selection is ``csr[rows]``, a new small CSR.
    """

    ndim = 2

    def __init__(self, X, dtype=None, name="X"):
        if not is_scipy_sparse(X):
            raise InvalidTypeError(f"{name} must be a 2-D scipy sparse matrix, got {describe(X)}")
        csr = X.tocsr()
        kind = csr.dtype.kind
        if kind == "c":
            raise InvalidTypeError(f"{name} has complex dtype {csr.dtype}; only real numbers are supported")
        if kind not in "biuf":
            raise InvalidTypeError(f"{name} must hold numbers, got dtype {csr.dtype}")
        if dtype is None:
            dtype = csr.dtype if csr.dtype in (np.float32, np.float64) else np.float64
        self.csr = csr
        self._finite = kind != "f"
        self._set_dtype(check_float_dtype(dtype), name)

    def _set_dtype(self, dtype, name):
        if self.csr.dtype == dtype:
            return
        source = self.csr
        with np.errstate(over="ignore"):  # a value too large for dtype is reported below, by name
            self.csr = source.astype(dtype)
        narrowing = source.dtype.kind == "f" and source.dtype.itemsize > dtype.itemsize
        if narrowing and not np.isfinite(self.csr.data).all():
            _first_bad(source, name)  # NaN or infinity already there: named as such
            big = float(np.abs(source.data).max())
            raise DataError(f"{name} holds values too large for {dtype} (largest magnitude {big:.6g}); "
                            f"scale the data or use float64")

    @classmethod
    def _from_csr(cls, csr, finite):
        obj = object.__new__(cls)
        obj.csr, obj._finite = csr, finite
        return obj

    @property
    def shape(self):
        return self.csr.shape

    @property
    def dtype(self):
        return self.csr.dtype

    @property
    def nnz(self):
        return self.csr.nnz

    def __len__(self):
        return self.csr.shape[0]

    def __getitem__(self, rows):
        """Rows ``rows`` (a slice or a 1-D integer array), as SparseRows."""
        return self._from_csr(self.csr[_rows_key(rows, "SparseRows")], self._finite)

    def __array__(self, dtype=None, copy=None):
        _no_dense_copy(self)

    def __repr__(self):
        n, c = self.shape
        return f"SparseRows({n} rows x {c} columns, {self.nnz} stored values, dtype={self.dtype.name})"

    def toarray(self):
        """The dense array (for tests and small data)."""
        return self.csr.toarray()

    def astype(self, dtype):
        """The same matrix in ``dtype``; self when already."""
        dtype = check_float_dtype(dtype)
        if dtype == self.dtype:
            return self
        return SparseRows(self.csr, dtype=dtype)

    def check_finite(self, name="X"):
        """DataError if a stored value is NaN or infinite (count and first (row, column) named); scans once."""
        if not self._finite:
            _first_bad(self.csr, name)
            self._finite = True

    def matmul_into(self, M, out):
        """``out = X M`` (the first layer's ``Z = A_prev Wᵀ``, ``M = Wᵀ``) by scipy's CSR product; returns ``out``."""
        out[...] = self.csr @ M
        return out

    def tmatmul_into(self, delta, out):
        """``out = Xᵀ Δ`` (the first layer's ``grad_Wᵀ = A_prevᵀ Δ``) by the CSC view ``csr.T``; returns ``out``."""
        out[...] = self.csr.T @ delta
        return out


def _first_bad(csr, name):
    """DataError naming how many stored values of ``csr`` are NaN or infinite and the first one's (row, column)."""
    data = csr.data
    if data.dtype.kind != "f" or np.isfinite(data).all():
        return
    bad = np.flatnonzero(~np.isfinite(data))
    at = int(bad[0])
    row = int(np.searchsorted(csr.indptr, at, side="right")) - 1
    raise DataError(f"{name} holds {bad.size} NaN or infinite value(s); the first is at (row, column) "
                    f"({row}, {int(csr.indices[at])})")


def is_matrix_like(X):
    """Whether ``X`` is one of this module's matrices (OneHotMatrix or SparseRows)."""
    return isinstance(X, (OneHotMatrix, SparseRows))


def as_input(X, dtype, n_features=None, name="X", allow_empty=False):
    """``X`` ready for a network's first layer when it is a OneHotMatrix, SparseRows or scipy sparse; else None.

    Parameters
    ----------
    X : object
    dtype : np.dtype
        The network's dtype; the result holds its values in it.
    n_features : int, optional
        The number of columns required (the network's ``n_in``).
    name : str
        The argument's name in messages.
    allow_empty : bool
        Accept zero rows.

    Returns
    -------
    OneHotMatrix, SparseRows or None
        None for anything else (the caller then checks it as a dense array,
        :func:`deltaprop.checks.check_array`). A scipy matrix is wrapped in
        :class:`SparseRows`; the values are checked finite.

    Raises
    ------
    DataError
        Another number of columns than ``n_features``, zero rows, NaN or
        infinity, values too large for ``dtype``.
    """
    if is_scipy_sparse(X):
        X = SparseRows(X, dtype=dtype, name=name)
    elif not is_matrix_like(X):
        return None
    n, c = X.shape
    if n_features is not None and c != n_features:
        raise DataError(f"{name} has {c} features but the network expects {n_features}")
    if n == 0 and not allow_empty:
        raise DataError(f"{name} has 0 samples (shape {X.shape}); at least one is needed")
    if c == 0:
        raise DataError(f"{name} has 0 features (shape {X.shape}); at least one is needed")
    dtype = check_float_dtype(dtype)
    if isinstance(X, OneHotMatrix):
        return X._checked_as(dtype, name)
    if X.dtype != dtype:
        X = SparseRows(X.csr, dtype=dtype, name=name)
    X.check_finite(name)
    return X
