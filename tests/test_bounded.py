"""Bounded inputs, atomic outputs, numbers judged before they are cast (issue 14).

Every input has a regular-file check and a size cap, pipes are read once,
compressed inputs have an inflation cap, outputs replace their target only
when complete, and values too large for the dtype are named with their
column instead of being blamed as NaN or infinity.
"""

import gzip
import io
import json
import os
import struct
import subprocess
import sys
import threading
import tracemalloc
import zipfile

import numpy as np
import pytest

from deltaprop import checks, tensorfile
from deltaprop.atomic import atomic_write
from deltaprop.checks import check_array, open_input, read_text_bounded
from deltaprop.data import Scaler, load_csv, load_features, load_idx, load_npz, load_xy
from deltaprop.errors import DataError, ModelFileError, SaveError


# ------------------------------------------------------------------ atomic writes
def test_atomic_write_replaces_only_when_complete(tmp_path):
    path = tmp_path / "out.csv"
    path.write_text("old\n")
    with atomic_write(path) as f:
        f.write("new\n")
        assert path.read_text() == "old\n"  # not yet
    assert path.read_text() == "new\n"
    assert os.listdir(tmp_path) == ["out.csv"]


def test_atomic_write_keeps_the_old_file_on_an_exception_mid_write(tmp_path):
    path = tmp_path / "out.bin"
    path.write_bytes(b"old bytes")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_write(path, "wb") as f:
            f.write(b"x" * 100_000)
            raise RuntimeError("boom")
    assert path.read_bytes() == b"old bytes"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_atomic_write_keeps_the_old_file_when_the_rename_fails(tmp_path, monkeypatch):
    path = tmp_path / "out.csv"
    path.write_text("old\n")

    def fail(src, dst):
        raise OSError(28, os.strerror(28))

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(SaveError, match=r"cannot write .*out.csv: No space left on device \[ENOSPC\]; "
                                        r"the previous file, if any, is intact"):
        with atomic_write(path) as f:
            f.write("new\n")
    assert path.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["out.csv"]


