"""Scripts that tests/test_distributed.py runs, under ``mpiexec -n N`` or as one plain process.

    python _mpi_child.py SCENARIO OUTDIR [--plain] [options]

Rank 0 writes the results into OUTDIR: ``NAME.npy`` (final parameters),
``NAME-buffers.npy`` (final running statistics, empty without BatchNorm) and
``NAME.json`` (history and checks). tests/test_distributed_layers.py uses the
``bn*`` and ``ln*`` configurations. ``--plain`` trains without MPI (the
single-process reference); otherwise every run goes through ``MPIComm``.
Not a test module itself (its name starts with an underscore).
"""

import argparse
import json
import os
import sys

import numpy as np

import deltaprop as dp
from deltaprop import batches

N_SAMPLES, N_FEATURES, N_CLASSES = 203, 8, 3


def make_data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N_SAMPLES + 60, N_FEATURES))
    logits = X @ rng.standard_normal((N_FEATURES, N_CLASSES)) + 0.5 * rng.standard_normal((X.shape[0], N_CLASSES))
    y = logits.argmax(axis=1)
    t = np.tanh(X[:, 0] - 0.5 * X[:, 1]) + 0.1 * X[:, 2]
    w = rng.uniform(0.2, 2.0, X.shape[0])
    return X[:N_SAMPLES], y[:N_SAMPLES], t[:N_SAMPLES], w[:N_SAMPLES], (X[N_SAMPLES:], y[N_SAMPLES:])


def build(name, rank=0):
    """The network, fit arguments and data of each configuration (``rank``: the caller's rank)."""
    X, y, t, w, val = make_data()
    D = dp.Dense
    if name == "rank_seeded":  # each rank starts from other weights and another generator state
        net = dp.Network([D(8, 16, activation="relu", dropout=0.2), D(16, 3, activation="softmax")], seed=rank)
        return net, X, y, dict(epochs=4, batch_size=32, optimizer=dp.Adam(learning_rate=0.01))
    if name == "mismatched":  # rank 1 asks for another batch size
        net = dp.Network([D(8, 3, activation="softmax")], seed=0)
        return net, X, y, dict(epochs=1, batch_size=32 + rank)
    if name in ("sgd", "memmap"):
        net = dp.Network([D(8, 16, activation="tanh"), D(16, 3, activation="softmax")], seed=1)
        return net, X, y, dict(epochs=8, batch_size=32, optimizer=dp.SGD(learning_rate=0.1, momentum=0.9))
    if name == "adam":
        net = dp.Network([D(8, 16, activation="relu"), D(16, 16, activation="relu"),
                          D(16, 3, activation="softmax")], seed=2)
        return net, X, y, dict(epochs=8, batch_size=50, optimizer=dp.Adam(learning_rate=0.01), sample_weight=w,
                               class_weight="balanced")
    if name == "dropout":
        net = dp.Network([D(8, 32, activation="relu", dropout=0.3), D(32, 16, activation="tanh", dropout=0.2),
                          D(16, 3, activation="softmax")], seed=3)
        return net, X, y, dict(epochs=8, batch_size=32, optimizer=dp.Adam(learning_rate=0.005))
    if name == "float64":
        net = dp.Network([D(8, 16, activation="tanh", dropout=0.1), D(16, 1)], loss="mean_squared_error",
                         dtype="float64", seed=4)
        return net, X, t, dict(epochs=8, batch_size=40, optimizer=dp.Adam(learning_rate=0.01), sample_weight=w)
    if name in ("tiny", "tiny_memmap"):  # a global batch of 2 rows: with 3 ranks one rank has none
        net = dp.Network([D(8, 6, activation="relu"), D(6, 6, activation="relu", dropout=0.2),
                          D(6, 3, activation="softmax")], seed=5)
        return net, X[:11], y[:11], dict(epochs=3, batch_size=2, optimizer=dp.SGD(learning_rate=0.1))
    if name == "early":
        net = dp.Network([D(8, 32, activation="relu"), D(32, 3, activation="softmax")], seed=6)
        return net, X, y, dict(epochs=40, batch_size=16, optimizer=dp.Adam(learning_rate=0.05),
                               validation_data=val, early_stopping={"patience": 1, "monitor": "val_loss"},
                               metrics=["accuracy"])
    layers = build_layers(name, rank, X, y, t, w)
    if layers is not None:
        return layers
    raise SystemExit(f"unknown configuration {name!r}")


