"""Tests of the optimized paths: they must give what simple reference code gives.

Three layers of checks, none of them timed:

* each numba kernel in :mod:`deltaprop._kernels` against its NumPy twin,
  bit for bit, including NaN, ±inf, -0.0 and subnormal inputs;
* whole training runs with the numba kernels against the pure-NumPy path
  (bit-identical parameters, for float32 and float64, ReLU with dropout,
  other activations, AdamW with its decay mask, a short last batch), and
  against a plain reference written from the equations (forward, backward,
  Adam) within rounding;
* determinism: the same seed gives bit-identical weights run to run.

The kernel tests are skipped when numba is not installed; the reference
tests then check the NumPy path alone.
"""

import importlib.util
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import deltaprop as dp
from deltaprop import _kernels

HAVE_NUMBA = importlib.util.find_spec("numba") is not None

needs_numba = pytest.mark.skipif(not HAVE_NUMBA, reason="numba is not installed (the 'fast' extra)")
BACKENDS = ["numpy"] + (["numba"] if HAVE_NUMBA else [])
DTYPES = [np.float32, np.float64]


@pytest.fixture
def backend():
    """Restore the backend in force after a test that switches it."""
    previous = _kernels.backend()
    yield _kernels.set_backend
    _kernels.set_backend(previous)


def nasty(rng, shape, dtype):
    """Normal values salted with NaN, ±inf, ±0.0 and subnormals."""
    x = rng.normal(size=shape).astype(dtype)
    flat = x.reshape(-1)
    tiny = np.finfo(dtype).tiny
    specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, tiny / 4, -tiny / 8, tiny, -tiny], dtype=dtype)
    where = rng.choice(flat.size, size=min(flat.size, 3 * specials.size), replace=False)
    flat[where] = np.resize(specials, where.size)
    return x


