"""The peers deltaprop is timed against, each trained the same way.

Every runner takes a :class:`Spec` and the data ``(X, y, X_test, y_test)``
(float32 pixels in [0, 1], int64 labels) and returns a dict: per-epoch wall
times, a warm-up time, the test accuracy after training, the final training
loss, and what ran (versions, threads, BLAS). Each runs in its own worker
process (see bench_speed.py), so one library's thread pools never compete
with another's.

Same for all: the architecture (ReLU hidden layers, a softmax output with
categorical cross-entropy), Adam with learning rate 1e-3 and the usual
betas and epsilon, the batch size, a new shuffle of the samples every epoch,
no weight decay (scikit-learn gets ``alpha=0``), ``epochs`` full epochs. The
warm-up trains a throwaway copy of the model for a few steps first (thread
pools, allocators, deltaprop's compiled kernels), so the timed epochs
measure the steady state; the warm-up time is reported too.

* ``torch-manual``: the loop people write by hand: ``randperm`` once per
  epoch, ``X[idx]`` per batch, ``zero_grad(set_to_none=True)``, forward,
  ``CrossEntropyLoss``, ``backward``, ``Adam.step``.
* ``torch-dataloader``: the idiomatic ``DataLoader(TensorDataset(X, y),
  batch_size, shuffle=True)`` loop (default collate, no worker processes).
* ``sklearn-float64``: ``MLPClassifier(solver="adam")`` given float64 input,
  its default; ``sklearn-float32``: the same given float32 input, which it
  keeps. One ``partial_fit`` call is one epoch.
"""

import time
from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass
class Spec:
    """One benchmark configuration."""

    sizes: tuple = (784, 256, 128, 10)
    batch_size: int = 200
    epochs: int = 2
    n_train: int = 60000
    learning_rate: float = 1e-3
    seed: int = 0
    warmup_steps: int = 10
    threads: int = 0  # 0: the library's default
    extra: dict = field(default_factory=dict)

    def as_dict(self):
        return asdict(self)


