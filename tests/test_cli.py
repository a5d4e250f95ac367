"""End-to-end tests of the ``deltaprop`` command, run as a subprocess on tiny data the tests make.

Every command runs as ``python -m deltaprop ...`` with PYTHONPATH pointing at
src/, in a fresh temporary folder, with ``--quiet --plot none`` unless the
test is about progress or plots. Errors must be one line on standard error,
``deltaprop: error: ...``, with no traceback and the documented exit status.
"""

import gzip
import json
import os
import re
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import deltaprop as dp

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
QUIET = ("--quiet", "--plot", "none")


def env_for(extra=None):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(SRC) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["OPENBLAS_NUM_THREADS"] = "1"  # tiny matrices; also keeps runs bit-comparable
    env["OMP_NUM_THREADS"] = "1"
    env.update(extra or {})
    return env


def run(*args, cwd, input=None, env=None, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "deltaprop", *map(str, args)], cwd=cwd, env=env_for(env), input=input,
        capture_output=True, text=True, timeout=timeout,
    )


def ok(result):
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result


def fails(result, status, *fragments, prefix="deltaprop: error: "):
    """One line on stderr with the prefix, no traceback, the given exit status and message fragments."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(prefix), lines[0]
    assert result.returncode == status, (result.returncode, lines[0])
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def accuracy_in(stdout):
    return float(re.search(r"accuracy:? ([0-9.]+)", stdout).group(1))


# ---------------------------------------------------------------------------
# Tiny data
# ---------------------------------------------------------------------------

CLASSES = ("cat", "dog", "emu")


def blobs(n_per_class=30, n_features=4, n_classes=3, seed=0, spread=0.4):
    """Well-separated Gaussian clusters: X (n, n_features), class indices y (n,)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, size=(n_classes, n_features))
    y = np.repeat(np.arange(n_classes), n_per_class)
    X = centres[y] + spread * rng.standard_normal((len(y), n_features))
    order = rng.permutation(len(y))
    return X[order], y[order]


def write_csv(path, X, labels, names=None, target="species", target_first=False):
    names = names or [f"f{j}" for j in range(X.shape[1])]
    rows = [",".join(([target] + names) if target_first else (names + [target]))]
    for x, label in zip(X, labels):
        cells = [f"{v:.6f}" for v in x]
        rows.append(",".join(([str(label)] + cells) if target_first else (cells + [str(label)])))
    path.write_text("\n".join(rows) + "\n")
    return path


