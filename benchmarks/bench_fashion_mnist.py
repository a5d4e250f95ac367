"""Fashion-MNIST with the ``deltaprop`` command: at least 0.90 test accuracy in under 10 minutes.

Runs, as a subprocess, the documented command

    deltaprop train --data fashion-mnist --hidden 512,256 --activation relu --dropout 0.2
        --optimizer adam --lr 1e-3 --schedule cosine --epochs 30 --batch-size 128
        --scale standard --validation-split 0 --seed 0

which trains a 784-512-256-10 ReLU network (535,818 parameters) on the 60,000
training images and scores it on the official 10,000-image test set (not seen
in training; no validation split is taken from the training images). It prints
the command, the test accuracy and the wall-clock time, and exits with status 1
unless the accuracy is at least 0.90 and the time under 600 s.

References on the same test set: scikit-learn's MLPClassifier 0.871, the best
MLP of the Fashion-MNIST benchmark (256-128-100) 0.8833
(https://github.com/zalandoresearch/fashion-mnist#benchmark).

    python benchmarks/bench_fashion_mnist.py [--threads N] [--keep] [-- EXTRA TRAIN FLAGS]

``--keep`` writes fashion-mnist.safetensors, fashion-mnist.png and
fashion-mnist.jsonl in the current folder (else a temporary folder is used).
Flags after ``--`` are appended to the command (to try a variant).
Needs Debian's ``dataset-fashion-mnist`` (or DELTAPROP_FASHION_MNIST_DIR).
"""

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CONFIG = [
    "--data", "fashion-mnist", "--hidden", "512,256", "--activation", "relu", "--dropout", "0.2",
    "--optimizer", "adam", "--lr", "1e-3", "--schedule", "cosine", "--epochs", "30", "--batch-size", "128",
    "--scale", "standard", "--validation-split", "0", "--seed", "0",
]
TARGET_ACCURACY = 0.90
TIME_LIMIT_S = 600.0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, help="BLAS threads (default: the library's own choice)")
    parser.add_argument("--keep", action="store_true", help="keep the model, plot and log in the current folder")
    parser.add_argument("extra", nargs="*", help="more flags for deltaprop train (after --)")
    args = parser.parse_args(argv)

    env = dict(os.environ)
    src = str(ROOT / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path.cwd() if args.keep else Path(tmp)
        outputs = ["--out", str(folder / "fashion-mnist.safetensors"), "--plot", str(folder / "fashion-mnist.png"),
                   "--log", str(folder / "fashion-mnist.jsonl")]
        threads = [] if args.threads is None else ["--threads", str(args.threads)]
        command = ["deltaprop", "train", *CONFIG, *threads, *args.extra]
        print("command:", shlex.join(command), flush=True)
        print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}", flush=True)
        t0 = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "deltaprop", *command[1:], *outputs], env=env,
                                stdout=subprocess.PIPE, text=True)
        seconds = time.perf_counter() - t0
        sys.stdout.write(result.stdout)
        if result.returncode != 0:
            print(f"deltaprop train failed with exit status {result.returncode}")
            return 1
        match = re.search(r"accuracy ([0-9.]+)", result.stdout)
        accuracy = float(match.group(1))
    passed = accuracy >= TARGET_ACCURACY and seconds < TIME_LIMIT_S
    print(f"test accuracy (official 10,000-image test set): {accuracy:.4f} (target >= {TARGET_ACCURACY})")
    print(f"wall-clock time: {seconds:.1f} s (limit {TIME_LIMIT_S:.0f} s), including loading the data")
    print("references: scikit-learn MLPClassifier 0.871; best MLP of the Fashion-MNIST benchmark 0.8833")
    print("PASS" if passed else "FAIL")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