def build_layers(name, rank, X, y, t, w):
    """The configurations with normalisation and residual layers (tests/test_distributed_layers.py)."""
    F = dp.Network.from_sizes
    cce = "categorical_crossentropy"
    sgd = dict(epochs=8, batch_size=32)
    if name == "bn":  # each hidden layer Dense -> BatchNorm -> Activation
        net = F([8, 16, 16, 3], loss=cce, norm="batch", seed=11)
        return net, X, y, dict(sgd, optimizer=dp.SGD(learning_rate=0.1, momentum=0.9))
    if name == "bn_resnet":  # the tabular ResNet: stem, 2 blocks [BatchNorm, Dense, Dense, Dropout], head
        net = F([8, 16, 16, 3], loss=cce, norm="batch", residual=True, dropout=0.1, seed=12)
        return net, X, y, dict(sgd, optimizer=dp.SGD(learning_rate=0.05, momentum=0.9))
    if name == "bn_float64":  # weighted samples: the batch statistics stay unweighted, the gradient is not
        net = F([8, 16, 16, 3], loss=cce, norm="batch", residual=True, dtype="float64", seed=13)
        return net, X, y, dict(epochs=8, batch_size=40, optimizer=dp.SGD(learning_rate=0.05, momentum=0.9),
                               sample_weight=w, class_weight="balanced")
    if name == "bn_adam":  # Adam: no bias before a BatchNorm, whose rounding noise Adam would amplify
        net = F([8, 16, 16, 3], loss=cce, norm="batch", seed=14)
        return net, X, y, dict(sgd, optimizer=dp.Adam(learning_rate=0.01))
    if name == "bn_adam_resnet":  # the same for the ResNet's stream, which reaches BatchNorms alone
        net = F([8, 16, 16, 3], loss=cce, norm="batch", residual=True, seed=20)
        return net, X, y, dict(sgd, optimizer=dp.Adam(learning_rate=0.01))
    if name == "ln":
        net = F([8, 16, 16, 3], loss=cce, norm="layer", dropout=0.1, seed=15)
        return net, X, y, dict(sgd, optimizer=dp.Adam(learning_rate=0.01))
    if name == "ln_resnet":
        net = F([8, 16, 16, 3], loss=cce, norm="layer", residual=True, dropout=0.1, seed=16)
        return net, X, y, dict(sgd, optimizer=dp.Adam(learning_rate=0.01))
    if name == "bn_rank_seeded":  # other weights and other running statistics on every rank before fit
        net = F([8, 16, 16, 3], loss=cce, norm="batch", residual=True, seed=17 + rank)
        for layer in bn_layers(net):
            layer.running_mean[...] = rank
            layer.running_var[...] = 1 + rank
        return net, X, y, dict(epochs=2, batch_size=32, optimizer=dp.SGD(learning_rate=0.1, momentum=0.9))
    if name == "bn_onestep":  # one step on one unshuffled global batch of every row: BatchNorm on the inputs
        net = dp.Network([dp.BatchNorm(8), dp.Dense(8, 16, activation="relu"), dp.BatchNorm(),
                          dp.Dense(16, 3, activation="softmax")], dtype="float64", seed=18)
        return net, X, y, dict(epochs=1, batch_size=N_SAMPLES, optimizer=dp.SGD(learning_rate=0.1), shuffle=False)
    if name == "bn_tiny":  # global batches of 2 rows: with 3 ranks one rank has none
        net = F([8, 6, 3], loss=cce, norm="batch", dtype="float64", seed=19)
        return net, X[:12], y[:12], dict(epochs=3, batch_size=2, optimizer=dp.SGD(learning_rate=0.1))
    return None


def bn_layers(net):
    """Every BatchNorm of ``net``, inside residual blocks too."""
    out = []
    for layer in net.layers:
        out += bn_layers(layer) if hasattr(layer, "layers") else [layer] if isinstance(layer, dp.BatchNorm) else []
    return out


