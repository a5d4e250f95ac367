"""Fused kernels for the training hot loop (numba: a core dependency where it has wheels).

NumPy makes one pass over memory per operation. The hot loop's elementwise
work (bias add and ReLU, ReLU's backward mask and the bias gradient, Adam's
update) is a handful of such passes per layer and per step; at small batches
Adam alone was two thirds of a step. Each kernel here does the same work in
one pass. It computes exactly the operations of its NumPy twin, in the same
order and the same dtype (no fast-math, no fused multiply-add, no reordered
sums), so the two paths give **bit-identical** results, which
``tests/test_speed_paths.py`` checks:

==========================  ==========================================  ==============================
kernel                      NumPy twin                                  caller
==========================  ==========================================  ==============================
``bias_relu(z, b, a)``      ``z += b; np.maximum(z, 0, out=a)``         :meth:`Dense.forward`
``relu_backward_bias``      ``np.multiply(g, z > 0, out=g)``;           :meth:`Dense.backward`
``(g, z, grad_b)``          ``np.sum(g, axis=0, out=grad_b)``
``adam(...)``               the passes of :meth:`Adam._update`,         :meth:`Adam._update`
                            then the subnormal flush
==========================  ==========================================  ==============================

``np.sum(g, axis=0)`` over a C-ordered array adds the rows one after the
other (NumPy's pairwise summation applies only along the contiguous axis),
and so does ``relu_backward_bias``.

Backend choice: the environment variable ``DELTAPROP_KERNELS`` is ``auto``
(the default: numba when it imports), ``numba`` (an error if it does not) or
``numpy``; :func:`set_backend` changes it at run time. numba is imported on
the first training step, never by ``import deltaprop``. The kernels are
compiled on first use and cached on disk (numba's ``cache=True``), so only
the very first run on a machine pays the compilation (a few seconds).

The kernels run on the calling thread. Splitting them over a 2-core
machine's cores was slower and was dropped: they are bound by memory
bandwidth, which one core already uses up, and OpenBLAS's worker thread keeps
the other core busy-waiting after each matrix product (the figures are in
``benchmarks/results/design_notes.md``). So results never depend on a thread
count of ours.
"""

import os
import threading

import numpy as np

from .errors import InvalidArgumentError

__all__ = ["backend", "set_backend", "get", "take_rows", "BACKENDS"]

BACKENDS = ("auto", "numba", "numpy")


_lock = threading.Lock()
_state = {"requested": None, "kernels": None, "resolved": None, "error": None, "compiled": None}


def _requested():
    if _state["requested"] is None:
        value = os.environ.get("DELTAPROP_KERNELS", "auto").strip().lower() or "auto"
        if value not in BACKENDS:
            raise InvalidArgumentError(f"DELTAPROP_KERNELS must be one of {', '.join(BACKENDS)}, got {value!r}")
        _state["requested"] = value
    return _state["requested"]


def set_backend(name):
    """Choose the kernels: ``"auto"`` (numba if installed), ``"numba"`` or ``"numpy"``.

    Returns the backend in force before the call (``"numba"`` or ``"numpy"``),
    so a caller can restore it. Raises ``ImportError`` for ``"numba"`` when
    numba cannot be imported.
    """
    if name not in BACKENDS:
        raise InvalidArgumentError(f"backend must be one of {', '.join(BACKENDS)}, got {name!r}")
    previous = backend()
    with _lock:
        _state["requested"] = name
        _state["resolved"] = None
    get()
    return previous


def backend():
    """The kernels in force: ``"numba"`` or ``"numpy"`` (resolving ``auto`` on first call)."""
    get()
    return _state["resolved"]


#: Floating-point operations of a run below which "auto" does not load numba: importing and loading its cached
#: kernels costs about a second, more than they save on a run this small (the results are the same either way).
WARM_FLOPS = 1e11


def peek():
    """The kernels if they are chosen already (or asked for by name), else ``None``; never loads numba for "auto".

    The layers and optimizers call this in the hot loop; :func:`warm_for`
    decides, once per run, whether a run is large enough to load them.
    """
    resolved = _state["resolved"]
    if resolved is not None:
        return _state["kernels"] if resolved == "numba" else None
    if _requested() == "numba":
        return get()
    return None


def warm_for(flops):
    """Load the kernels (resolving "auto") when a run of ``flops`` operations is worth the start-up."""
    if _state["resolved"] is None and flops >= WARM_FLOPS:
        get()


def get():
    """The compiled kernels (a namespace), or ``None`` for the NumPy path."""
    resolved = _state["resolved"]
    if resolved is not None:
        return _state["kernels"] if resolved == "numba" else None
    with _lock:
        requested = _requested()
        kernels = None
        if requested != "numpy":
            try:
                kernels = _compile()
            except ImportError as exc:
                _state["error"] = exc
                if requested == "numba":
                    raise ImportError(
                        "DELTAPROP_KERNELS=numba but numba cannot be imported "
                        "(pip install 'deltaprop[fast]')"
                    ) from exc
            except Exception as exc:  # numba is there but cannot compile or cache: NumPy path
                _state["error"] = exc
                if requested == "numba":
                    raise
                import warnings

                warnings.warn(f"deltaprop: numba kernels unavailable ({type(exc).__name__}: {exc}); "
                              f"using the NumPy path", RuntimeWarning, stacklevel=2)
        _state["kernels"] = kernels
        _state["resolved"] = "numba" if kernels is not None else "numpy"
        return kernels


# ------------------------------------------------------------------- data
#: rows gathered per fancy-indexing call in take_rows
TAKE_CHUNK = 1024