def idx_bytes(arr):
    code = {"u1": 0x08, "f4": 0x0D}[arr.dtype.str[1:]]
    head = bytes([0, 0, code, arr.ndim]) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    return head + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model trained on a CSV with string labels (cat, dog, emu), and its folder."""
    folder = tmp_path_factory.mktemp("csv")
    X, y = blobs()
    write_csv(folder / "animals.csv", X, [CLASSES[k] for k in y])
    result = ok(run("train", "--data", "animals.csv", "--epochs", "8", "--batch-size", "8", "--hidden", "16",
                    "--lr", "0.01", "--out", "animals.safetensors", *QUIET, cwd=folder))
    return folder, result


# ---------------------------------------------------------------------------
# Help and start-up
# ---------------------------------------------------------------------------


def test_python_m_deltaprop_help(tmp_path):
    result = ok(run("--help", cwd=tmp_path))
    for command in ("train", "evaluate", "predict", "gradcheck", "info"):
        assert command in result.stdout
    assert "examples:" in result.stdout


@pytest.mark.parametrize("command", ["train", "evaluate", "predict", "gradcheck", "info"])
def test_every_command_help_shows_an_example(command, capsys):
    from deltaprop.cli import main

    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f"deltaprop {command}" in out


def test_help_imports_nothing_heavy(tmp_path):
    code = (
        "import sys\n"
        "from deltaprop.cli import main\n"
        "for argv in (['--help'], ['train', '--help'], ['predict', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = ('sklearn', 'matplotlib', 'safetensors', 'tqdm', 'scipy', 'threadpoolctl')\n"
        "print('HEAVY', sorted(m for m in heavy if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env_for(), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "HEAVY []"


def test_no_command_prints_help_and_exits_2(tmp_path):
    result = run(cwd=tmp_path)
    assert result.returncode == 2 and "train" in result.stdout


# ---------------------------------------------------------------------------
# train, evaluate, predict, info on a CSV with string labels
# ---------------------------------------------------------------------------


def test_train_csv_string_labels(trained):
    folder, result = trained
    assert (folder / "animals.safetensors").is_file()
    assert not (folder / "curves.png").exists()  # --plot none
    assert accuracy_in(result.stdout) >= 0.9
    assert result.stderr == ""  # --quiet: no progress, no messages
    net = dp.load(folder / "animals.safetensors").network
    assert net.classes == list(CLASSES)
    assert [layer.n_out for layer in net.layers] == [16, 3]
    assert net.run_config["hidden"] == [16] and net.run_config["loss"] == "categorical_crossentropy"
    model = dp.load(folder / "animals.safetensors")
    assert model.feature_names == ["f0", "f1", "f2", "f3"] and model.target_name == "species"
    assert [c.kind for c in model.contract.schema.columns] == ["numeric"] * 4
    assert all(c.scale > 0 and not c.indicator for c in model.contract.schema.columns)


def test_evaluate_never_opens_a_path_stored_in_the_model(trained):
    folder, _ = trained
    fails(run("evaluate", "animals.safetensors", cwd=folder), 2, "--data", "animals.csv", "never opened")


def test_evaluate_defaults_to_the_held_out_test_split_of_a_built_in_set(tmp_path):
    train_result = ok(run("train", "--data", "iris", "--epochs", "3", "--hidden", "8", *QUIET, cwd=tmp_path))
    result = ok(run("evaluate", "model.safetensors", cwd=tmp_path))
    # Same rows as the test split of training: the same accuracy.
    assert accuracy_in(result.stdout) == accuracy_in(train_result.stdout)
    assert "test split" in result.stdout and ", 38 samples" in result.stdout  # ceil(0.25 * 150)
    assert "confusion matrix" in result.stdout and "precision" in result.stdout and "recall" in result.stdout
    # the data contract scales as training scaled: the very loss training measured on these rows
    evaluated = json.loads(ok(run("evaluate", "model.safetensors", "--json", cwd=tmp_path)).stdout)
    assert evaluated["loss"] == dp.load(tmp_path / "model.safetensors").test["loss"]


def test_evaluate_any_file_uses_the_stored_target(trained):
    folder, _ = trained
    text = (folder / "animals.csv").read_text().splitlines()
    header = text[0].split(",")
    order = [header.index(c) for c in ("species", "f3", "f1", "f0", "f2")]
    rows = [",".join(line.split(",")[j] for j in order) for line in text]
    (folder / "shuffled.csv").write_text("\n".join(rows) + "\n")
    a = ok(run("evaluate", "animals.safetensors", "--data", "animals.csv", "--json", cwd=folder)).stdout
    b = ok(run("evaluate", "animals.safetensors", "--data", "shuffled.csv", "--json", cwd=folder)).stdout
    ja, jb = json.loads(a), json.loads(b)
    assert ja["accuracy"] == jb["accuracy"] and ja["loss"] == jb["loss"] and ja["samples"] == 90
    text = (folder / "shuffled.csv").read_text()
    result = ok(run("predict", "animals.safetensors", "--data", "-", cwd=folder, input=text))
    assert len(result.stdout.strip().splitlines()) == 91
    for name in CLASSES:
        assert name in result.stdout


def test_evaluate_json_on_a_file(trained):
    folder, _ = trained
    result = ok(run("evaluate", "animals.safetensors", "--data", "animals.csv", "--json", cwd=folder))
    report = json.loads(result.stdout)
    matrix = np.array(report["confusion_matrix"])
    assert matrix.shape == (3, 3) and matrix.sum() == 90 == report["samples"]
    assert report["classes"] == list(CLASSES)
    assert report["accuracy"] == pytest.approx(np.trace(matrix) / 90, abs=1e-12)
    assert report["per_class"]["support"] == matrix.sum(axis=1).tolist()


def test_predict_writes_labels_and_probabilities(trained):
    folder, _ = trained
    X, y = blobs()
    # Without the target column, to standard output.
    features_only = folder / "new.csv"
    write_csv(features_only, X[:10], [""] * 10, target="unused")
    features_only.write_text("\n".join(line.rsplit(",", 1)[0] for line in features_only.read_text().splitlines()))
    result = ok(run("predict", "animals.safetensors", "--data", "new.csv", cwd=folder))
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "species" and len(lines) == 11
    assert lines[1:] == [CLASSES[k] for k in y[:10]]
    # With the target column (dropped), probabilities, to a file.
    ok(run("predict", "animals.safetensors", "--data", "animals.csv", "--proba", "--out", "p.csv", cwd=folder))
    rows = (folder / "p.csv").read_text().strip().splitlines()
    assert rows[0] == "cat,dog,emu" and len(rows) == 91
    P = np.array([[float(v) for v in row.split(",")] for row in rows[1:]])
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-5)
    assert np.mean(P.argmax(axis=1) == y) >= 0.9


def test_predict_reads_standard_input(trained):
    folder, _ = trained
    text = (folder / "animals.csv").read_text()
    result = ok(run("predict", "animals.safetensors", "--data", "-", cwd=folder, input=text))
    assert len(result.stdout.strip().splitlines()) == 91


def test_info_shows_architecture_classes_preprocessing_config_and_versions(trained):
    folder, _ = trained
    result = ok(run("info", "animals.safetensors", cwd=folder))
    out = result.stdout
    assert "4->16" in out and "16->3" in out and "softmax" in out
    assert "parameters: 131" in out  # 4*16+16 + 16*3+3
    assert "cat, dog, emu" in out
    assert "columns (4, read by name; 4 network inputs)" in out and "f0: numeric, (f0 - " in out
    assert 'data = "animals.csv"' in out and "hidden = [16]" in out and "epochs = 8" in out
    assert f"written by deltaprop {dp.__version__}" in out and "format: deltaprop.model version 2" in out
    info = json.loads(ok(run("info", "animals.safetensors", "--json", cwd=folder)).stdout)
    assert info["parameters"] == 131 and info["classes"] == list(CLASSES)
    assert info["config"]["batch_size"] == 8 and info["format_version"] == 2
    assert info["target"] == "species" and [line.split(":")[0] for line in info["columns"]] == ["f0", "f1", "f2", "f3"]


def test_info_toml_round_trip_gives_the_same_model(trained, tmp_path):
    folder, _ = trained
    toml = ok(run("info", "animals.safetensors", "--toml", cwd=folder)).stdout
    (folder / "again.toml").write_text(toml.replace('out = "animals.safetensors"', 'out = "again.safetensors"'))
    ok(run("train", "--config", "again.toml", "--quiet", cwd=folder))
    first, second = dp.load(folder / "animals.safetensors").network, dp.load(folder / "again.safetensors").network
    np.testing.assert_array_equal(first.params, second.params)


def test_a_model_saved_by_the_library(tmp_path):
    net = dp.Network([dp.Dense(4, 3, activation="softmax")], seed=0)
    dp.save(net, tmp_path / "bare.safetensors")
    out = ok(run("info", "bare.safetensors", cwd=tmp_path)).stdout
    assert "classes: 0, 1, 2" in out and "x0: numeric, (x0 - 0) / 1" in out
    assert "training configuration: none stored" in out
    X, _ = blobs()
    np.save(tmp_path / "X.npy", X)
    lines = ok(run("predict", "bare.safetensors", "--data", "X.npy", cwd=tmp_path)).stdout.split()
    expected = net.predict(X.astype(np.float32)).argmax(axis=1)
    assert lines[1:] == [str(k) for k in expected]
    fails(run("evaluate", "bare.safetensors", cwd=tmp_path), 2, "give the data to evaluate with --data")


# ---------------------------------------------------------------------------
# Tasks: binary, regression, target column
# ---------------------------------------------------------------------------


def test_binary_classification_gets_sigmoid_and_binary_crossentropy(tmp_path):
    X, y = blobs(n_classes=2, seed=1)
    write_csv(tmp_path / "b.csv", X, y, target="label")
    result = ok(run("train", "--data", "b.csv", "--epochs", "5", "--batch-size", "8", "--lr", "0.01", *QUIET,
                    cwd=tmp_path))
    assert accuracy_in(result.stdout) >= 0.9
    net = dp.load(tmp_path / "model.safetensors").network
    assert net.n_out == 1 and net.layers[-1].activation.name == "sigmoid"
    assert net.loss.name == "binary_crossentropy" and net.classes == [0, 1]
    lines = ok(run("predict", "model.safetensors", "--data", "b.csv", cwd=tmp_path)).stdout.split()
    assert lines[0] == "label" and set(lines[1:]) <= {"0", "1"}
    proba = ok(run("predict", "model.safetensors", "--data", "b.csv", "--proba", cwd=tmp_path)).stdout.split()
    assert proba[0] == "0,1" and len(proba) == 61


def test_regression_standardises_targets_and_predicts_original_units(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 3))
    y = 1000.0 + 50.0 * X[:, 0] - 30.0 * X[:, 1] + rng.normal(0, 1.0, 120)
    write_csv(tmp_path / "r.csv", X, [f"{v:.4f}" for v in y], target="price")
    result = ok(run("train", "--data", "r.csv", "--epochs", "40", "--batch-size", "8", "--hidden", "16",
                    "--dropout", "0", "--lr", "3e-3", *QUIET, cwd=tmp_path))
    r2 = float(re.search(r"R² ([-0-9.]+)", result.stdout).group(1))
    assert r2 >= 0.9
    net = dp.load(tmp_path / "model.safetensors").network
    assert net.layers[-1].activation.name == "identity" and net.loss.name == "mean_squared_error"
    lines = ok(run("predict", "model.safetensors", "--data", "r.csv", cwd=tmp_path)).stdout.split()
    assert lines[0] == "price"
    predicted = np.array([float(v) for v in lines[1:]])
    assert np.mean(np.abs(predicted - y)) < 15.0  # original units (y ~ 1000 ± 60)
    out = ok(run("evaluate", "model.safetensors", "--data", "r.csv", cwd=tmp_path)).stdout
    assert "R²" in out and "RMSE" in out and "MAE" in out and "standardised targets" in out
    model = dp.load(tmp_path / "model.safetensors")
    # the API gives what the command printed, to the bit (17 significant digits read back the very float64)
    np.testing.assert_array_equal(model.predict(tmp_path / "r.csv"), predicted)


def test_target_column_by_name(tmp_path):
    X, y = blobs(seed=2)
    write_csv(tmp_path / "first.csv", X, [CLASSES[k] for k in y], target="kind", target_first=True)
    result = ok(run("train", "--data", "first.csv", "--target", "kind", "--epochs", "5", "--batch-size", "8",
                    "--lr", "0.01", *QUIET, cwd=tmp_path))
    assert accuracy_in(result.stdout) >= 0.9
    # predict drops the same column by name from a file that has it
    lines = ok(run("predict", "model.safetensors", "--data", "first.csv", cwd=tmp_path)).stdout.split()
    assert np.mean(np.array(lines[1:]) == np.array([CLASSES[k] for k in y])) >= 0.9


# ---------------------------------------------------------------------------
# Data formats
# ---------------------------------------------------------------------------


def _formats(tmp_path):
    X, y = blobs(seed=3)
    np.save(tmp_path / "xy.npy", np.column_stack([X, y]))
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    images = np.clip(np.round((X.reshape(-1, 2, 2) + 8) * 12), 0, 255).astype(np.uint8)
    labels = y.astype(np.uint8)
    (tmp_path / "images.idx").write_bytes(idx_bytes(images))
    (tmp_path / "labels.idx").write_bytes(idx_bytes(labels))
    (tmp_path / "images.idx.gz").write_bytes(gzip.compress(idx_bytes(images)))
    (tmp_path / "labels.idx.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    return X, y


@pytest.mark.parametrize("data", [
    ["--data", "xy.npy"],
    ["--data", "X.npy", "--labels", "y.npy"],
    ["--data", "d.npz"],
    ["--data", "images.idx", "--labels", "labels.idx"],
    ["--data", "images.idx.gz", "--labels", "labels.idx.gz"],
], ids=["npy", "npy+labels", "npz", "idx", "idx-gz"])
def test_data_formats(tmp_path, data):
    _formats(tmp_path)
    result = ok(run("train", *data, "--epochs", "6", "--batch-size", "8", "--lr", "0.01", *QUIET, cwd=tmp_path))
    assert accuracy_in(result.stdout) >= 0.9
    net = dp.load(tmp_path / "model.safetensors").network
    assert net.n_in == 4 and net.classes == [0, 1, 2]
    # predict reads the same kind of input (features only)
    lines = ok(run("predict", "model.safetensors", "--data", data[1], cwd=tmp_path)).stdout.split()
    assert len(lines) == 91 and set(lines[1:]) <= {"0", "1", "2"}


def test_builtin_data_set(tmp_path):
    pytest.importorskip("sklearn")
    result = ok(run("train", "--data", "iris", "--epochs", "20", "--batch-size", "8", "--lr", "0.01", *QUIET,
                    cwd=tmp_path))
    assert accuracy_in(result.stdout) >= 0.85
    net = dp.load(tmp_path / "model.safetensors").network
    info = ok(run("info", "model.safetensors", cwd=tmp_path)).stdout
    assert "0 setosa" in info and net.classes == [0, 1, 2]


@pytest.mark.slow
def test_default_run_digits_reaches_97_percent(tmp_path):
    """`deltaprop train` with no arguments: the README's `make run`."""
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    result = ok(run("train", cwd=tmp_path))
    assert accuracy_in(result.stdout) >= 0.97
    assert (tmp_path / "model.safetensors").is_file()
    png = (tmp_path / "curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    assert "epoch 30/30" in result.stderr  # the progress bars
    assert "wrote model.safetensors, curves.png" in result.stdout


def test_streamed_memmap_matches_in_memory_training(tmp_path, monkeypatch, capsys):
    """An NPY file above the streaming threshold is copied, scaled, to a scratch memmap that fit streams."""
    import deltaprop.batches as batches
    import deltaprop.training as training
    from deltaprop.cli import main

    X, y = blobs(n_per_class=40, seed=4)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    args = ["train", "--data", str(tmp_path / "X.npy"), "--labels", str(tmp_path / "y.npy"), "--epochs", "3",
            "--batch-size", "16", "--lr", "0.01", "--validation-split", "0", *QUIET]
    assert main(args + ["--out", str(tmp_path / "memory.safetensors")]) == 0
    seen = []
    real_fit = training.fit

    def spy(network, X, y, **kwargs):
        seen.append((type(X), os.path.dirname(X.filename) if isinstance(X, np.memmap) else None))
        return real_fit(network, X, y, **kwargs)

    monkeypatch.setattr(batches, "STREAM_BYTES", 1024)
    monkeypatch.setattr(training, "fit", spy)
    assert main(args + ["--out", str(tmp_path / "streamed.safetensors"), "--scratch-dir", str(tmp_path)]) == 0
    assert seen[0][0] is np.memmap
    assert not os.path.exists(seen[0][1])  # the scratch folder is removed
    a, b = dp.load(tmp_path / "memory.safetensors").network, dp.load(tmp_path / "streamed.safetensors").network
    np.testing.assert_array_equal(a.params, b.params)
    sa, sb = (dp.load(tmp_path / f"{name}.safetensors").contract.schema.state() for name in ("memory", "streamed"))
    assert sa == sb
    out = capsys.readouterr().out.splitlines()
    assert out[0] == out[1]  # the same test result


# ---------------------------------------------------------------------------
# Option families
# ---------------------------------------------------------------------------


def test_sgd_momentum_nesterov_step_schedule_and_log(tmp_path):
    X, y = blobs(seed=5)
    write_csv(tmp_path / "a.csv", X, y)
    ok(run("train", "--data", "a.csv", "--optimizer", "sgd", "--lr", "0.1", "--momentum", "0.9", "--nesterov",
           "--schedule", "step", "--step-size", "2", "--gamma", "0.5", "--epochs", "5", "--batch-size", "16",
           "--log", "metrics.jsonl", "--l2", "1e-4", "--clipnorm", "5", *QUIET, cwd=tmp_path))
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 5]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "lr"} <= set(rows[0])
    # the rate used in each epoch's last step: 0.1 halved every 2 epochs
    assert [r["lr"] for r in rows] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])
    cfg = dp.load(tmp_path / "model.safetensors").network.run_config
    assert cfg["optimizer"] == "sgd" and cfg["momentum"] == 0.9 and cfg["nesterov"] is True
    assert cfg["weight_decay"] == 1e-4 and cfg["clipnorm"] == 5.0 and cfg["gamma"] == 0.5