def input_stats(comm):
    """Mean and unbiased variance of every input row, and of the rows rank 0 holds of one batch of all rows."""
    X = make_data()[0]
    k = N_SAMPLES // (1 if comm is None else comm.size)
    return {"mean": X.mean(axis=0).tolist(), "var": X.var(axis=0, ddof=1).tolist(),
            "rank0_mean": X[:k].mean(axis=0).tolist(), "rank0_var": X[:k].var(axis=0, ddof=1).tolist()}


class RecordingMemmap(np.memmap):
    """A memmap that records which rows the training loop reads."""

    rows_read = None

    def __getitem__(self, key):
        if RecordingMemmap.rows_read is not None:
            idx = np.arange(self.shape[0])[key] if not isinstance(key, tuple) else np.arange(self.shape[0])[key[0]]
            RecordingMemmap.rows_read.extend(np.atleast_1d(idx).tolist())
        return super().__getitem__(key)


_plain_read = batches.PreadvRows.read


def _recording_read(self, idx):
    # Streamed memmaps are read row by row with preadv, not by indexing.
    if RecordingMemmap.rows_read is not None:
        RecordingMemmap.rows_read.extend(np.asarray(idx).tolist())
    return _plain_read(self, idx)


batches.PreadvRows.read = _recording_read


def fit_config(name, comm, outdir):
    net, X, y, kwargs = build(name, 0 if comm is None else comm.rank)
    streamed = name.endswith("memmap")
    if streamed:
        path = os.path.join(outdir, f"X-{name}.npy")
        if comm is None or comm.is_root:
            np.save(path, X)
        if comm is not None:
            comm.barrier()
        X = np.load(path, mmap_mode="r").view(RecordingMemmap)
        RecordingMemmap.rows_read = []
    saved = batches.STREAM_BYTES
    if streamed:
        batches.STREAM_BYTES = 0  # stream it batch by batch, as a large file would be
    try:
        history = net.fit(X, y, verbose=0, comm=comm, **kwargs)
    finally:
        batches.STREAM_BYTES = saved
    return net, history


def history_rows(history):
    return [{k: v for k, v in row.items() if k != "time"} for row in history.to_list()]


def scenario_train(args, comm):
    names = args.configs.split(",")
    for name in names:
        calls = 0 if comm is None else comm.reduce_calls
        net, history = fit_config(name, comm, args.outdir)
        info = {"history": history_rows(history)}
        if name == "bn_onestep":
            info["input_stats"] = input_stats(comm)
        if comm is not None:
            info["reduce_calls_in_fit"] = comm.reduce_calls - calls
            everyone = comm.allgather({"params": net.params.tobytes().hex(), "history": info["history"],
                                       "buffers": net.buffers.tobytes().hex()})
            info["same_on_all_ranks"] = all(e == everyone[0] for e in everyone)
            if name.endswith("memmap"):
                info["rows_read"] = comm.allgather(len(RecordingMemmap.rows_read))
                info["distinct_rows_read"] = comm.allgather(len(set(RecordingMemmap.rows_read)))
            if name == args.repeat:
                again, _ = fit_config(name, comm, args.outdir)
                info["repeat_identical"] = bool(np.array_equal(again.params, net.params))
            info["size"] = comm.size
            info["reduce_calls"] = comm.reduce_calls
        if comm is None or comm.is_root:
            np.save(os.path.join(args.outdir, f"{name}.npy"), net.params)
            np.save(os.path.join(args.outdir, f"{name}-buffers.npy"), net.buffers)
            with open(os.path.join(args.outdir, f"{name}.json"), "w") as f:
                json.dump(info, f)