def _batches(n, bs):
    return -(-n // bs)


# ----------------------------------------------------------------- torch
def _torch_setup(spec):
    import torch

    if spec.threads:
        torch.set_num_threads(spec.threads)
    torch.manual_seed(spec.seed)
    return torch


def _torch_model(torch, sizes):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def _torch_training(torch, spec):
    """``make()`` -> (model, Adam) and ``step(model, opt, xb, yb)`` -> loss: the same for both PyTorch loops."""
    lossf = torch.nn.CrossEntropyLoss()

    def make():
        model = _torch_model(torch, spec.sizes)
        return model, torch.optim.Adam(model.parameters(), lr=spec.learning_rate)

    return make, torch_step(lossf)


def torch_epoch(torch, step, model, opt, Xt, yt, batch_size, gen):
    """One epoch of shuffled mini-batches (the order from ``gen``): ``(seconds, last batch loss)``."""
    t0 = time.perf_counter()
    perm = torch.randperm(Xt.shape[0], generator=gen)
    loss = None
    for i in range(0, Xt.shape[0], batch_size):
        idx = perm[i:i + batch_size]
        loss = step(model, opt, Xt[idx], yt[idx])
    return time.perf_counter() - t0, float(loss.item())


def torch_step(lossf):
    """``step(model, opt, xb, yb)`` -> loss: one PyTorch training step, the same in every benchmark."""
    def step(model, opt, xb, yb):
        opt.zero_grad(set_to_none=True)
        loss = lossf(model(xb), yb)
        loss.backward()
        opt.step()
        return loss

    return step


def _torch_accuracy(torch, model, X_test, y_test):
    with torch.no_grad():
        pred = model(torch.from_numpy(X_test)).argmax(dim=1).numpy()
    return float(np.mean(pred == y_test))


def _torch_info(torch):
    """Version, threads, and the BLAS and CPU kernels torch was built to use (from ``torch.__config__``)."""
    import re

    config = torch.__config__.show()
    blas = re.search(r"BLAS_INFO=(\w+)", config)
    capability = re.search(r"CPU capability usage: (\w+)", config)
    mkl = re.search(r"Math Kernel Library Version ([\w.]+)", config)
    return {"library": "torch", "version": torch.__version__, "threads": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads(),
            "blas": (blas.group(1) if blas else "?") + (f" {mkl.group(1)}" if mkl else ""),
            "cpu_capability": capability.group(1) if capability else None,
            "parallel_info": torch.__config__.parallel_info().strip().splitlines()[:6]}


def torch_manual(spec, data):
    """PyTorch, hand-written loop: permutation per epoch, ``X[idx]`` per batch."""
    torch = _torch_setup(spec)
    X, y, X_test, y_test = data
    n, bs = spec.n_train, spec.batch_size
    Xt, yt = torch.from_numpy(X[:n]), torch.from_numpy(y[:n])
    gen = torch.Generator().manual_seed(spec.seed)

    make, step = _torch_training(torch, spec)

    t0 = time.perf_counter()
    wm, wo = make()
    for i in range(spec.warmup_steps):
        idx = torch.randint(0, n, (bs,), generator=gen)
        step(wm, wo, Xt[idx], yt[idx])
    warmup = time.perf_counter() - t0

    model, opt = make()
    epoch_times, loss = [], None
    for _ in range(spec.epochs):
        seconds, loss = torch_epoch(torch, step, model, opt, Xt, yt, bs, gen)
        epoch_times.append(seconds)
    return {"epoch_seconds": epoch_times, "warmup_seconds": warmup, "final_batch_loss": loss,
            "test_accuracy": _torch_accuracy(torch, model, X_test, y_test), "info": _torch_info(torch)}


def torch_dataloader(spec, data):
    """PyTorch, idiomatic ``DataLoader(TensorDataset, shuffle=True)`` loop."""
    torch = _torch_setup(spec)
    from torch.utils.data import DataLoader, TensorDataset

    X, y, X_test, y_test = data
    n, bs = spec.n_train, spec.batch_size
    dataset = TensorDataset(torch.from_numpy(X[:n]), torch.from_numpy(y[:n]))
    make, step = _torch_training(torch, spec)

    t0 = time.perf_counter()
    wm, wo = make()
    for i, (xb, yb) in enumerate(DataLoader(dataset, batch_size=bs, shuffle=True,
                                            generator=torch.Generator().manual_seed(spec.seed + 1))):
        if i >= spec.warmup_steps:
            break
        step(wm, wo, xb, yb)
    warmup = time.perf_counter() - t0

    model, opt = make()
    loader = DataLoader(dataset, batch_size=bs, shuffle=True, generator=torch.Generator().manual_seed(spec.seed))
    epoch_times, loss = [], None
    for _ in range(spec.epochs):
        t0 = time.perf_counter()
        for xb, yb in loader:
            loss = step(model, opt, xb, yb)
        loss = float(loss.item())
        epoch_times.append(time.perf_counter() - t0)
    return {"epoch_seconds": epoch_times, "warmup_seconds": warmup, "final_batch_loss": loss,
            "test_accuracy": _torch_accuracy(torch, model, X_test, y_test), "info": _torch_info(torch)}


# ---------------------------------------------------------- scikit-learn
def _sklearn(spec, data, dtype):
    import warnings

    import sklearn
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    if spec.threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(spec.threads)
    X, y, X_test, y_test = data
    n, bs = spec.n_train, spec.batch_size
    Xs = X[:n].astype(dtype)
    ys = y[:n]
    classes = np.unique(y)

    def make():
        return MLPClassifier(hidden_layer_sizes=tuple(spec.sizes[1:-1]), activation="relu", solver="adam",
                             alpha=0.0, batch_size=bs, learning_rate_init=spec.learning_rate, max_iter=1,
                             shuffle=True, random_state=spec.seed, tol=0.0, n_iter_no_change=10**9)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        warm_n = min(n, bs * spec.warmup_steps)
        make().partial_fit(Xs[:warm_n], ys[:warm_n], classes=classes)
        warmup = time.perf_counter() - t0
        clf = make()
        epoch_times = []
        for e in range(spec.epochs):
            t0 = time.perf_counter()
            clf.partial_fit(Xs, ys, classes=classes if e == 0 else None)
            epoch_times.append(time.perf_counter() - t0)
    acc = float(np.mean(clf.predict(X_test.astype(dtype)) == y_test))
    return {"epoch_seconds": epoch_times, "warmup_seconds": warmup, "final_epoch_loss": float(clf.loss_),
            "test_accuracy": acc, "info": {"library": "scikit-learn", "version": sklearn.__version__,
                                           "dtype": np.dtype(dtype).name}}


def sklearn_float64(spec, data):
    """scikit-learn ``MLPClassifier`` on float64 input (its default)."""
    return _sklearn(spec, data, np.float64)


def sklearn_float32(spec, data):
    """scikit-learn ``MLPClassifier`` on float32 input."""
    return _sklearn(spec, data, np.float32)


PEERS = {
    "torch-manual": torch_manual,
    "torch-dataloader": torch_dataloader,
    "sklearn-float64": sklearn_float64,
    "sklearn-float32": sklearn_float32,
}
