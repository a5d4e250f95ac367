"""Feature scaling fitted on training data, in blocks of rows (memory-mapped data welcome)."""

import numpy as np

from ..checks import check_array, check_finite, check_float_dtype, check_positive_int, too_large
from ..checks import chunk_rows as rows_per_block
from ..errors import DataError, InvalidArgumentError, UnknownNameError, describe

__all__ = ["Scaler", "SCALER_KINDS"]


SCALER_KINDS = ("standard", "minmax", "none")


#: columns whose largest magnitude passes this are accumulated in units of a power of two,
#: so that squares cannot overflow; smaller ones (all ordinary data) in plain units, bit for bit as before
_UNIT_THRESHOLD = 2.0**400


def _in_units(block, biggest, unit, mean, m2):
    """``block / unit``, first raising ``unit`` (in place, with ``mean`` and ``m2``) where ``biggest`` passes it.

    ``unit`` stays 1 while a column's largest magnitude is below 2**400; then
    it becomes the power of two at that magnitude, so that ``x / unit`` is at
    most 1 and its square cannot overflow. Powers of two scale exactly.
    """
    need = biggest > np.maximum(unit, 1.0) * np.where(unit == 1.0, _UNIT_THRESHOLD, 1.0)
    if not need.any():
        return block if (unit == 1.0).all() else block / unit
    new = unit.copy()
    new[need] = np.ldexp(1.0, np.frexp(biggest[need])[1])
    ratio = unit / new
    mean *= ratio
    m2 *= ratio * ratio
    unit[...] = new
    return block / unit