def take_rows(src, idx, out):
    """``out[i] = src[idx[i]]`` for every ``i``, returning ``out``: ``np.take(src, idx, axis=0, out=out)``, faster.

    ``np.take`` with ``out=`` copies element by element; fancy indexing
    copies whole rows, so gathering chunks of ``TAKE_CHUNK`` rows through a
    small temporary is about twice as fast (``benchmarks/results/design_notes.md``)
    and never holds a second copy of ``src``.
    """
    n = idx.shape[0]
    if n <= TAKE_CHUNK:
        out[:n] = src[idx]
        return out
    for lo in range(0, n, TAKE_CHUNK):
        hi = min(lo + TAKE_CHUNK, n)
        out[lo:hi] = src[idx[lo:hi]]
    return out


# ---------------------------------------------------------------- kernels
# Plain Python first: the same source is the readable statement of what each
# kernel computes. _compile() wraps them with numba.njit on first use.

def _bias_relu(z, b, a, zero):
    # z ← z + b; a ← max(z, 0) as np.maximum(z, 0) gives it: NaN passes
    # through, -0.0 becomes +0.0 (``zero`` is 0 of the arrays' dtype).
    # (Row views let numba see non-negative indices, so it vectorises.)
    m, n = z.shape
    for i in range(m):
        zi, ai = z[i], a[i]
        for j in range(n):
            x = zi[j] + b[j]
            zi[j] = x
            ai[j] = x if (x > 0 or x != x) else zero


def _relu_backward_bias(g, z, grad_b, one, zero):
    # g ← g ⊙ [z > 0], a multiply as np.multiply(g, z > 0) (NaN·0 is NaN,
    # -3·0 is -0.0); grad_b ← Σ_rows g, adding the rows in order, as
    # np.sum(g, axis=0) does. ``one``/``zero`` have the arrays' dtype.
    m, n = g.shape
    if m == 0:  # a data-parallel rank with no rows of this batch
        for j in range(n):
            grad_b[j] = zero
        return
    g0, z0 = g[0], z[0]
    for j in range(n):
        d = g0[j] * (one if z0[j] > 0 else zero)
        g0[j] = d
        grad_b[j] = d
    for i in range(1, m):
        gi, zi = g[i], z[i]
        for j in range(n):
            d = gi[j] * (one if zi[j] > 0 else zero)
            gi[j] = d
            grad_b[j] += d


def _adam(p, g, m, v, b1, a1, b2, a2, c2, eps, c1, flush, tiny):
    # The passes of Adam._update fused; every constant has the arrays' dtype
    # so no intermediate is widened:
    #   m ← m b1 + g a1;  v ← v b2 + (g g) a2;  p ← p - (m / (sqrt(v) c2 + eps)) c1
    # then, on flush steps, state below the smallest normal number → +0.
    # (A loop from 0 over 1-D arrays: numba sees non-negative indices and vectorises.)
    for i in range(p.shape[0]):
        gi = g[i]
        mi = m[i] * b1 + gi * a1
        vi = v[i] * b2 + (gi * gi) * a2
        p[i] = p[i] - (mi / (np.sqrt(vi) * c2 + eps)) * c1
        m[i] = mi
        v[i] = vi
        if flush:
            if abs(mi) < tiny:
                m[i] = 0
            if abs(vi) < tiny:
                v[i] = 0


class _Kernels:
    """The numba-compiled kernels, called with constants of the arrays' dtype."""

    def __init__(self, numba):
        jit = numba.njit(cache=True, nogil=True, error_model="numpy")
        self._bias_relu = jit(_bias_relu)
        self._relu_backward_bias = jit(_relu_backward_bias)
        self._adam = jit(_adam)
        self.numba_version = numba.__version__

    def bias_relu(self, z, b, a):
        """``z += b``; ``a = max(z, 0)``. ``z``, ``a``: (m, n) C-ordered; ``b``: (n,)."""
        self._bias_relu(z, b, a, z.dtype.type(0))

    def relu_backward_bias(self, g, z, grad_b):
        """``g *= (z > 0)``; ``grad_b = g.sum(axis=0)`` (rows added in order)."""
        if g.shape[0] == 0:  # an empty batch (a data-parallel rank without rows): Σ over nothing
            grad_b[...] = 0
            return
        t = g.dtype.type
        self._relu_backward_bias(g, z, grad_b, t(1), t(0))

    def adam(self, p, g, m, v, b1, a1, b2, a2, c2, eps, c1, flush):
        """One fused Adam step over flat arrays; constants are cast to the arrays' dtype."""
        t = p.dtype.type
        self._adam(p, g, m, v, t(b1), t(a1), t(b2), t(a2), t(c2), t(eps), t(c1), bool(flush),
                   t(np.finfo(p.dtype).tiny))


def _compile():
    """The numba kernels, built once per process and tried once on tiny float32 arrays.

    Raises ImportError when numba is missing, and whatever numba raises when
    it cannot compile or cache them.
    """
    if _state.get("compiled") is None:
        import numba

        k = _Kernels(numba)
        z = np.zeros((2, 3), dtype=np.float32)
        p = np.zeros(4, dtype=np.float32)
        k.bias_relu(z, z[0], z.copy())
        k.relu_backward_bias(z, z.copy(), z[0].copy())
        k.adam(p, p.copy(), p.copy(), p.copy(), 0.9, 0.1, 0.999, 0.001, 1.0, 1e-8, 1e-3, True)
        _state["compiled"] = k
    return _state["compiled"]