def same_bits(a, b):
    """Equal bit patterns, -0.0 differing from +0.0; every NaN counts as one (the sign of a NaN is noise)."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    view = {4: np.uint32, 8: np.uint64}[a.dtype.itemsize]
    keep = ~np.isnan(a)
    np.testing.assert_array_equal(a[keep].view(view), b[keep].view(view))


# ---------------------------------------------------------------------------
# Kernels against their NumPy twins, bit for bit
# ---------------------------------------------------------------------------

@needs_numba
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(0, 3), (1, 1), (3, 7), (32, 256), (65, 33)])
def test_bias_relu_kernel_matches_numpy(dtype, shape):
    rng = np.random.default_rng(1)
    z = nasty(rng, shape, dtype)
    b = nasty(rng, shape[1:], dtype)
    with np.errstate(invalid="ignore"):
        z_ref = z + b
        a_ref = np.maximum(z_ref, 0)
    k = _kernels._compile()
    a = np.full_like(z, 7.0)
    k.bias_relu(z, b, a)
    same_bits(z, z_ref)
    same_bits(a, a_ref)


@needs_numba
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(0, 4), (1, 4), (2, 3), (32, 128), (200, 17)])
def test_relu_backward_bias_kernel_matches_numpy(dtype, shape):
    rng = np.random.default_rng(2)
    g = nasty(rng, shape, dtype)
    z = nasty(rng, shape, dtype)
    with np.errstate(invalid="ignore"):
        delta_ref = np.multiply(g, z > 0)
        gb_ref = np.sum(delta_ref, axis=0)
    k = _kernels._compile()
    gb = np.full(shape[1], 7.0, dtype=dtype)
    k.relu_backward_bias(g, z, gb)
    same_bits(g, delta_ref)
    same_bits(gb, gb_ref)


def numpy_adam_passes(p, g, m, v, b1, b2, eps, lr, t, flush):
    """Adam._update's NumPy passes and the base class's flush, spelled out."""
    tmp = np.empty_like(p)
    m *= b1
    np.multiply(g, 1.0 - b1, out=tmp)
    m += tmp
    v *= b2
    np.multiply(g, g, out=tmp)
    tmp *= 1.0 - b2
    v += tmp
    bc1, bc2 = 1.0 - b1 ** t, 1.0 - b2 ** t
    np.sqrt(v, out=tmp)
    tmp *= 1.0 / math.sqrt(bc2)
    tmp += eps
    np.divide(m, tmp, out=tmp)
    tmp *= lr / bc1
    p -= tmp
    if flush:
        tiny = np.finfo(p.dtype).tiny
        for s in (m, v):
            s[np.abs(s) < tiny] = 0


@needs_numba
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("flush", [False, True])
@pytest.mark.parametrize("n", [1, 63, 1000])
def test_adam_kernel_matches_numpy(dtype, flush, n):
    rng = np.random.default_rng(3)
    tiny = np.finfo(dtype).tiny
    p = rng.normal(size=n).astype(dtype)
    g = rng.normal(size=n).astype(dtype)
    g[::5] = 0.0  # zero gradients: the moments only decay
    m = (rng.normal(size=n) * 1e-3).astype(dtype)
    v = (rng.random(n) * 1e-4).astype(dtype)
    m[::7] = tiny * 1.5  # decays below tiny this step
    m[1::7] = -tiny / 3  # already subnormal
    v[2::7] = tiny / 5
    b1, b2, eps, lr, t = 0.9, 0.999, 1e-8, 1e-3, 17
    ref = [a.copy() for a in (p, g, m, v)]
    with np.errstate(invalid="ignore", divide="ignore"):
        numpy_adam_passes(*ref, b1, b2, eps, lr, t, flush)
        bc1, bc2 = 1.0 - b1 ** t, 1.0 - b2 ** t
        _kernels._compile().adam(p, g, m, v, b1, 1.0 - b1, b2, 1.0 - b2, 1.0 / math.sqrt(bc2), eps, lr / bc1, flush)
    for got, want in zip((p, g, m, v), ref):
        same_bits(got, want)
    if flush:
        assert np.all((m == 0) | (np.abs(m) >= tiny)) and np.all((v == 0) | (v >= tiny))


# ---------------------------------------------------------------------------
# Whole runs: numba kernels against the NumPy path
# ---------------------------------------------------------------------------

def fit_params(backend_name, set_backend, dtype="float32", layers=None, optimizer="adam", epochs=2, n=203,
               batch_size=16, seed=5):
    set_backend(backend_name)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 12))
    X[:, :3] = 0.0  # always-zero inputs: their weights' gradients are exactly zero
    y = rng.integers(0, 4, size=n)
    layers = layers or (lambda: [dp.Dense(12, 16, activation="relu"),
                                 dp.Dense(16, 8, activation="relu", dropout=0.25),
                                 dp.Dense(8, 4, activation="softmax")])
    net = dp.Network(layers(), dtype=dtype, seed=seed)
    opt = dp.optimizers.get(optimizer) if isinstance(optimizer, str) else optimizer()
    history = net.fit(X, y, epochs=epochs, batch_size=batch_size, optimizer=opt, verbose=0)
    return net.params.copy(), history["loss"], opt


@needs_numba
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_training_with_kernels_is_bit_identical_to_numpy(backend, dtype):
    p_np, loss_np, opt_np = fit_params("numpy", backend, dtype)
    p_nb, loss_nb, opt_nb = fit_params("numba", backend, dtype)
    same_bits(p_nb, p_np)
    assert loss_nb == loss_np
    for k in opt_np.state:
        same_bits(opt_nb.state[k], opt_np.state[k])


@needs_numba
@pytest.mark.parametrize("optimizer", [
    lambda: dp.AdamW(learning_rate=3e-3, weight_decay=0.1),
    lambda: dp.Adam(learning_rate=3e-3, weight_decay=1e-3, clipnorm=0.5),
    lambda: dp.SGD(learning_rate=0.05, momentum=0.9, nesterov=True),
])
def test_other_optimizers_and_activations_are_bit_identical(backend, optimizer):
    layers = lambda: [dp.Dense(12, 10, activation="tanh"), dp.Dense(10, 9, activation="relu"),  # noqa: E731
                      dp.Dense(9, 7, activation="leaky_relu"), dp.Dense(7, 4, activation="softmax")]
    p_np, _, _ = fit_params("numpy", backend, layers=layers, optimizer=optimizer, n=77, batch_size=10)
    p_nb, _, _ = fit_params("numba", backend, layers=layers, optimizer=optimizer, n=77, batch_size=10)
    same_bits(p_nb, p_np)


@needs_numba
def test_kernels_are_used_in_training(backend, monkeypatch):
    backend("numba")
    calls = {"bias_relu": 0, "relu_backward_bias": 0, "adam": 0}
    k = _kernels.get()
    for name in calls:
        original = getattr(k, name)

        def counted(*args, _name=name, _original=original):
            calls[_name] += 1
            return _original(*args)

        monkeypatch.setattr(k, name, counted)
    fit_params("numba", backend, epochs=1, n=32, batch_size=16)
    assert calls == {"bias_relu": 4, "relu_backward_bias": 4, "adam": 2}


@needs_numba
def test_subnormal_moments_are_flushed_on_the_fused_path(backend):
    backend("numba")
    p = np.zeros(3, dtype=np.float32)
    opt = dp.Adam(learning_rate=0.01)
    opt.init(p)
    opt.state["m"][...] = np.float32(1e-30)
    zero = np.zeros(3, dtype=np.float32)
    for _ in range(15):
        opt.step(p, zero.copy())
    assert np.all(opt.state["m"] > 0)
    opt.state["m"][...] = np.float32(1e-39)  # subnormal in float32
    opt.step(p, zero.copy())  # the 16th step flushes
    same_bits(opt.state["m"], np.zeros(3, dtype=np.float32))


# ---------------------------------------------------------------------------
# Against a plain reference written from the equations
# ---------------------------------------------------------------------------

def reference_gradients(Ws, bs, X, y, n_classes):
    """Forward and backward in float64, straight from the seed's row-form equations (ReLU hidden, softmax)."""
    A = [X]
    Zs = []
    for i, (W, b) in enumerate(zip(Ws, bs)):
        Z = A[-1] @ W.T + b
        Zs.append(Z)
        if i < len(Ws) - 1:
            A.append(np.maximum(Z, 0.0))
        else:
            E = np.exp(Z - Z.max(axis=1, keepdims=True))
            A.append(E / E.sum(axis=1, keepdims=True))
    m = X.shape[0]
    Y = np.eye(n_classes)[y]
    loss = -np.mean(np.sum(Y * np.log(A[-1]), axis=1))
    delta = (A[-1] - Y) / m
    gW, gb = [None] * len(Ws), [None] * len(Ws)
    for i in range(len(Ws) - 1, -1, -1):
        gW[i] = delta.T @ A[i]
        gb[i] = delta.sum(axis=0)
        if i:
            delta = (delta @ Ws[i]) * (Zs[i - 1] > 0)
    return loss, gW, gb


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_gradients_match_the_reference(backend, name, dtype):
    backend(name)
    rng = np.random.default_rng(7)
    net = dp.Network([dp.Dense(9, 13, activation="relu"), dp.Dense(13, 6, activation="relu"),
                      dp.Dense(6, 3, activation="softmax")], dtype=np.dtype(dtype).name, seed=3)
    X = rng.normal(size=(25, 9))
    y = rng.integers(0, 3, size=25)
    loss = net.loss_and_gradients(X, y)
    ref_loss, gW, gb = reference_gradients([layer.W.astype(np.float64) for layer in net.layers],
                                           [layer.b.astype(np.float64) for layer in net.layers],
                                           X.astype(dtype).astype(np.float64), y, 3)
    rtol, atol = (1e-4, 1e-6) if dtype == np.float32 else (1e-12, 1e-14)
    assert loss == pytest.approx(ref_loss, rel=rtol)
    for layer, w, b in zip(net.layers, gW, gb):
        np.testing.assert_allclose(layer.grad_W, w, rtol=rtol, atol=atol)
        np.testing.assert_allclose(layer.grad_b, b, rtol=rtol, atol=atol)


