"""Serving an epoch's mini-batches: gathered from memory, or streamed from a file.

:class:`EpochBatches` hands the training loop rows ``r0:r1`` of the epoch's
order (features, prepared targets and weights). In memory, each batch is
gathered into buffers reused across steps; an ``np.memmap`` larger than
:data:`STREAM_BYTES` is read batch by batch instead (through
:class:`PreadvRows`), checked as it is read, so memory stays bounded by the
batch whatever the file's size.

:class:`ShardRandom` is the random source of one data-parallel rank: it draws
the numbers of the whole global batch and keeps this rank's rows, so dropout
masks are the ones a single process would draw.
"""

import os

import numpy as np

from ._kernels import take_rows
from .checks import check_array
from .errors import DataError
from .sparse import is_matrix_like

__all__ = ["EpochBatches", "PreadvRows", "ShardRandom", "STREAM_BYTES"]

#: memory-mapped inputs larger than this are read batch by batch instead of
#: being permuted into memory once per epoch
STREAM_BYTES = 256 * 2**20


class PreadvRows:
    """Reads rows of an ``.npy`` memmap with ``os.preadv`` into a reused buffer.

    Indexing an ``np.memmap`` maps the pages it touches into the process, and
    they stay resident: over an epoch of random batches the resident memory
    grows to the file's size. Reading rows with ``preadv`` goes through the
    page cache instead, which the kernel reclaims, so the process holds only
    the batch (a 4 GB file trains with a few tens of MB resident).

    Used for a C-ordered memmap of a file (or a row slice of one); anything
    else is gathered by indexing.
    """

    def __init__(self, X):
        import mmap  # only a streamed run needs it: import deltaprop stays light

        root = X
        while isinstance(root, np.memmap) and not isinstance(root.base, mmap.mmap):
            root = root.base  # a view (e.g. the training part of a validation split)
        if not (isinstance(X, np.memmap) and isinstance(root, np.memmap) and X.flags.c_contiguous
                and X.filename and hasattr(os, "preadv")):
            raise ValueError("not a C-ordered memmap of a file")
        # file offset of X's first row: the root's offset plus how far into it X starts
        self.path = X.filename
        self.offset = int(root.offset) + (X.ctypes.data - root.ctypes.data)
        self.row_bytes = X.shape[1] * X.dtype.itemsize
        self.dtype, self.n_cols = X.dtype, X.shape[1]
        self._fd = None
        self._buf = None

    def read(self, idx):
        """Rows ``idx`` (1-D int array) of the file, in that order, as a view of the reused buffer."""
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        k = idx.shape[0]
        if self._buf is None or self._buf.shape[0] < k:
            self._buf = np.empty((k, self.n_cols), dtype=self.dtype)
        out = self._buf[:k]
        rows = memoryview(out.reshape(-1).view(np.uint8))
        for i, r in enumerate(idx.tolist()):
            got = os.preadv(self._fd, [rows[i * self.row_bytes:(i + 1) * self.row_bytes]],
                            self.offset + r * self.row_bytes)
            if got != self.row_bytes:
                raise DataError(f"{self.path}: short read at row {r} (file truncated?)")
        return out

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class EpochBatches:
    """Training arrays, served one batch of the epoch's order at a time.

    Parameters
    ----------
    X : ndarray of shape (n, n_features)
        Checked and converted to ``dtype`` already, or an ``np.memmap``: a
        small one is read into memory (and checked) here, a large one is
        streamed and each batch checked as it is read. A ``OneHotMatrix`` or
        ``SparseRows`` (:mod:`deltaprop.sparse`, checked already) gives each
        batch as ``X[idx]``, its rows in the epoch's order (the dense path's
        order, so a seed gives the same batches), never densified.
    Y : ndarray of shape (n, n_out)
        Prepared targets.
    w : ndarray of shape (n,) or None
        Per-sample weights.
    n_features : int
    dtype : np.dtype
        The network's dtype.
    """

    def __init__(self, X, Y, w, n_features, dtype):
        self.n_features, self.dtype = n_features, dtype
        self.streaming = isinstance(X, np.memmap) and X.nbytes > STREAM_BYTES
        if self.streaming:
            X = check_array(X, "X", n_features=n_features, finite=False)  # shape and dtype; rows when read
        elif isinstance(X, np.memmap):
            X = check_array(X, "X", n_features=n_features, dtype=dtype)
        self.X, self.Y, self.w = X, Y, w
        self.matrix_like = is_matrix_like(X)
        self.n = X.shape[0]
        self.perm = None
        self._bufs = None
        self.reader = None
        if self.streaming:
            try:
                self.reader = PreadvRows(X)
            except ValueError:
                self.reader = None  # a view or an F-ordered memmap: plain indexing

    def arrange(self, perm):
        """Order the epoch's data by ``perm`` (None: as stored): each batch gathers its rows into reused buffers."""
        self.perm = perm

    def _gather(self, r0, r1):
        idx = self.perm[r0:r1]
        k = r1 - r0
        if self._bufs is None or self._bufs[1].shape[0] < k:
            self._bufs = (None if self.matrix_like else np.empty((k,) + self.X.shape[1:], self.X.dtype),
                          np.empty((k,) + self.Y.shape[1:], self.Y.dtype),
                          None if self.w is None else np.empty(k, self.w.dtype))
        bx, by, bw = self._bufs
        xb = self.X[idx] if self.matrix_like else take_rows(self.X, idx, bx[:k])
        return xb, take_rows(self.Y, idx, by[:k]), None if self.w is None else take_rows(self.w, idx, bw[:k])

    def batch(self, r0, r1):
        """Rows ``r0:r1`` of the epoch's order: (X, Y, w or None)."""
        if r1 <= r0:  # a data-parallel rank with no rows of this batch
            X0 = np.empty((0, self.n_features), dtype=self.dtype)
            return X0, self.Y[:0], None if self.w is None else self.w[:0]
        if not self.streaming:
            if self.perm is None:
                return self.X[r0:r1], self.Y[r0:r1], None if self.w is None else self.w[r0:r1]
            return self._gather(r0, r1)
        idx = np.arange(r0, r1) if self.perm is None else self.perm[r0:r1]
        rows = self.reader.read(idx) if self.reader is not None else self.X[idx]
        xb = check_array(rows, f"X (rows of batch {r0}:{r1})", n_features=self.n_features, dtype=self.dtype)
        return xb, self.Y[idx], None if self.w is None else self.w[idx]

    def weight_sum(self, r0, r1):
        """``Σ w`` over rows ``r0:r1`` of the epoch's order (their count without weights)."""
        if self.w is None:
            return float(r1 - r0)
        idx = slice(r0, r1) if self.perm is None else self.perm[r0:r1]
        return float(self.w[idx].sum())

    def close(self):
        """Close the file a streamed run reads from."""
        if self.reader is not None:
            self.reader.close()


class ShardRandom:
    """A random source for rows ``start:start+m`` of a global batch of ``total`` rows.

    ``random((m, n), dtype)`` draws ``(total, n)`` numbers from ``rng``, as
    one process training on the whole batch would, and returns this shard's
    rows; every rank advances its generator identically, so all ranks stay
    in step and the masks do not depend on the number of ranks.
    """

    def __init__(self, rng):
        self.rng = rng
        self.start = 0
        self.total = 0

    def shard(self, start, total):
        """Set the shard's place in the global batch; returns self."""
        self.start, self.total = start, total
        return self

    def random(self, shape, dtype=np.float64):
        m, n = shape
        return self.rng.random((self.total, n), dtype=dtype)[self.start:self.start + m]