def test_atomic_write_keeps_permission_bits_and_new_files_follow_the_umask(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    path.chmod(0o640)
    with atomic_write(path, newline="") as f:
        f.write("a\r\nb")
    assert path.stat().st_mode & 0o7777 == 0o640
    assert path.read_bytes() == b"a\r\nb"
    old = os.umask(0o027)
    try:
        with atomic_write(tmp_path / "new.txt") as f:
            f.write("x")
    finally:
        os.umask(old)
    assert (tmp_path / "new.txt").stat().st_mode & 0o777 == 0o640


def test_atomic_write_refuses_a_folder_and_a_bad_mode(tmp_path):
    with pytest.raises(SaveError, match="is a folder"):
        with atomic_write(tmp_path) as f:
            f.write("x")
    with pytest.raises(ValueError, match="mode must be 'w' or 'wb', got 'a'"):
        with atomic_write(tmp_path / "x", "a"):
            pass


def test_plot_is_saved_atomically(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from deltaprop.plotting import plot_history

    rows = [{"epoch": 1, "loss": 1.0}, {"epoch": 2, "loss": 0.5}]
    path = tmp_path / "c.svg"
    plot_history(rows, path, "run")
    assert b"<svg" in path.read_bytes()[:400]
    before = path.read_bytes()
    monkeypatch.setattr(os, "replace", lambda a, b: (_ for _ in ()).throw(OSError(30, "Read-only file system")))
    with pytest.raises(SaveError, match="Read-only file system"):
        plot_history(rows + [{"epoch": 3, "loss": 0.2}], path, "run")
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["c.svg"]
    with pytest.raises(SaveError, match=r"extension picks the image format, got 'xyz'"):
        plot_history(rows, tmp_path / "c.xyz", "run")


# ------------------------------------------------------------------ pipes, devices, caps
def _fifo(tmp_path, payload, name="fifo"):
    """A FIFO with a thread writing ``payload`` into it once."""
    path = tmp_path / name
    os.mkfifo(path)

    def write():
        try:
            with open(path, "wb") as f:
                f.write(payload)
        except BrokenPipeError:
            pass  # the reader stopped at its cap

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return path, thread


def test_csv_from_a_fifo_is_read_once(tmp_path):
    text = "a,b,label\n1,2,x\n3,4,y\n5,6,x\n"
    path, thread = _fifo(tmp_path, text.encode())
    ds = load_xy(path)
    thread.join(5)
    assert ds.X.tolist() == [[1, 2], [3, 4], [5, 6]] and ds.y.tolist() == ["x", "y", "x"]
    assert ds.name == "fifo"
    assert sorted(os.listdir(tmp_path)) == ["fifo"]


def test_npy_from_a_fifo_is_read_once(tmp_path):
    X = np.arange(12.0).reshape(4, 3)
    buf = io.BytesIO()
    np.save(buf, X)
    path, thread = _fifo(tmp_path, buf.getvalue())
    got, names = load_features(path, n_features=3)
    thread.join(5)
    assert np.array_equal(got, X) and names is None


def test_errors_from_a_pipe_name_the_pipe_not_the_copy(tmp_path):
    path, thread = _fifo(tmp_path, b"a,b\noops,1\n")
    with pytest.raises(DataError, match=rf"^{tmp_path}/fifo, line 2, column 'a': cannot read 'oops' as a number$"):
        load_csv(path, target="b")
    thread.join(5)


def test_devices_are_refused_fast():
    for device in ("/dev/zero", "/dev/urandom"):
        if os.path.exists(device):
            with pytest.raises(DataError, match=rf"{device}: is a character device"):
                load_xy(device)
            with pytest.raises(DataError, match=rf"{device}: is a character device"):
                read_text_bounded(device)


def test_a_config_over_the_cap_is_refused(tmp_path):
    path = tmp_path / "big.toml"
    path.write_text("x = 1\n" * 200_000)  # 1.2 MB
    with pytest.raises(DataError, match=r"big.toml: the configuration file is 1.1\d* MiB \(1200000 bytes\), "
                                        r"more than the 1 MiB allowed"):
        read_text_bounded(path)
    assert read_text_bounded(path, max_bytes=2 << 20).startswith("x = 1\n")
    fifo, thread = _fifo(tmp_path, b"y = 2\n" * 200_000, "cfg")
    with pytest.raises(DataError, match=r"cfg: the configuration file is larger than the 1 MiB allowed"):
        read_text_bounded(fifo)
    thread.join(5)


def test_open_input_refuses_a_pipe_where_a_file_is_expected(tmp_path):
    os.mkfifo(tmp_path / "p")
    with pytest.raises(DataError, match=r"p: is a pipe; the data file must be a regular file"):
        open_input(tmp_path / "p", "data file")  # no writer: must not block


# ------------------------------------------------------------------ compressed inputs
def _idx_gz(n_bytes):
    head = bytes([0, 0, 0x08, 1]) + struct.pack(">I", n_bytes)
    return gzip.compress(head + bytes(n_bytes), compresslevel=9)


def test_gzip_bomb_is_refused_with_bounded_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(checks, "MAX_INFLATED_BYTES", 32 << 20)
    monkeypatch.setattr(checks, "MAX_INFLATION_RATIO", 400)  # limit: 400 × 64 KB + 1 MiB, about 26 MiB
    path = tmp_path / "bomb.idx.gz"
    path.write_bytes(_idx_gz(64 << 20))  # 64 MiB of zeros: about 64 KB compressed
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"bomb.idx.gz: .* of compressed IDX data \(\d+ bytes\) would inflate "
                                            r"to 67108872 bytes, beyond 400:1 plus 1 MiB, .*; stopped after "
                                            r"inflating \d+ bytes"):
            load_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20  # inflated block by block and thrown away, never kept up to the 26 MiB limit


def test_gzip_within_the_caps_loads(tmp_path):
    path = tmp_path / "ok.idx.gz"
    head = bytes([0, 0, 0x08, 1]) + struct.pack(">I", 1000)
    data = np.random.default_rng(0).integers(0, 255, 1000, dtype=np.uint8)
    path.write_bytes(gzip.compress(head + data.tobytes()))
    assert np.array_equal(load_idx(path), data)


def test_npz_zip_bomb_is_refused_from_the_directory(tmp_path):
    path = tmp_path / "bomb.npz"
    buf = io.BytesIO()
    np.save(buf, np.zeros(40 << 20, dtype=np.uint8))  # 40 MiB of zeros, about 40 KB deflated
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("X.npy", buf.getvalue())
        zf.writestr("y.npy", buf.getvalue())
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"bomb.npz: .* of compressed NPZ members .* would inflate to "
                                            r"83886\d+ bytes, beyond 100:1 .*refused before inflating"):
            load_npz(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


def test_ordinary_npz_still_loads(tmp_path):
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(50, 3)), rng.integers(0, 2, 50)
    np.savez_compressed(tmp_path / "d.npz", X=X, y=y)
    ds = load_xy(tmp_path / "d.npz")
    assert np.array_equal(ds.X, X) and np.array_equal(ds.y, y)