def reference_adam(p, grads, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
    """Kingma and Ba's Algorithm 1 in float64, one gradient per step."""
    p = p.astype(np.float64).copy()
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p -= lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
    return p


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_matches_the_reference(backend, name, dtype):
    backend(name)
    rng = np.random.default_rng(11)
    p0 = rng.normal(size=500)
    grads = [rng.normal(size=500) * (rng.random(500) > 0.3) for _ in range(40)]
    p = p0.astype(dtype)
    opt = dp.Adam(learning_rate=1e-2)
    opt.init(p)
    for g in grads:
        opt.step(p, g.astype(dtype))
    want = reference_adam(p0, [g.astype(dtype).astype(np.float64) for g in grads], lr=1e-2)
    rtol, atol = (2e-5, 1e-6) if dtype == np.float32 else (1e-12, 1e-13)
    np.testing.assert_allclose(p, want, rtol=rtol, atol=atol)


# ---------------------------------------------------------------------------
# Determinism and loading
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", BACKENDS)
def test_same_seed_gives_bit_identical_runs(backend, name):
    first, _, _ = fit_params(name, backend)
    second, _, _ = fit_params(name, backend)
    same_bits(first, second)


def test_backend_names_are_checked(backend, monkeypatch):
    with pytest.raises(ValueError, match="backend must be one of"):
        _kernels.set_backend("fortran")
    backend("numpy")
    assert _kernels.get() is None and _kernels.backend() == "numpy"
    monkeypatch.setenv("DELTAPROP_KERNELS", "cuda")
    monkeypatch.setitem(_kernels._state, "requested", None)
    monkeypatch.setitem(_kernels._state, "resolved", None)
    with pytest.raises(ValueError, match="DELTAPROP_KERNELS must be one of"):
        _kernels.get()


def test_numba_is_not_imported_until_training():
    code = ("import sys, numpy as np, deltaprop as dp\n"
            "net = dp.Network([dp.Dense(4, 3, activation='relu'), dp.Dense(3, 2, activation='softmax')], seed=0)\n"
            "net.predict(np.ones((5, 4)))\n"
            "assert 'numba' not in sys.modules, 'numba imported before training'\n"
            "print('ok')\n")
    env = dict(os.environ, DELTAPROP_KERNELS="auto")
    src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


@pytest.mark.parametrize("n", [0, 1, 1023, 1024, 1025, 5000])
def test_take_rows_matches_np_take(n):
    rng = np.random.default_rng(12)
    src = rng.normal(size=(3000, 5)).astype(np.float32)
    idx = rng.integers(0, 3000, size=n)
    out = np.full((n, 5), np.nan, dtype=np.float32)
    assert _kernels.take_rows(src, idx, out) is out
    same_bits(out, np.take(src, idx, axis=0))


@needs_numba
def test_a_kernel_that_cannot_compile_falls_back_to_numpy(backend, monkeypatch):
    def broken(self, numba_module):
        raise RuntimeError("cannot cache function: no locator available")

    monkeypatch.setattr(_kernels._Kernels, "__init__", broken)
    monkeypatch.setitem(_kernels._state, "compiled", None)
    with pytest.warns(RuntimeWarning, match="using the NumPy path"):
        backend("auto")
    assert _kernels.backend() == "numpy"
    with pytest.raises(RuntimeError, match="no locator"):
        _kernels.set_backend("numba")
    monkeypatch.undo()
    _kernels.set_backend("numba")
    assert _kernels.backend() == "numba"
