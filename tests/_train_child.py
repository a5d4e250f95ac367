"""A training run for the kill and Ctrl-C tests in test_resume.py, run as a subprocess.

    python tests/_train_child.py OUT [--dir D] [--every N] [--epochs E]
                                     [--pause-at S] [--die-in-write K] [--die-after-replace K]

Trains a small network (dropout, shuffling, Adam, a step schedule,
validation) on seeded data. With ``--dir`` it writes a checkpoint every
``N`` steps into ``D`` (keeping 3) and, when ``D`` already holds one,
resumes from the newest. At the end it writes the final parameters and the
history (without the "time" key) to ``OUT``, a safetensors file.

It prints ``started`` on stdout when training begins. Test hooks:

``--pause-at S``
    After step ``S``, print ``paused S`` on stdout and wait (up to 30 s)
    until a SIGINT has been received, so the test can send one at a known step.
``--die-in-write K``
    SIGKILL this process in the middle of the ``K``-th checkpoint write of
    this process: after the temporary file is written, before the rename.
``--die-after-replace K``
    SIGKILL it just after the ``K``-th rename, before old checkpoints are pruned.
"""

import argparse
import json
import os
import signal
import sys
import time

import numpy as np

import deltaprop as dp
from deltaprop.checkpoint import latest_checkpoint
from deltaprop.io import write_file


def data():
    rng = np.random.default_rng(11)
    X = rng.normal(size=(150, 6))
    y = (X[:, 0] + 0.5 * X[:, 1] ** 2 - X[:, 2] > 0).astype(int) + (X[:, 3] > 1)
    return X, y


def network():
    return dp.Network([dp.Dense(6, 24, activation="relu", dropout=0.2),
                       dp.Dense(24, 12, activation="tanh", dropout=0.1),
                       dp.Dense(12, 3, activation="softmax")], seed=5)


FIT = dict(batch_size=10, optimizer={"name": "adam", "learning_rate": 0.01},
           schedule={"name": "step", "step_size": 20, "gamma": 0.7}, validation_split=0.2, verbose=0)


class _Pause(dp.Callback):
    def __init__(self, step):
        self.step = step

    def on_batch_end(self, run, batch, logs):
        if run.step != self.step:
            return
        flag = getattr(signal.getsignal(signal.SIGINT), "__self__", None)  # fit's Ctrl-C flag
        print(f"paused {run.step}", flush=True)
        deadline = time.monotonic() + 30
        while flag is not None and not flag.hit and time.monotonic() < deadline:
            time.sleep(0.005)


def _die_on(name, k, before):
    """SIGKILL this process at the ``k``-th call of ``os.<name>``, just ``before`` it or just after it."""
    real = getattr(os, name)
    calls = [0]

    def wrapper(*args, **kwargs):
        calls[0] += 1
        if before and calls[0] == k:
            os.kill(os.getpid(), signal.SIGKILL)
        result = real(*args, **kwargs)
        if not before and calls[0] == k:
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(os, name, wrapper)


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--dir")
    parser.add_argument("--every", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--pause-at", type=int)
    parser.add_argument("--die-in-write", type=int)
    parser.add_argument("--die-after-replace", type=int)
    args = parser.parse_args(argv)

    X, y = data()
    net = network()
    # "started" tells the parent that training (not Python's start-up) is under way
    callbacks = [dp.LambdaCallback(on_train_begin=lambda run: print("started", flush=True))]
    if args.pause_at is not None:
        callbacks.append(_Pause(args.pause_at))
    if args.die_in_write:
        _die_on("fsync", 2 * args.die_in_write - 1, before=True)  # a write fsyncs the file, then the folder
    if args.die_after_replace:
        _die_on("replace", args.die_after_replace, before=False)
    kwargs = {}
    if args.dir:
        kwargs = dict(checkpoint_dir=args.dir, checkpoint_unit="step", checkpoint_every=args.every,
                      keep_checkpoints=3, resume_from=args.dir if latest_checkpoint(args.dir) else None)
    history = net.fit(X, y, epochs=args.epochs, callbacks=callbacks, **FIT, **kwargs)
    rows = [{k: v for k, v in row.items() if k != "time"} for row in history.rows]
    write_file(args.out, {"params": net.params}, {"history": json.dumps(rows)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