def test_per_layer_activation_dropout_dtype_warmup_threads(tmp_path):
    X, y = blobs(seed=6)
    write_csv(tmp_path / "a.csv", X, y)
    ok(run("train", "--data", "a.csv", "--hidden", "12,8", "--activation", "tanh,gelu", "--dropout", "0.1,0",
           "--dtype", "float64", "--optimizer", "adamw", "--weight-decay", "0.01", "--beta1", "0.8",
           "--schedule", "cosine", "--warmup-epochs", "2", "--epochs", "4", "--batch-size", "16",
           "--threads", "1", "--scale", "minmax", "--log", "m.jsonl", *QUIET, cwd=tmp_path))
    net = dp.load(tmp_path / "model.safetensors").network
    assert [layer.activation.name for layer in net.layers] == ["tanh", "gelu", "softmax"]
    assert [layer.dropout for layer in net.layers] == [0.1, 0.0, 0.0]
    assert net.dtype == np.float64 and dp.load(tmp_path / "model.safetensors").contract.schema.scale == "minmax"
    lrs = [json.loads(line)["lr"] for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert lrs[0] < lrs[1] == pytest.approx(1e-3)  # linear warm-up over 2 epochs, then cosine down
    assert lrs[3] < lrs[2] < lrs[1]
    assert net.run_config["optimizer"] == "adamw" and net.run_config["beta1"] == 0.8


def test_exponential_schedule_and_no_splits(tmp_path):
    X, y = blobs(seed=7)
    write_csv(tmp_path / "a.csv", X, y)
    result = ok(run("train", "--data", "a.csv", "--schedule", "exponential", "--gamma", "0.5", "--epochs", "3",
                    "--test-split", "0", "--validation-split", "0", "--log", "m.jsonl", *QUIET, cwd=tmp_path))
    rows = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert "val_loss" not in rows[0]
    assert rows[2]["lr"] / rows[1]["lr"] == pytest.approx(0.5, rel=1e-6)
    assert "test" not in result.stdout


def test_early_stopping(tmp_path):
    rng = np.random.default_rng(8)
    X = rng.standard_normal((200, 6))
    y = rng.integers(0, 2, 200)  # labels that are noise: the validation loss soon rises
    write_csv(tmp_path / "noise.csv", X, y)
    ok(run("train", "--data", "noise.csv", "--hidden", "64", "--lr", "0.01", "--schedule", "constant",
           "--epochs", "40", "--early-stopping", "2", "--validation-split", "0.3", "--log", "m.jsonl",
           *QUIET, cwd=tmp_path))
    rows = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert len(rows) < 40
    best = min(r["val_loss"] for r in rows)
    assert rows[-1]["val_loss"] > best and rows[-2]["val_loss"] > best  # two epochs without improvement


def test_config_file_with_flag_override(tmp_path):
    X, y = blobs(seed=9)
    write_csv(tmp_path / "a.csv", X, y)
    (tmp_path / "run.toml").write_text(
        'data = "a.csv"\nhidden = [8]\nepochs = 2\nbatch-size = 16\nactivation = "tanh"\nquiet = true\n'
        'plot = "none"\nlog = "m.jsonl"\n'
    )
    ok(run("train", "--config", "run.toml", "--epochs", "3", cwd=tmp_path))
    cfg = dp.load(tmp_path / "model.safetensors").network.run_config
    assert cfg["epochs"] == 3 and cfg["hidden"] == [8] and cfg["batch_size"] == 16 and cfg["activation"] == ["tanh"]
    assert len((tmp_path / "m.jsonl").read_text().splitlines()) == 3


def test_plot_is_written(tmp_path):
    pytest.importorskip("matplotlib")
    X, y = blobs(seed=10)
    write_csv(tmp_path / "a.csv", X, y)
    ok(run("train", "--data", "a.csv", "--epochs", "3", "--quiet", "--plot", "c.png", cwd=tmp_path))
    png = (tmp_path / "c.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000


def test_progress_and_messages_without_quiet(tmp_path):
    X, y = blobs(seed=11)
    write_csv(tmp_path / "a.csv", X, y)
    result = ok(run("train", "--data", "a.csv", "--epochs", "2", "--plot", "none", cwd=tmp_path))
    assert "epoch 2/2" in result.stderr and "data: a.csv (90 samples, 4 features, 3 classes)" in result.stderr
    assert "wrote model.safetensors" in result.stdout


def test_threads_limit_blas_through_threadpoolctl(monkeypatch):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from deltaprop.cli.common import thread_limit

    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    blas = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    if not blas:
        pytest.skip("no BLAS library that threadpoolctl knows")
    with thread_limit(1):
        assert all(i["num_threads"] == 1 for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas")
        assert os.environ["OPENBLAS_NUM_THREADS"] == "1"
    after = [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    assert after == [i["num_threads"] for i in blas]  # restored


def test_threads_without_threadpoolctl_warns(monkeypatch, capsys):
    from deltaprop.cli.common import thread_limit

    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # import fails
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)  # restored after the test
    with thread_limit(3):
        assert os.environ["OMP_NUM_THREADS"] == "3"
    err = capsys.readouterr().err
    assert err.startswith("deltaprop: warning: --threads 3 needs threadpoolctl") and "OPENBLAS_NUM_THREADS=3" in err


# ---------------------------------------------------------------------------
# Checkpoints, resume, interruption
# ---------------------------------------------------------------------------


def test_resume_matches_an_uninterrupted_run(tmp_path):
    X, y = blobs(seed=12)
    write_csv(tmp_path / "a.csv", X, y)
    # A constant rate: the first part's 2 epochs are the same steps as the first 2 of 4 (with
    # cosine, the run's length is part of the schedule; see the Ctrl-C test for a resumed cosine run).
    common = ("--data", "a.csv", "--batch-size", "8", "--dropout", "0.2", "--schedule", "constant", *QUIET)
    ok(run("train", *common, "--epochs", "4", "--out", "straight.safetensors", cwd=tmp_path))
    ok(run("train", *common, "--epochs", "2", "--checkpoint-dir", "ckpt", "--keep-checkpoints", "1",
           "--out", "half.safetensors", cwd=tmp_path))
    names = [p.name for p in (tmp_path / "ckpt").glob("ckpt-*.safetensors")]
    assert names == ["ckpt-e0002-s000000016.safetensors"]  # 60 training rows, 8 a batch: 16 steps
    ok(run("train", *common, "--epochs", "4", "--checkpoint-dir", "ckpt", "--resume", "--out",
           "resumed.safetensors", cwd=tmp_path))
    a, b = dp.load(tmp_path / "straight.safetensors").network, dp.load(tmp_path / "resumed.safetensors").network
    np.testing.assert_array_equal(a.params, b.params)
    assert dp.load(tmp_path / "resumed.safetensors").network.run_config["epochs"] == 4
    # A fresh run does not mix its checkpoints with another run's.
    fails(run("train", *common, "--checkpoint-dir", "ckpt", cwd=tmp_path), 2, "already holds checkpoints",
          "--resume")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process")
def test_ctrl_c_writes_a_checkpoint_exits_130_and_resumes_exactly(tmp_path):
    rng = np.random.default_rng(13)
    np.save(tmp_path / "X.npy", rng.standard_normal((20000, 16)).astype(np.float32))
    np.save(tmp_path / "y.npy", rng.integers(0, 3, 20000))
    common = ["train", "--data", "X.npy", "--labels", "y.npy", "--hidden", "32", "--epochs", "4",
              "--batch-size", "4", *QUIET]
    proc = subprocess.Popen(
        [sys.executable, "-m", "deltaprop", *common, "--checkpoint-dir", "ckpt", "--log", "m.jsonl"],
        cwd=tmp_path, env=env_for(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    log = tmp_path / "m.jsonl"
    deadline = time.monotonic() + 120
    while not (log.exists() and log.read_text().strip()) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("the run finished before the interrupt arrived")
    result = subprocess.CompletedProcess(proc.args, proc.returncode, "", stderr)
    line = fails(result, 130, "training interrupted at epoch ", "checkpoint written to", "resume with: deltaprop train",
                 "--checkpoint-dir ckpt --resume", prefix="deltaprop: interrupted: ")
    assert "ckpt" in line and not (tmp_path / "model.safetensors").exists()
    # Resuming finishes the run with the very weights of an uninterrupted one (cosine schedule included).
    ok(run(*common, "--checkpoint-dir", "ckpt", "--resume", "--out", "resumed.safetensors", cwd=tmp_path))
    ok(run(*common, "--out", "straight.safetensors", cwd=tmp_path))
    a, b = dp.load(tmp_path / "straight.safetensors").network, dp.load(tmp_path / "resumed.safetensors").network
    np.testing.assert_array_equal(a.params, b.params)


# ---------------------------------------------------------------------------
# No module state: the MPI communicator travels on the parsed arguments
# ---------------------------------------------------------------------------


def _cli_module_state():
    """The globals of every ``deltaprop.cli`` module: the object bound to each name, and containers' contents."""
    state = {}
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "deltaprop.cli" or name.startswith("deltaprop.cli.")):
            continue
        for key, value in vars(module).items():
            if key.startswith("__"):
                continue  # __builtins__ and the like belong to the interpreter
            shallow = None
            if isinstance(value, dict):
                shallow = dict(value)
            elif isinstance(value, (list, set)):
                shallow = list(value)
            state[name, key] = (id(value), shallow)
    return state


def test_train_leaves_no_module_state_behind(tmp_path, monkeypatch):
    import deltaprop.distributed as distributed
    from deltaprop.cli import main

    X, y = blobs(seed=14)
    write_csv(tmp_path / "a.csv", X, y)
    common = ["train", "--epochs", "1", "--batch-size", "16", "--out", str(tmp_path / "m.safetensors"), *QUIET]
    before = _cli_module_state()
    assert before  # the modules are there to compare
    assert main([*common, "--data", str(tmp_path / "a.csv")]) == 0
    assert _cli_module_state() == before  # no name rebound, no module-level container changed

    # A data-parallel run that fails: main aborts the other ranks through the run's own communicator,
    # which no module keeps.
    made = []

    class FakeComm:
        size, rank, is_root = 2, 0, True

        def __init__(self):
            self.aborted = []
            made.append(self)

        def abort(self, code=1):
            self.aborted.append(code)

    monkeypatch.setattr(distributed, "launched_by_mpi", lambda: True)
    monkeypatch.setattr(distributed, "MPIComm", FakeComm)
    assert main([*common, "--data", str(tmp_path / "missing.csv")]) == 1
    assert len(made) == 1 and made[0].aborted == [1]
    assert _cli_module_state() == before
    for name, module in list(sys.modules.items()):
        if module is not None and name.startswith("deltaprop.cli"):
            assert not any(value is made[0] for value in vars(module).values()), name


# ---------------------------------------------------------------------------
# gradcheck
# ---------------------------------------------------------------------------


def test_gradcheck_passes_and_fails_by_tolerance(tmp_path):
    result = ok(run("gradcheck", "--hidden", "6,5", "--activation", "tanh,sigmoid", "--loss", "mse",
                    "--samples", "5", cwd=tmp_path))
    errors = [float(v) for v in re.findall(r"\d\.\d\de[-+]\d\d", result.stdout)]
    assert len(errors) >= 6 and max(errors) < 1e-6 and "passed" in result.stdout
    strict = run("gradcheck", "--tol", "1e-30", cwd=tmp_path)
    assert strict.returncode == 1 and "FAILED" in strict.stdout and "FAIL" in strict.stdout


@pytest.mark.parametrize("loss", ["binary_crossentropy", "hinge", "huber"])
def test_gradcheck_losses(tmp_path, loss):
    ok(run("gradcheck", "--loss", loss, "--hidden", "4", cwd=tmp_path))


# ---------------------------------------------------------------------------
# Errors: one line, a prefix, an exit status, no traceback
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("args, status, fragments", [
    (["train", "--epochs", "0"], 2, ["--epochs must be a positive integer, got '0'"]),
    (["train", "--lr", "fast"], 2, ["--lr must be a number > 0, got 'fast'"]),
    (["train", "--epocs", "3"], 2, ["unrecognized arguments: --epocs"]),
    (["train", "--activation", "relux"], 2, ["unknown activation 'relux'"]),
    (["train", "--optimizer", "adam", "--momentum", "0.9"], 2, ["momentum applies to the sgd"]),
    (["train", "--resume"], 2, ["--checkpoint-dir"]),
    (["train", "--hidden", "8,x"], 2, ["--hidden must be layer sizes"]),
    (["train", "--hidden", "8,8", "--activation", "relu,tanh,gelu"], 2, ["activation has 3 values for 2"]),
    (["train", "--config", "missing.toml"], 2, ["missing.toml: no such configuration file"]),
    (["train", "--data", "missing.csv"], 1, ["missing.csv: no such file", "built-in"]),
    (["train", "--data", "bad.csv"], 1, ["bad.csv, line 3", "'oops'"]),
    (["train", "--data", "images.idx"], 1, ["give the labels file too"]),
    (["train", "--out", "nowhere/m.safetensors"], 1, ["nowhere/m.safetensors", "does not exist"]),
    (["train", "--data", "two.csv"], 1, ["validation_split=0.1", "leaves the training side empty"]),
    (["evaluate", "bad.csv"], 1, ["bad.csv"]),
    (["evaluate", "nothing.safetensors"], 1, ["no such model file"]),
    (["predict", "model.safetensors"], 2, ["--data"]),
    (["gradcheck", "--loss", "nope"], 2, ["unknown loss 'nope'"]),
    (["frobnicate"], 2, ["invalid choice: 'frobnicate'"]),
])
def test_errors_are_one_line(tmp_path, args, status, fragments):
    (tmp_path / "bad.csv").write_text("a,b,y\n1,2,0\n3,oops,1\n4,5,0\n")
    (tmp_path / "two.csv").write_text("a,y\n1,0\n2,1\n")
    (tmp_path / "images.idx").write_bytes(idx_bytes(np.zeros((3, 2, 2), dtype=np.uint8)))
    fails(run(*args, *QUIET if args[0] == "train" else (), cwd=tmp_path), status, *fragments)


def test_config_file_errors(tmp_path):
    (tmp_path / "typo.toml").write_text('epochs = 3\nbatch_sise = 4\nfoo = 1\n')
    fails(run("train", "--config", "typo.toml", cwd=tmp_path), 2, "unknown option(s) 'batch_sise'",
          "did you mean 'batch_size'?", "'foo'")
    (tmp_path / "bad.toml").write_text('epochs = "many"\n')
    fails(run("train", "--config", "bad.toml", cwd=tmp_path), 2, "bad.toml: epochs must be a positive integer")
    (tmp_path / "broken.toml").write_text('epochs = \n')
    fails(run("train", "--config", "broken.toml", cwd=tmp_path), 2, "not valid TOML")


def test_missing_fashion_mnist_says_how_to_install(tmp_path):
    line = fails(run("train", "--data", "fashion-mnist", *QUIET, cwd=tmp_path,
                     env={"DELTAPROP_FASHION_MNIST_DIR": str(tmp_path)}), 1)
    assert "apt-get install dataset-fashion-mnist" in line


def test_prediction_input_with_wrong_feature_count(trained, tmp_path):
    folder, _ = trained
    (tmp_path / "wide.csv").write_text("a,b,c,d,e,f\n1,2,3,4,5,6\n")
    fails(run("predict", folder / "animals.safetensors", "--data", "wide.csv", cwd=tmp_path), 1,
          "wide.csv", "'f0', 'f1', 'f2', 'f3'")


def test_evaluate_unknown_labels(trained, tmp_path):
    folder, _ = trained
    X, _ = blobs()
    write_csv(tmp_path / "zoo.csv", X[:5], ["cat", "cat", "yak", "dog", "gnu"])
    fails(run("evaluate", folder / "animals.safetensors", "--data", "zoo.csv", cwd=tmp_path), 1,
          "labels never seen in training", "'gnu'", "'yak'")


def test_a_raw_table_with_text_and_gaps_in_every_format_gives_the_same_predictions(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    rng = np.random.default_rng(3)
    n = 120
    colour = rng.choice(["red", "green", "blue"], size=n)
    size = rng.normal(10, 3, size=n)
    label = np.where((colour == "red") ^ (size > 10), "yes", "no")
    size[::17] = np.nan  # gaps
    df = pd.DataFrame({"id": np.arange(n), "colour": colour, "size": size, "label": label})
    df.to_csv(tmp_path / "t.csv", index=False, na_rep="NA")
    ok(run("train", "--data", "t.csv", "--target", "label", "--drop", "id", "--epochs", "5", "--hidden", "16",
           *QUIET, cwd=tmp_path))
    shuffled = df[["size", "label", "colour", "id"]].iloc[::-1].reset_index(drop=True)
    shuffled.to_parquet(tmp_path / "t.parquet")
    shuffled.to_feather(tmp_path / "t.feather")
    expected = ok(run("predict", "model.safetensors", "--data", "t.csv", cwd=tmp_path)).stdout.split()[1:]
    for name in ("t.parquet", "t.feather"):
        got = ok(run("predict", "model.safetensors", "--data", name, cwd=tmp_path)).stdout.split()[1:]
        assert got == expected[::-1], name  # the rows reversed, the columns by name
    model = dp.load(tmp_path / "model.safetensors")
    assert list(model.predict(df)) == expected and list(model.predict(shuffled)) == expected[::-1]
    assert model.feature_names == ["colour", "size"] and model.input_names()[-1].startswith("colour")