class Scaler:
    """Per-feature affine scaling ``x' = (x - offset) / scale``, fitted on training data.

    - ``"standard"``: offset = mean, scale = standard deviation (population,
      ``ddof=0``), so each feature of the training data gets mean 0 and
      variance 1.
    - ``"minmax"``: offset = min, scale = max - min, so the training data
      spans [0, 1].
    - ``"none"``: offset 0, scale 1 (only the dtype conversion and the
      feature-count check remain).

    A constant feature (max == min in the training data) gets scale 1, as in
    scikit-learn, so it becomes 0 and never a division by zero.

    Parameters
    ----------
    kind : {"standard", "minmax", "none"}, default "standard"

    Attributes
    ----------
    offset_ : ndarray of float64, shape (n_features,)
    scale_ : ndarray of float64, shape (n_features,)
        Positive and finite.
    n_features_in_ : int
    """

    def __init__(self, kind="standard"):
        if kind not in SCALER_KINDS:
            raise UnknownNameError(
                f"unknown scaler kind {describe(kind)}; the kinds are {', '.join(map(repr, SCALER_KINDS))}"
            )
        self.kind = kind
        self.offset_ = None
        self.scale_ = None
        self.n_features_in_ = None

    def __repr__(self):
        fitted = "" if self.n_features_in_ is None else f", n_features={self.n_features_in_}"
        return f"Scaler(kind={self.kind!r}{fitted})"

    def fit(self, X, chunk_rows=None):
        """Compute offset and scale from training features ``X``.

        Reads ``X`` once, in blocks of rows (``chunk_rows`` each; by default
        about a million values), so a memory-mapped ``X`` never has to fit in
        memory. Statistics accumulate in float64: the mean and variance with
        Chan et al.'s pairwise update of (count, mean, M2), which stays accurate
        over many blocks, and min/max exactly.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)
        chunk_rows : int or None

        Returns
        -------
        self

        Raises
        ------
        DataError
            NaN or infinity in ``X``, no samples, or (``"minmax"``) a column
            whose range ``max - min`` passes float64's largest value.
        """
        X = check_array(X, "X", finite=False)
        n_samples, n_features = X.shape
        step = rows_per_block(n_features) if chunk_rows is None else check_positive_int(chunk_rows, "chunk_rows")
        count = 0
        mean = np.zeros(n_features)
        m2 = np.zeros(n_features)
        unit = np.ones(n_features)  # mean and m2 are in units of `unit` (a power of two): never overflow
        lo = np.full(n_features, np.inf)
        hi = np.full(n_features, -np.inf)
        for start in range(0, n_samples, step):
            block = np.asarray(X[start : start + step], dtype=np.float64)
            if not np.isfinite(block).all():
                check_finite(X, "X")
            np.minimum(lo, block.min(axis=0), out=lo)
            np.maximum(hi, block.max(axis=0), out=hi)
            if self.kind != "standard":
                continue
            block = _in_units(block, np.maximum(-lo, hi), unit, mean, m2)
            n_b = block.shape[0]
            mean_b = block.mean(axis=0)
            centred = block - mean_b  # never in place: block may be a view of X
            m2_b = np.einsum("ij,ij->j", centred, centred)
            total = count + n_b
            delta = mean_b - mean
            mean += delta * (n_b / total)
            m2 += m2_b + delta**2 * (count * n_b / total)
            count = total
        constant = hi == lo
        if self.kind == "standard":
            offset = np.where(constant, lo, mean * unit)
            scale = np.sqrt(m2 / n_samples) * unit
        elif self.kind == "minmax":
            offset = lo
            with np.errstate(over="ignore"):
                scale = hi - lo
            if not np.isfinite(scale).all():
                j = int(np.argmin(np.isfinite(scale)))
                raise DataError(
                    f"X column {j} spans {lo[j]:.6g} to {hi[j]:.6g}, a range float64 cannot hold; "
                    f"rescale the column or use scale='standard'"
                )
        else:
            offset = np.zeros(n_features)
            scale = np.ones(n_features)
        scale[constant | (scale == 0)] = 1.0
        self.offset_, self.scale_, self.n_features_in_ = offset, scale, n_features
        return self

    def transform(self, X, dtype=np.float32, out=None):
        """Scale ``X`` with the fitted offset and scale.

        Works in blocks of rows; a memory-mapped ``X`` is read block by block
        and only the result is held in memory (or written into ``out``).

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)
        dtype : float dtype, default np.float32
        out : ndarray of shape (n_samples, n_features) and dtype ``dtype``, optional
            Where to write the result (may be ``X`` itself when the dtypes match).

        Returns
        -------
        ndarray of shape (n_samples, n_features) and dtype ``dtype``

        Raises
        ------
        InvalidArgumentError
            Not fitted, or a feature count different from fit's (both named),
            or a bad ``out``.
        DataError
            NaN or infinity in ``X``, or a result too large for ``dtype``
            (the column and the value are named).
        """
        if self.n_features_in_ is None:
            raise InvalidArgumentError("this Scaler is not fitted yet: call fit(X_train) first")
        X = check_array(X, "X", allow_empty=True, finite=False)
        if X.shape[1] != self.n_features_in_:
            raise InvalidArgumentError(
                f"X has {X.shape[1]} features, but this Scaler was fitted on {self.n_features_in_} features"
            )
        dtype = check_float_dtype(dtype, "dtype")
        if out is None:
            out = np.empty(X.shape, dtype=dtype)
        elif not isinstance(out, np.ndarray) or out.shape != X.shape or out.dtype != dtype:
            got = f"{out.dtype} {out.shape}" if isinstance(out, np.ndarray) else describe(out)
            raise InvalidArgumentError(
                f"out must be an ndarray of dtype {dtype} and shape {X.shape}, got {got} "
                f"(pass dtype= to match out's dtype)"
            )
        identity = self.kind == "none"
        offset, scale = self.offset_, self.scale_
        step = rows_per_block(X.shape[1])
        for start in range(0, X.shape[0], step):
            block = X[start : start + step]
            if block.dtype.kind == "f" and not np.isfinite(block).all():
                check_finite(X, "X")
            target = out[start : start + step]
            with np.errstate(over="ignore"):  # an overflow is found and named just below
                if identity:
                    target[...] = block
                else:
                    # (x - offset) / scale in float64, rounded once into out's dtype: the very numbers the data
                    # contract (deltaprop.tabular.Schema.transform) gives the model at prediction time
                    z = np.subtract(block, offset, dtype=np.float64)
                    np.divide(z, scale, out=z)
                    target[...] = z
            if target.dtype.kind == "f" and not np.isfinite(target).all():
                self._overflow(block, target, dtype)
        return out

    def _overflow(self, block, target, dtype):
        """Name the column whose (finite) values, scaled, do not fit ``dtype``."""
        j = int(np.argmin(np.isfinite(target).all(axis=0)))
        x = np.asarray(block[:, j], dtype=np.float64)
        if np.abs(x).max() > np.finfo(dtype).max:
            raise too_large("X", j, np.abs(x).max(), dtype)
        i = int(np.argmax(~np.isfinite(target[:, j])))
        raise DataError(
            f"X column {j} holds {x[i]:.6g}, which this Scaler (offset {self.offset_[j]:.6g}, scale "
            f"{self.scale_[j]:.6g}) maps beyond {dtype}'s largest {np.finfo(dtype).max:.2g}; "
            f"train in float64 (dtype='float64', --dtype float64) or refit the scaler on data like this"
        )

    def fit_transform(self, X, dtype=np.float32, out=None):
        """``fit(X)`` then ``transform(X, dtype, out)``."""
        return self.fit(X).transform(X, dtype=dtype, out=out)

    def inverse_transform(self, X):
        """Back to the original units: ``x = x' · scale + offset``, computed in float64.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Scaled values (a network's outputs for standardised targets).

        Returns
        -------
        ndarray of float64, shape (n_samples, n_features)
        """
        if self.n_features_in_ is None:
            raise InvalidArgumentError("this Scaler is not fitted yet: call fit(X_train) first")
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise InvalidArgumentError(
                f"X has shape {X.shape}, but this Scaler was fitted on {self.n_features_in_} features"
            )
        return X.astype(np.float64) * self.scale_ + self.offset_

    def state(self):
        """Everything needed to rebuild this fitted scaler, for model files.

        Returns
        -------
        config : dict
            JSON-serialisable: ``{"kind": str, "n_features": int}``.
        arrays : dict of str to ndarray
            ``{"offset": float64 (n_features,), "scale": float64 (n_features,)}``
            (copies).
        """
        if self.n_features_in_ is None:
            raise InvalidArgumentError("this Scaler is not fitted yet: call fit(X_train) before state()")
        config = {"kind": self.kind, "n_features": int(self.n_features_in_)}
        return config, {"offset": self.offset_.copy(), "scale": self.scale_.copy()}

    @classmethod
    def from_state(cls, config, arrays):
        """Rebuild a fitted scaler from :meth:`state`'s output, validating every field.

        Raises
        ------
        InvalidArgumentError
            A config that is not a dict, an unknown kind, a bad feature count.
        DataError
            Arrays missing, of the wrong shape, not finite, scale not positive,
            or (kind "none") not offset 0 and scale 1.
        """
        if not isinstance(config, dict):
            raise InvalidArgumentError(f"scaler config must be a dict, got {describe(config)}")
        if not isinstance(arrays, dict):
            raise InvalidArgumentError(f"scaler arrays must be a dict, got {describe(arrays)}")
        scaler = cls(config.get("kind"))
        n = config.get("n_features")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InvalidArgumentError(f"scaler n_features must be a positive int, got {describe(n)}")
        loaded = {}
        for key in ("offset", "scale"):
            if key not in arrays:
                raise DataError(f"scaler state lacks the array {key!r} (found {sorted(arrays)})")
            a = np.asarray(arrays[key])
            if a.dtype.kind not in "iuf" or a.shape != (n,):
                raise DataError(
                    f"scaler array {key!r} must be real numbers of shape ({n},), got {a.dtype} {a.shape}"
                )
            a = a.astype(np.float64)
            if not np.isfinite(a).all():
                raise DataError(f"scaler array {key!r} holds NaN or infinite values")
            loaded[key] = a
        if not (loaded["scale"] > 0).all():
            raise DataError(f"scaler array 'scale' must be positive, got minimum {loaded['scale'].min()}")
        if scaler.kind == "none" and (loaded["offset"].any() or (loaded["scale"] != 1).any()):
            raise DataError("a scaler of kind 'none' must have offset 0 and scale 1")
        scaler.offset_, scaler.scale_, scaler.n_features_in_ = loaded["offset"], loaded["scale"], n
        return scaler