def scenario_resume(args, comm):
    """A configuration (default dropout) with checkpoints; optionally resumed from one."""
    net, X, y, kwargs = build(args.config)
    kwargs.update(checkpoint_dir=args.ckpt_dir, checkpoint_every=args.every, checkpoint_unit=args.unit,
                  keep_checkpoints=100, resume_from=args.resume_from,
                  log_path=os.path.join(args.outdir, f"{args.name}.jsonl"))
    history = net.fit(X, y, verbose=args.verbose, comm=comm, **kwargs)
    if comm is None or comm.is_root:
        np.save(os.path.join(args.outdir, f"{args.name}.npy"), net.params)
        with open(os.path.join(args.outdir, f"{args.name}.json"), "w") as f:
            json.dump({"history": history_rows(history)}, f)


def scenario_fail(args, comm):
    """Rank 1 fails at step 7 of a run that checkpoints every 2 steps."""

    def on_batch_end(run, batch, logs):
        if comm.rank == 1 and run.step == 7:
            if args.mode == "exit1":
                os._exit(1)
            if args.mode == "raise":
                raise RuntimeError("injected failure on rank 1")
            if args.mode == "leave":
                sys.exit(0)  # leaves fit while the others wait in the next all-reduce

    net, X, y, kwargs = build("sgd")
    kwargs.update(checkpoint_dir=args.ckpt_dir, checkpoint_every=2, checkpoint_unit="step", keep_checkpoints=100,
                  callbacks=[dp.LambdaCallback(on_batch_end=on_batch_end)])
    net.fit(X, y, verbose=0, comm=comm, **kwargs)


def scenario_reduce(args, comm):
    """allreduce_sum against a rank-ordered float64 sum computed locally; bcast; allgather."""
    from deltaprop.distributed import ordered_sum

    out = {}
    for dtype in (np.float32, np.float64):
        for n in (1, 5, 1000, 100_003):
            parts = np.stack([
                (np.random.default_rng(100 + r).standard_normal(n) * 10.0 ** np.random.default_rng(r).integers(
                    -8, 8, n)).astype(dtype) for r in range(comm.size)])
            mine = parts[comm.rank].copy()
            got = comm.allreduce_sum(mine)
            want = ordered_sum(parts, np.empty(n, dtype=dtype))
            naive32 = parts.sum(axis=0, dtype=dtype)
            key = f"{np.dtype(dtype).name}-{n}"
            out[key] = {"exact": bool(np.array_equal(got, want)),
                        "dtype_kept": got.dtype == dtype,
                        "differs_from_naive": int(np.count_nonzero(got != naive32))}
    obj = {"a": [1, 2.5, None], "nan": float("nan"), "rank": comm.rank}
    got = comm.bcast(obj if comm.is_root else None)
    out["bcast"] = got["a"] == [1, 2.5, None] and got["rank"] == 0 and got["nan"] != got["nan"]
    out["allgather"] = comm.allgather(comm.rank * 10) == [10 * r for r in range(comm.size)]
    comm.barrier()
    from deltaprop.distributed import MPIComm

    errors = []
    for kwargs in ({"timeout": 0}, {"timeout": float("nan")}, {"algorithm": "ring"}, {"comm": "world"}):
        try:
            MPIComm(**kwargs)
            errors.append(None)
        except (ValueError, TypeError) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
    out["argument_errors"] = errors
    out["reduce_calls"] = comm.reduce_calls
    if comm.is_root:
        with open(os.path.join(args.outdir, "reduce.json"), "w") as f:
            json.dump(out, f)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("scenario", choices=["train", "resume", "fail", "reduce"])
    p.add_argument("outdir")
    p.add_argument("--plain", action="store_true")
    p.add_argument("--configs", default="sgd,adam,dropout,float64")
    p.add_argument("--repeat", default="dropout")
    p.add_argument("--ckpt-dir")
    p.add_argument("--resume-from")
    p.add_argument("--unit", default="epoch")
    p.add_argument("--every", type=int, default=1)
    p.add_argument("--name", default="resume")
    p.add_argument("--config", default="dropout")
    p.add_argument("--verbose", type=int, default=0)
    p.add_argument("--mode", default="exit1")
    args = p.parse_args()
    comm = None
    if not args.plain:
        from deltaprop.distributed import MPIComm

        comm = MPIComm()
    {"train": scenario_train, "resume": scenario_resume, "fail": scenario_fail,
     "reduce": scenario_reduce}[args.scenario](args, comm)


if __name__ == "__main__":
    main()