# ------------------------------------------------------------------ numbers before casts
def test_float32_cast_names_the_column_and_the_value():
    X = np.ones((6, 5))
    X[4, 3] = -1e200
    with pytest.raises(DataError, match=r"^X column 3 holds 1e\+200, too large for float32 \(largest 3.4e\+38\); "
                                        r"train in float64 \(dtype='float64', --dtype float64\) or rescale the "
                                        r"column$"):
        check_array(X, dtype=np.float32)
    X[0, 0] = np.nan  # a real NaN is still called one
    with pytest.raises(DataError, match="NaN or infinite"):
        check_array(X, dtype=np.float32)


def test_float64_scaler_is_finite_for_huge_features_and_float32_refuses_them():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(500, 3))
    X[:, 0] *= 1e200
    scaler = Scaler().fit(X, chunk_rows=64)
    assert np.isfinite(scaler.offset_).all() and np.isfinite(scaler.scale_).all()
    reference = (X[:, 0] / 1e200).std() * 1e200
    assert abs(scaler.scale_[0] / reference - 1) < 1e-12
    Z = scaler.transform(X, dtype=np.float64)
    assert np.isfinite(Z).all()
    np.testing.assert_allclose(Z.std(axis=0), 1.0, rtol=1e-12)
    np.testing.assert_allclose(Z.mean(axis=0), 0.0, atol=1e-12)
    with pytest.raises(DataError, match=r"^X column 0 holds \S+e\+20\d, too large for float32"):
        Scaler("none").fit(X).transform(X, dtype=np.float32)


def test_a_transform_that_overflows_names_the_column():
    scaler = Scaler().fit(np.array([[0.0, 0.0], [1e-3, 1.0]]))
    with pytest.raises(DataError, match=r"^X column 0 holds 1e\+36, which this Scaler .* maps beyond float32"):
        scaler.transform(np.array([[1e36, 0.0]]), dtype=np.float32)


# ------------------------------------------------------------------ model-file headers
def _header_file(path, header_bytes):
    path.write_bytes(struct.pack("<Q", len(header_bytes)) + header_bytes)
    return path


def test_deeply_nested_header_is_refused(tmp_path):
    path = _header_file(tmp_path / "deep.safetensors", b"[" * 50_000 + b"]" * 50_000)
    with pytest.raises(ModelFileError, match="deep.safetensors: header metadata nested too deeply"):
        tensorfile.read_file(path)


def test_header_of_many_small_values_is_refused_with_bounded_memory(tmp_path):
    n = 15 * 2**20 // 3
    path = _header_file(tmp_path / "many.safetensors", b"[" + b"{}," * n + b"{}]")
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match=r"header holds \d+ JSON values, more than the 131072"):
            tensorfile.read_file(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * 16 * 2**20


def test_a_16_mib_header_parses_within_a_small_multiple(tmp_path):
    meta = {f"k{i}": "v" * 1000 for i in range(16_000)}
    header = json.dumps({"__metadata__": meta}).encode()
    assert 15 * 2**20 < len(header) <= tensorfile.MAX_HEADER_BYTES
    path = _header_file(tmp_path / "big.safetensors", header)
    tracemalloc.start()
    try:
        tensors, metadata = tensorfile.read_file(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert tensors == {} and len(metadata) == 16_000
    assert peak < 4 * len(header) + (64 << 20)


# ------------------------------------------------------------------ CSV memory
_CSV_CHILD = r"""
import resource, sys
import numpy as np
from deltaprop.data import load_csv


def peak():
    # ru_maxrss survives exec (it starts at the forking parent's peak); VmHWM, where Linux has it, does not
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) * 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


before = peak()
ds = load_csv(sys.argv[1])
print(peak() - before, ds.X.shape[0], ds.X.shape[1])
"""


def test_csv_read_memory_is_bounded_by_a_multiple_of_the_file_size(tmp_path):
    """load_csv's docstring states: peak below 8 × the file's size + 16 MiB for numeric data."""
    rng = np.random.default_rng(3)
    rows, cols = 400_000, 8
    X = rng.integers(0, 10, size=(rows, cols))
    path = tmp_path / "big.csv"
    with open(path, "w") as f:
        f.write(",".join(f"c{j}" for j in range(cols)) + "\n")
        f.write("\n".join(",".join(map(str, row)) for row in X.tolist()) + "\n")  # short cells: the worst case
    size = path.stat().st_size
    assert size > 6 << 20
    out = subprocess.run([sys.executable, "-c", _CSV_CHILD, str(path)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    grown, n, d = (int(v) for v in out.stdout.split())
    assert (n, d) == (rows, cols - 1)
    print(f"CSV of {size} bytes: peak grew by {grown} bytes ({grown / size:.2f} × the file)")
    assert grown < 8 * size + (16 << 20), (grown, size)
