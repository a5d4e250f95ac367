"""Tests of deltaprop.data: loaders, built-in sets, labels, splits, scalers, validation."""

import ast
import gzip
import json
import math
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deltaprop import checks, data
from deltaprop.data import builtin as data_builtin
from deltaprop.data import (
    BUILTIN_DATASETS,
    Dataset,
    Labels,
    Scaler,
    check_array,
    check_targets,
    encode_labels,
    infer_task,
    load_array,
    load_builtin,
    load_csv,
    load_idx,
    load_npz,
    load_xy,
    split_indices,
    train_test_split,
)
from deltaprop.errors import DataError, InvalidArgumentError, InvalidTypeError, UnknownNameError


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


# ---------------------------------------------------------------------------
# Module hygiene
# ---------------------------------------------------------------------------


DATA_MODULES = sorted(Path(data.__file__).parent.glob("*.py"))


@pytest.mark.parametrize("path", DATA_MODULES, ids=[p.name for p in DATA_MODULES])
def test_module_imports_only_numpy_and_light_stdlib_at_top_level(path):
    tree = ast.parse(path.read_text())
    top = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            top.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            top.add("." * node.level + (node.module or ""))
    outside = {m for m in top if not (m.startswith(".") and not m.startswith(".."))}  # siblings in data/ are fine
    assert outside <= {"dataclasses", "math", "os", "numpy", "..errors", "..checks"}, outside


@pytest.mark.parametrize("path", DATA_MODULES, ids=[p.name for p in DATA_MODULES])
def test_no_pickle_anywhere(path):
    source = path.read_text()
    assert "allow_pickle=True" not in source
    assert "import pickle" not in source


# ---------------------------------------------------------------------------
# CSV
# ---------------------------------------------------------------------------


def test_csv_numeric_target_last_by_default(tmp_path):
    p = write(tmp_path / "a.csv", "x1,x2,y\n1,2,3.5\n4,5.5,6\n")
    ds = load_csv(p)
    assert ds.X.dtype == np.float64 and ds.X.shape == (2, 2)
    np.testing.assert_array_equal(ds.X, [[1, 2], [4, 5.5]])
    assert ds.y.dtype == np.float64
    np.testing.assert_array_equal(ds.y, [3.5, 6])
    assert ds.feature_names == ["x1", "x2"] and ds.target_name == "y"
    assert ds.name == "a.csv" and ds.class_names is None
    assert ds.X_test is None and ds.y_test is None


def test_csv_string_labels_kept_as_labels(tmp_path):
    p = write(tmp_path / "iris.csv", "a,b,species\n1,2,setosa\n3,4, virginica \n5,6,setosa\n")
    ds = load_csv(p)
    assert ds.y.dtype.kind == "U"
    assert ds.y.tolist() == ["setosa", "virginica", "setosa"]
    assert ds.class_names == ["setosa", "virginica"]
    assert ds.task == "classification"


def test_csv_quoted_fields(tmp_path):
    p = write(tmp_path / "q.csv", '"a","b, with comma",label\n"1.5",2,"cat, big"\n3,"4",dog\n')
    ds = load_csv(p)
    assert ds.feature_names == ["a", "b, with comma"]
    np.testing.assert_array_equal(ds.X, [[1.5, 2], [3, 4]])
    assert ds.y.tolist() == ["cat, big", "dog"]


def test_csv_bom_crlf_and_blank_trailing_lines(tmp_path):
    p = tmp_path / "w.csv"
    p.write_bytes(b"\xef\xbb\xbfa,b,t\r\n1,2,0\r\n3,4,1\r\n\r\n\r\n")
    ds = load_csv(p)
    assert ds.feature_names == ["a", "b"]  # no BOM glued to the first name
    np.testing.assert_array_equal(ds.X, [[1, 2], [3, 4]])
    np.testing.assert_array_equal(ds.y, [0, 1])


@pytest.mark.parametrize("target", ["a", 0, -3])
def test_csv_target_by_name_or_index(tmp_path, target):
    p = write(tmp_path / "t.csv", "a,b,c\n10,1,2\n20,3,4\n")
    ds = load_csv(p, target=target)
    np.testing.assert_array_equal(ds.y, [10, 20])
    np.testing.assert_array_equal(ds.X, [[1, 2], [3, 4]])
    assert ds.feature_names == ["b", "c"] and ds.target_name == "a"


def test_csv_other_delimiter(tmp_path):
    p = write(tmp_path / "s.csv", "a;b\n1;x\n2;y\n")
    ds = load_csv(p, delimiter=";")
    assert ds.X.shape == (2, 1) and ds.y.tolist() == ["x", "y"]


@pytest.mark.parametrize(
    "text, match",
    [
        ("", r"e\.csv: the file is empty"),
        ("\n\n  \n", r"the file is empty"),
        ("a,b,c\n", r"has a header \(line 1\) but no data rows"),
        ("a,b,c\n\n", r"no data rows"),
        ("a\n1\n", r"at least two"),
        ("a,b,a\n1,2,3\n", r"duplicate column name 'a'.*columns 1 and 3"),
        ("a,b,c\n1,2,3\n4,5\n", r"line 3: expected 3 fields \(as in the header\), found 2"),
        ("a,b,c\n1,2,3\n\n4,5,6,7\n", r"line 4: expected 3 fields .*found 4"),
        ("a,b,c\n1,2,3\n4,,6\n", r"line 3, column 'b': missing value"),
        ("a,b,c\n1,2,3\nfoo,5,6\n", r"line 3, column 'a': cannot read 'foo' as a number"),
        ("a,b,c\n1,NA,3\n", r"line 2, column 'b': cannot read 'NA'"),
        ("a,b,c\n1,2,3\n4,nan,6\n", r"line 3, column 'b': 'nan' is not a finite number \(1 NaN"),
        ("a,b,c\n1,inf,3\n-inf,2,3\n", r"line 2, column 'b': 'inf' is not a finite.*\(2 NaN or infinite"),
        ("a,b,c\n1,2,3\n4,5,\n", r"line 3, column 'c': missing target value"),
        ("a,b,c\n1,2,3\n4,5,nan\n", r"line 3, column 'c': target value 'nan' is not a finite"),
    ],
)
def test_csv_errors(tmp_path, text, match):
    p = write(tmp_path / "e.csv", text)
    with pytest.raises(DataError, match=match):
        load_csv(p)


def test_csv_missing_target_column_lists_columns(tmp_path):
    p = write(tmp_path / "t.csv", "a,b,c\n1,2,3\n")
    with pytest.raises(DataError, match=r"no column named 'label'; the columns are \['a', 'b', 'c'\]"):
        load_csv(p, target="label")
    with pytest.raises(DataError, match=r"target column index 3 is out of range for 3 columns \['a', 'b', 'c'\]"):
        load_csv(p, target=3)
    with pytest.raises(InvalidTypeError, match=r"target must be a column name .* got 1\.5"):
        load_csv(p, target=1.5)


def test_csv_file_problems(tmp_path):
    with pytest.raises(DataError, match=r"nope\.csv: no such file"):
        load_csv(tmp_path / "nope.csv")
    p = tmp_path / "latin1.csv"
    p.write_bytes("a,b\n1,caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"not UTF-8 text"):
        load_csv(p)
    with pytest.raises(InvalidArgumentError, match=r"delimiter must be a single character, got ';;'"):
        load_csv(p, delimiter=";;")


# ---------------------------------------------------------------------------
# NPY / NPZ
# ---------------------------------------------------------------------------


def test_load_array_is_memmapped_by_default(tmp_path):
    a = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.save(tmp_path / "a.npy", a)
    m = load_array(tmp_path / "a.npy")
    assert isinstance(m, np.memmap) and m.mode == "r"
    np.testing.assert_array_equal(m, a)
    full = load_array(tmp_path / "a.npy", mmap=False)
    assert not isinstance(full, np.memmap)
    np.testing.assert_array_equal(full, a)


def test_load_array_empty(tmp_path):
    np.save(tmp_path / "e.npy", np.zeros((0, 3)))
    assert load_array(tmp_path / "e.npy").shape == (0, 3)


def test_object_arrays_are_refused(tmp_path):
    obj = np.array([1, "a", None], dtype=object)
    np.save(tmp_path / "o.npy", obj, allow_pickle=True)
    for mmap in (True, False):
        with pytest.raises(DataError, match=r"o\.npy: holds an object array.*never unpickles"):
            load_array(tmp_path / "o.npy", mmap=mmap)
    np.savez(tmp_path / "o.npz", X=np.zeros((3, 2)), y=obj)
    with pytest.raises(DataError, match=r"member 'y'.*object array"):
        load_npz(tmp_path / "o.npz")
    with pytest.raises(DataError, match=r"object array"):
        load_xy(tmp_path / "o.npz")


def test_npy_truncated_and_wrong_format(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((100, 10)))
    raw = (tmp_path / "a.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(raw[:-80])
    with pytest.raises(DataError, match=r"truncated NPY file.*8000 bytes of data\) but the file holds 7920"):
        load_array(tmp_path / "cut.npy")
    np.savez(tmp_path / "z.npz", a=np.zeros(3))
    with pytest.raises(DataError, match=r"NPZ \(zip\) archive.*use load_npz"):
        load_array(tmp_path / "z.npz")
    write(tmp_path / "t.npy", "hello")
    with pytest.raises(DataError, match=r"not an NPY file"):
        load_array(tmp_path / "t.npy")
    with pytest.raises(DataError, match=r"not an NPZ archive.*use load_array"):
        load_npz(tmp_path / "a.npy")


def test_load_npz(tmp_path):
    np.savez_compressed(tmp_path / "z.npz", first=np.arange(5), second=np.eye(2, dtype=np.float32))
    arrays = load_npz(tmp_path / "z.npz")
    assert list(arrays) == ["first", "second"]
    np.testing.assert_array_equal(arrays["first"], np.arange(5))
    assert arrays["second"].dtype == np.float32
    raw = (tmp_path / "z.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match=r"cut\.npz"):
        load_npz(tmp_path / "cut.npz")


@pytest.mark.parametrize("keys", [("X", "y"), ("x", "y"), ("data", "target")])
def test_load_xy_npz_keys(tmp_path, keys):
    X, y = np.random.default_rng(0).random((6, 3)), np.arange(6)
    np.savez(tmp_path / "d.npz", **{keys[0]: X, keys[1]: y})
    ds = load_xy(tmp_path / "d.npz")
    np.testing.assert_array_equal(ds.X, X)
    np.testing.assert_array_equal(ds.y, y)
    assert ds.task == "classification"


def test_load_xy_npz_errors(tmp_path):
    np.savez(tmp_path / "d.npz", features=np.zeros((2, 2)), labels=np.zeros(2))
    with pytest.raises(DataError, match=r"expected arrays named 'X' and 'y'.*found \['features', 'labels'\]"):
        load_xy(tmp_path / "d.npz")
    np.savez(tmp_path / "m.npz", X=np.zeros((3, 2)), y=np.zeros(4))
    with pytest.raises(DataError, match=r"X has 3 samples but y has shape \(4,\)"):
        load_xy(tmp_path / "m.npz")


def test_load_xy_npy_with_target_column(tmp_path):
    a = np.arange(20, dtype=np.float64).reshape(5, 4)
    np.save(tmp_path / "a.npy", a)
    ds = load_xy(tmp_path / "a.npy")
    assert isinstance(ds.X, np.memmap)  # the last column split off as a view
    np.testing.assert_array_equal(ds.X, a[:, :3])
    np.testing.assert_array_equal(ds.y, a[:, 3])
    ds0 = load_xy(tmp_path / "a.npy", target=0)
    np.testing.assert_array_equal(ds0.X, a[:, 1:])
    ds1 = load_xy(tmp_path / "a.npy", target=1)
    np.testing.assert_array_equal(ds1.X, a[:, [0, 2, 3]])
    np.testing.assert_array_equal(ds1.y, a[:, 1])
    with pytest.raises(InvalidArgumentError, match=r"target column index 4 is out of range for 4"):
        load_xy(tmp_path / "a.npy", target=4)
    np.save(tmp_path / "v.npy", np.zeros(5))
    with pytest.raises(DataError, match=r"expected a 2-D array.*got shape \(5,\)"):
        load_xy(tmp_path / "v.npy")


def test_load_xy_separate_targets_file(tmp_path):
    X = np.random.default_rng(1).random((8, 3)).astype(np.float32)
    y = np.arange(8) % 2
    np.save(tmp_path / "features.npy", X)
    np.save(tmp_path / "targets.npy", y)
    ds = load_xy(tmp_path / "features.npy", targets=tmp_path / "targets.npy")
    assert isinstance(ds.X, np.memmap) and not isinstance(ds.y, np.memmap)
    np.testing.assert_array_equal(ds.X, X)
    np.testing.assert_array_equal(ds.y, y)
    np.save(tmp_path / "short.npy", y[:5])
    with pytest.raises(DataError, match=r"X has 8 samples but y has shape \(5,\)"):
        load_xy(tmp_path / "features.npy", targets=tmp_path / "short.npy")
    with pytest.raises(InvalidArgumentError, match=r"either target .* or targets"):
        load_xy(tmp_path / "features.npy", target=0, targets=tmp_path / "targets.npy")


def test_load_xy_csv(tmp_path):
    p = write(tmp_path / "d.txt", "a,b,label\n1,2,x\n3,4,y\n")
    ds = load_xy(p)
    assert ds.y.tolist() == ["x", "y"]
    ds = load_xy(write(tmp_path / "n.csv", "a,b,c\n1,2,5\n3,4,6\n"), target="a")
    np.testing.assert_array_equal(ds.y, [1, 3])
    np.testing.assert_array_equal(ds.X, [[2, 5], [4, 6]])


# ---------------------------------------------------------------------------
# IDX
# ---------------------------------------------------------------------------

IDX_CODES = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}


def idx_bytes(arr):
    code = IDX_CODES[arr.dtype.str[1:]]
    head = bytes([0, 0, code, arr.ndim]) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    return head + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write_idx(path, arr, gz=False):
    raw = idx_bytes(arr)
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dtype", ["u1", "i1", "i2", "i4", "f4", "f8"])
def test_idx_round_trip(tmp_path, dtype, gz):
    rng = np.random.default_rng(0)
    arr = (rng.standard_normal((3, 4, 5)) * 100).astype(dtype)
    # The names lie about compression: detection is by magic bytes.
    out = load_idx(write_idx(tmp_path / ("data.idx" if gz else "data.gz"), arr, gz))
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    assert out.shape == (3, 4, 5) and out.flags.writeable
    np.testing.assert_array_equal(out, arr)


def test_idx_one_dimension(tmp_path):
    arr = np.arange(10, dtype=np.uint8)
    np.testing.assert_array_equal(load_idx(write_idx(tmp_path / "l", arr, gz=True)), arr)


def test_idx_truncated_or_padded_plain(tmp_path):
    raw = idx_bytes(np.zeros((10, 4), dtype=np.int32))
    (tmp_path / "cut").write_bytes(raw[:-3])
    with pytest.raises(DataError, match=r"cut: the IDX header declares shape \(10, 4\) of int32, which needs 160 bytes of data, but the file holds 157"):
        load_idx(tmp_path / "cut")
    (tmp_path / "long").write_bytes(raw + b"\0")
    with pytest.raises(DataError, match=r"needs 160 bytes of data, but the file holds 161"):
        load_idx(tmp_path / "long")


def test_idx_truncated_gzip(tmp_path):
    rng = np.random.default_rng(0)
    raw = idx_bytes(rng.integers(0, 255, (50, 50), dtype=np.uint8))
    packed = gzip.compress(raw)
    (tmp_path / "cut.gz").write_bytes(packed[: len(packed) // 2])
    with pytest.raises(DataError, match=r"cut\.gz: truncated or corrupt gzip stream after \d+ bytes"):
        load_idx(tmp_path / "cut.gz")
    corrupt = bytearray(packed)
    corrupt[-6] ^= 0xFF  # inside the CRC trailer
    (tmp_path / "crc.gz").write_bytes(bytes(corrupt))
    with pytest.raises(DataError, match=r"crc\.gz: truncated or corrupt gzip"):
        load_idx(tmp_path / "crc.gz")
    # A complete gzip stream whose content is short of the declared data.
    (tmp_path / "short.gz").write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(DataError, match=r"short\.gz: .*needs 2500 bytes of data, but the gzip stream holds 2400"):
        load_idx(tmp_path / "short.gz")
    (tmp_path / "long.gz").write_bytes(gzip.compress(raw + b"extra"))
    with pytest.raises(DataError, match=r"needs 2500 bytes of data, but the gzip stream holds more than 2500"):
        load_idx(tmp_path / "long.gz")


@pytest.mark.parametrize("gz", [False, True])
def test_idx_huge_declared_size_is_checked_before_allocating(tmp_path, gz):
    head = bytes([0, 0, 0x0E, 3]) + struct.pack(">III", 2**31, 2**31, 2**20)
    raw = head + b"\0" * 64
    (tmp_path / "huge").write_bytes(gzip.compress(raw) if gz else raw)
    expected = 2**82 * 8
    with pytest.raises(DataError, match=rf"needs {expected} bytes of data, but the (file|gzip stream) holds 64"):
        load_idx(tmp_path / "huge")


@pytest.mark.parametrize(
    "raw, match",
    [
        (b"\x01\x00\x08\x01" + b"\0" * 8, r"bad IDX magic number 0x01000801"),
        (b"\x00\x00\x0a\x01\x00\x00\x00\x01\x00", r"unknown IDX type code 0x0A"),
        (b"\x00\x00\x08\x00", r"declares 0 dimensions"),
        (b"\x00\x00\x08\x03\x00\x00\x00\x01", r"truncated IDX header: 3 dimensions need 16 header bytes, the file holds 8"),
        (b"\x00\x00", r"too short for an IDX file"),
    ],
)
@pytest.mark.parametrize("gz", [False, True])
def test_idx_bad_headers(tmp_path, raw, match, gz):
    p = tmp_path / "bad"
    p.write_bytes(gzip.compress(raw) if gz else raw)
    with pytest.raises(DataError, match=match):
        load_idx(p)


# ---------------------------------------------------------------------------
# Format detection, IDX pairs, features alone
# ---------------------------------------------------------------------------


def test_detect_format_by_content_not_name(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((2, 2)))
    np.savez(tmp_path / "b.npz", X=np.zeros((2, 2)))
    write_idx(tmp_path / "c.csv", np.zeros((2, 2), dtype=np.uint8))  # names lie
    write_idx(tmp_path / "d.npy", np.zeros(3, dtype=np.uint8), gz=True)
    write(tmp_path / "e.idx", "a,b\n1,2\n")
    (tmp_path / "a.npy").rename(tmp_path / "a.csv")
    kinds = [data.detect_format(tmp_path / n) for n in ("a.csv", "b.npz", "c.csv", "d.npy", "e.idx")]
    assert kinds == ["npy", "npz", "idx", "idx", "csv"]
    (tmp_path / "f.gz").write_bytes(gzip.compress(b"a,b\n1,2\n"))
    with pytest.raises(DataError, match="gzip-compressed file that does not hold IDX data"):
        data.detect_format(tmp_path / "f.gz")
    with pytest.raises(DataError, match="no such file"):
        data.detect_format(tmp_path / "missing")


@pytest.mark.parametrize("gz", [False, True])
def test_load_xy_idx_images_with_labels(tmp_path, gz):
    images = np.arange(5 * 3 * 2, dtype=np.uint8).reshape(5, 3, 2)
    labels = np.array([0, 1, 2, 1, 0], dtype=np.uint8)
    write_idx(tmp_path / "images", images, gz)
    write_idx(tmp_path / "labels", labels, gz)
    np.save(tmp_path / "labels.npy", labels.astype(np.int64))
    for targets in ("labels", "labels.npy"):
        ds = load_xy(tmp_path / "images", targets=tmp_path / targets)
        assert ds.X.shape == (5, 6) and ds.X.dtype == np.uint8  # flattened per sample
        np.testing.assert_array_equal(ds.X, images.reshape(5, 6))
        np.testing.assert_array_equal(ds.y, labels)
        assert ds.task == "classification"
    with pytest.raises(DataError, match="give the labels file too"):
        load_xy(tmp_path / "images")
    write(tmp_path / "labels.csv", "y\n0\n1\n2\n1\n0\n")
    with pytest.raises(DataError, match="must be an NPY or IDX array, got a CSV file"):
        load_xy(tmp_path / "images", targets=tmp_path / "labels.csv")
    write_idx(tmp_path / "short", labels[:3], gz)
    with pytest.raises(DataError, match=r"X has 5 samples but y has shape \(3,\)"):
        load_xy(tmp_path / "images", targets=tmp_path / "short")


def test_load_xy_targets_file_needs_npy_or_idx_features(tmp_path):
    p = write(tmp_path / "d.csv", "a,b\n1,2\n")
    np.save(tmp_path / "y.npy", np.zeros(1))
    with pytest.raises(DataError, match="goes with NPY or IDX features, not with a CSV file"):
        load_xy(p, targets=tmp_path / "y.npy")


def test_load_features_csv_with_or_without_the_target_column(tmp_path):
    with_target = write(tmp_path / "w.csv", "a,b,label,c\n1,2,x,3\n4,5,y,6\n")
    without = write(tmp_path / "wo.csv", "a,b,c\n1,2,3\n4,5,6\n")
    X, names = data.load_features(without, n_features=3)
    np.testing.assert_array_equal(X, [[1, 2, 3], [4, 5, 6]])
    assert names == ["a", "b", "c"]
    X, names = data.load_features(with_target, n_features=3, target="label")
    np.testing.assert_array_equal(X, [[1, 2, 3], [4, 5, 6]])
    assert names == ["a", "b", "c"]
    X, _ = data.load_features(without, n_features=3, target="label")  # absent: nothing dropped
    assert X.shape == (2, 3)
    X, names = data.load_features(without)  # no expectation: every column is a feature
    assert names == ["a", "b", "c"]
    X, names = data.load_features(write(tmp_path / "l.csv", "a,b,t\n1,2,9\n"), n_features=2)
    assert names == ["a", "b"]  # one column too many: the last is the target by default
    with pytest.raises(DataError, match=r"has 4 columns; expected 2 \(features\) or 3"):
        data.load_features(with_target, n_features=2)
    with pytest.raises(DataError, match="no column named 'nope'"):
        data.load_features(with_target, n_features=3, target="nope")
    with pytest.raises(DataError, match="cannot read 'x' as a number"):
        data.load_features(with_target, n_features=4)


def test_load_features_npy_npz_idx(tmp_path):
    a = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.save(tmp_path / "a.npy", a)
    X, names = data.load_features(tmp_path / "a.npy", n_features=3)
    assert isinstance(X, np.memmap) and names is None
    np.testing.assert_array_equal(X, a)
    X, _ = data.load_features(tmp_path / "a.npy", n_features=2)
    assert isinstance(X, np.memmap)  # the last column dropped as a view
    np.testing.assert_array_equal(X, a[:, :2])
    X, _ = data.load_features(tmp_path / "a.npy", n_features=2, target=1)
    np.testing.assert_array_equal(X, a[:, [0, 2]])
    with pytest.raises(InvalidTypeError, match="column index"):
        data.load_features(tmp_path / "a.npy", n_features=2, target="label")
    with pytest.raises(DataError, match="target column index 5 is out of range for 3 columns"):
        data.load_features(tmp_path / "a.npy", n_features=2, target=5)
    np.savez(tmp_path / "b.npz", X=a, y=np.zeros(4))
    np.testing.assert_array_equal(data.load_features(tmp_path / "b.npz", n_features=3)[0], a)
    np.savez(tmp_path / "c.npz", features=a)
    np.testing.assert_array_equal(data.load_features(tmp_path / "c.npz")[0], a)  # the only array
    np.savez(tmp_path / "d.npz", p=a, q=a)
    with pytest.raises(DataError, match="expected an array named 'X'"):
        data.load_features(tmp_path / "d.npz")
    write_idx(tmp_path / "images", np.zeros((4, 2, 3), dtype=np.uint8), gz=True)
    X, _ = data.load_features(tmp_path / "images", n_features=6)
    assert X.shape == (4, 6)
    with pytest.raises(DataError, match="the samples have 6 features; expected 5"):
        data.load_features(tmp_path / "images", n_features=5)


# ---------------------------------------------------------------------------
# Built-in data sets
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, shape, task, n_classes",
    [
        ("digits", (1797, 64), "classification", 10),
        ("iris", (150, 4), "classification", 3),
        ("wine", (178, 13), "classification", 3),
        ("breast-cancer", (569, 30), "classification", 2),
        ("breast_cancer", (569, 30), "classification", 2),
        ("diabetes", (442, 10), "regression", None),
    ],
)
def test_builtin_sklearn_sets(name, shape, task, n_classes):
    ds = load_builtin(name)
    assert ds.X.shape == shape and ds.X.dtype == np.float64
    assert ds.y.shape == (shape[0],)
    assert ds.task == task
    assert len(ds.feature_names) == shape[1]
    assert ds.X_test is None and ds.y_test is None
    if n_classes is None:
        assert ds.y.dtype == np.float64 and ds.class_names is None
    else:
        assert ds.y.dtype == np.int64
        assert len(ds.class_names) == n_classes and all(isinstance(c, str) for c in ds.class_names)
        assert set(np.unique(ds.y)) == set(range(n_classes))


def test_builtin_names():
    assert BUILTIN_DATASETS == ("digits", "iris", "wine", "breast-cancer", "diabetes", "fashion-mnist")
    assert load_builtin("digits").class_names == [str(d) for d in range(10)]
    assert load_builtin("Iris").class_names == ["setosa", "versicolor", "virginica"]
    with pytest.raises(UnknownNameError, match=r"unknown built-in data set 'mnist'; .*digits, iris, .*fashion-mnist"):
        load_builtin("mnist")


def test_builtin_without_sklearn(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(DataError, match=r"pip install 'deltaprop\[sklearn\]'"):
        load_builtin("iris")


def fashion_installed():
    try:
        data_builtin._fashion_mnist_paths()
    except DataError:
        return False
    return True


@pytest.mark.skipif(not fashion_installed(), reason="dataset-fashion-mnist is not installed")
@pytest.mark.parametrize("name", ["fashion-mnist", "fashion_mnist"])
def test_builtin_fashion_mnist(name):
    ds = load_builtin(name)
    assert ds.X.shape == (60000, 784) and ds.X.dtype == np.float32
    assert ds.X_test.shape == (10000, 784) and ds.X_test.dtype == np.float32
    assert ds.y.shape == (60000,) and ds.y_test.shape == (10000,) and ds.y.dtype == np.int64
    assert ds.X.min() == 0 and ds.X.max() == 255  # raw pixels, not scaled
    assert np.bincount(ds.y).tolist() == [6000] * 10  # the official, balanced split
    assert ds.class_names[:2] == ["T-shirt/top", "Trouser"] and ds.class_names[-1] == "Ankle boot"
    assert ds.task == "classification" and ds.name == "fashion-mnist"


def test_fashion_mnist_missing_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.delenv(data_builtin.FASHION_MNIST_ENV, raising=False)
    monkeypatch.setattr(data_builtin, "FASHION_MNIST_DIRS", (str(tmp_path / "nowhere"),))
    install = r"Fashion-MNIST is not installed: run `sudo apt-get install dataset-fashion-mnist` or set DELTAPROP_FASHION_MNIST_DIR"
    with pytest.raises(DataError, match=install):
        load_builtin("fashion-mnist")
    monkeypatch.setenv(data_builtin.FASHION_MNIST_ENV, str(tmp_path))
    with pytest.raises(DataError, match=install + r".*does not hold them"):
        load_builtin("fashion_mnist")


def test_fashion_mnist_from_env_folder(monkeypatch, tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    labels = np.arange(7, dtype=np.uint8)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", images, gz=True)
    write_idx(tmp_path / "train-labels-idx1-ubyte", labels)  # unzipped works too
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images[:3], gz=True)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels[:3], gz=True)
    monkeypatch.setenv(data_builtin.FASHION_MNIST_ENV, str(tmp_path))
    ds = load_builtin("fashion-mnist")
    np.testing.assert_array_equal(ds.X, images.reshape(7, 784).astype(np.float32))
    np.testing.assert_array_equal(ds.y, labels)
    assert ds.X_test.shape == (3, 784) and ds.y_test.tolist() == [0, 1, 2]
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels[:2], gz=True)
    with pytest.raises(DataError, match=r"expected 3 labels \(one per image\), got shape \(2,\)"):
        load_builtin("fashion-mnist")


# ---------------------------------------------------------------------------
# Dataset and task inference
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "y, task",
    [
        (np.array(["a", "b"]), "classification"),
        (np.array([True, False]), "classification"),
        (np.arange(1000), "classification"),  # integer dtype: always classes
        (np.array([0.0, 1.0, 2.0, 1.0]), "classification"),
        (np.arange(51, dtype=float), "regression"),  # more than 50 distinct values
        (np.arange(50, dtype=float), "classification"),
        (np.array([0.5, 1.0]), "regression"),
    ],
)
def test_infer_task(y, task):
    assert infer_task(y) == task
    assert Dataset(X=np.zeros((len(y), 1)), y=y).task == task


def test_dataset_repr_and_task_check():
    ds = Dataset(X=np.zeros((3, 2)), y=np.arange(3), name="toy")
    assert repr(ds) == "Dataset(name='toy', X=<float64 (3, 2)>, y=<int64 (3,)>, task='classification')"
    assert ds.n_samples == 3 and ds.n_features == 2
    with pytest.raises(InvalidArgumentError, match=r"task must be one of .* got 'clustering'"):
        Dataset(X=np.zeros((3, 2)), y=np.arange(3), task="clustering")


# ---------------------------------------------------------------------------
# Labels
# ---------------------------------------------------------------------------


def test_encode_labels():
    classes, idx = encode_labels(["b", "a", "c", "a"])
    assert classes.tolist() == ["a", "b", "c"]
    assert idx.dtype == np.int64 and idx.tolist() == [1, 0, 2, 0]
    classes, idx = encode_labels(np.array([3.0, 1.0, 3.0]))
    assert classes.tolist() == [1.0, 3.0] and idx.tolist() == [1, 0, 1]
    classes, idx = encode_labels(np.array(["x", "y"], dtype=object))
    assert classes.dtype.kind == "U"
    with pytest.raises(InvalidTypeError, match=r"dtype object with values that are not all str"):
        encode_labels(np.array(["x", 1], dtype=object))
    with pytest.raises(InvalidArgumentError, match=r"must be 1-D .*got shape \(2, 2\); try y\.ravel\(\)"):
        encode_labels(np.zeros((2, 2)))
    with pytest.raises(DataError, match=r"non-finite label nan at index 1"):
        encode_labels([1.0, np.nan])


def test_labels_round_trip_and_unseen():
    labels = Labels().fit(["cat", "dog", "cat", "emu"])
    assert labels.classes_.tolist() == ["cat", "dog", "emu"]
    idx = labels.transform(["emu", "cat"])
    assert idx.dtype == np.int64 and idx.tolist() == [2, 0]
    assert labels.inverse_transform(idx).tolist() == ["emu", "cat"]
    assert labels.fit_transform(["b", "a"]).tolist() == [1, 0]
    labels.fit(["cat", "dog"])
    with pytest.raises(DataError, match=r"labels never seen in training: 'cow', 'pig'; the known labels are \['cat', 'dog'\]"):
        labels.transform(["cat", "pig", "cow", "pig"])
    with pytest.raises(DataError, match=r"never seen in training: 1, 2"):
        labels.transform([1, 2])  # numbers are not strings
    many = [f"x{i:02d}" for i in range(15)]
    with pytest.raises(DataError, match=r"'x00', .*'x09' and 5 more;"):
        labels.transform(many)
    with pytest.raises(InvalidArgumentError, match=r"class index 2 is out of range for 2 classes \(0\.\.1\)"):
        labels.inverse_transform([0, 2])
    with pytest.raises(InvalidTypeError, match=r"indices must be integers, got dtype float64"):
        labels.inverse_transform([0.0])
    with pytest.raises(InvalidArgumentError, match=r"not fitted yet"):
        Labels().transform(["a"])


# ---------------------------------------------------------------------------
# Splits
# ---------------------------------------------------------------------------


def test_split_sizes_disjoint_sorted_and_seeded():
    X = np.arange(40).reshape(20, 2)
    y = np.arange(20)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.33, seed=3)
    assert len(y_te) == math.ceil(0.33 * 20) and len(y_tr) == 20 - len(y_te)
    assert sorted(np.concatenate([y_tr, y_te]).tolist()) == list(range(20))
    assert np.all(np.diff(y_tr) > 0) and np.all(np.diff(y_te) > 0)
    np.testing.assert_array_equal(X_tr, X[y_tr])
    again = train_test_split(X, y, test_size=0.33, seed=3)
    np.testing.assert_array_equal(again[3], y_te)
    other = train_test_split(X, y, test_size=0.33, seed=4)
    assert not np.array_equal(other[3], y_te)


@pytest.mark.parametrize("test_size", [0.1, 0.25, 0.5, 0.77])
def test_stratified_split_keeps_proportions(test_size):
    y = np.repeat(["a", "b", "c", "d"], [100, 37, 9, 3])
    X = np.arange(len(y), dtype=float).reshape(-1, 1)
    _, X_te, y_tr, y_te = train_test_split(X, y, test_size=test_size, stratify=y, seed=1)
    n_test = math.ceil(test_size * len(y))
    assert len(y_te) == n_test
    for label, count in zip("abcd", [100, 37, 9, 3]):
        assert abs(np.sum(y_te == label) - count * n_test / len(y)) < 1
        assert abs(np.sum(y_tr == label) - count * (len(y) - n_test) / len(y)) < 1
    np.testing.assert_array_equal(y[X_te[:, 0].astype(int)], y_te)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    counts=st.lists(st.integers(1, 40), min_size=1, max_size=6),
    test_size=st.floats(0.05, 0.95),
    seed=st.integers(0, 2**16),
)
def test_stratified_split_property(counts, test_size, seed):
    y = np.repeat(np.arange(len(counts)), counts)
    n = len(y)
    n_test = math.ceil(test_size * n)
    if n_test == n:
        return
    train_idx, test_idx = split_indices(n, test_size, stratify=y, seed=seed)
    assert len(test_idx) == n_test
    assert np.intersect1d(train_idx, test_idx).size == 0
    got = np.bincount(y[test_idx], minlength=len(counts))
    assert np.all(np.abs(got - np.array(counts) * n_test / n) < 1)


def test_split_of_memmap(tmp_path):
    X = np.random.default_rng(0).random((50, 4))
    np.save(tmp_path / "X.npy", X)
    m = load_array(tmp_path / "X.npy")
    y = np.arange(50) % 3
    X_tr, X_te, y_tr, y_te = train_test_split(m, y, test_size=0.2, stratify=y)
    assert X_te.shape == (10, 4) and not isinstance(X_te, np.memmap)
    train_idx, test_idx = split_indices(50, 0.2, stratify=y)
    np.testing.assert_array_equal(X_te, X[test_idx])
    np.testing.assert_array_equal(X_tr, X[train_idx])


@pytest.mark.parametrize("test_size", [0, 1, 1.5, -0.1, 0.0])
def test_split_bad_test_size(test_size):
    with pytest.raises(InvalidArgumentError, match=rf"test_size must be a float in \(0, 1\), got {test_size}"):
        train_test_split(np.zeros((10, 1)), np.zeros(10), test_size=test_size)


def test_split_errors():
    with pytest.raises(InvalidTypeError, match=r"test_size must be a float"):
        train_test_split(np.zeros((10, 1)), np.zeros(10), test_size=True)
    with pytest.raises(InvalidArgumentError, match=r"test_size=0\.6 with 2 sample\(s\) leaves the training side empty"):
        train_test_split(np.zeros((2, 1)), np.zeros(2), test_size=0.6)
    with pytest.raises(InvalidArgumentError, match=r"with 0 sample\(s\) leaves the test side empty"):
        train_test_split(np.zeros((0, 1)), np.zeros(0))
    with pytest.raises(InvalidArgumentError, match=r"X has 10 samples but y has 9"):
        train_test_split(np.zeros((10, 1)), np.zeros(9))
    with pytest.raises(InvalidArgumentError, match=r"stratify has 4 labels but there are 10 samples"):
        train_test_split(np.zeros((10, 1)), np.zeros(10), stratify=[0, 1, 0, 1])


# ---------------------------------------------------------------------------
# Scaler
# ---------------------------------------------------------------------------


def sample_features(n=200, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 5)) * [1, 10, 0.1, 1000, 3] + [0, -5, 3, 1e4, 0]
    X[:, 4] = 7.0  # a constant feature
    return X


def test_standard_scaler():
    X = sample_features()
    before = X.copy()
    Z = Scaler("standard").fit_transform(X, dtype=np.float64)
    np.testing.assert_array_equal(X, before)  # the input is never modified
    np.testing.assert_allclose(Z[:, :4].mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(Z[:, :4].std(axis=0), 1, rtol=1e-12)
    np.testing.assert_array_equal(Z[:, 4], 0)  # constant: (x - x) / 1
    s = Scaler("standard").fit(X)
    assert s.scale_[4] == 1 and s.offset_[4] == 7


def test_minmax_and_none_scalers():
    X = sample_features()
    Z = Scaler("minmax").fit_transform(X, dtype=np.float64)
    np.testing.assert_allclose(Z[:, :4].min(axis=0), 0, atol=1e-15)
    np.testing.assert_allclose(Z[:, :4].max(axis=0), 1, rtol=1e-15)
    np.testing.assert_array_equal(Z[:, 4], 0)
    Z = Scaler("none").fit_transform(X)
    assert Z.dtype == np.float32
    np.testing.assert_array_equal(Z, X.astype(np.float32))


def test_scaler_transform_dtype_and_out():
    X = sample_features()
    s = Scaler().fit(X)
    Z32 = s.transform(X)
    assert Z32.dtype == np.float32
    Z64 = s.transform(X, dtype=np.float64)
    np.testing.assert_allclose(Z32, Z64, rtol=1e-6, atol=1e-6)
    out = np.empty_like(Z64)
    assert s.transform(X, dtype=np.float64, out=out) is out
    np.testing.assert_array_equal(out, Z64)
    with pytest.raises(InvalidArgumentError, match=r"out must be an ndarray of dtype float32 and shape \(200, 5\), got float64"):
        s.transform(X, out=out)
    with pytest.raises(InvalidArgumentError, match=r"dtype must be a float dtype .*got int32"):
        s.transform(X, dtype=np.int32)
    X_in_place = X.copy()
    s.transform(X_in_place, dtype=np.float64, out=X_in_place)
    np.testing.assert_array_equal(X_in_place, Z64)


@pytest.mark.parametrize("kind", ["standard", "minmax", "none"])
def test_scaler_state_round_trip(kind):
    X = sample_features()
    s = Scaler(kind).fit(X[:150])
    config, arrays = s.state()
    config = json.loads(json.dumps(config))  # JSON-serialisable
    assert config == {"kind": kind, "n_features": 5}
    assert set(arrays) == {"offset", "scale"} and all(a.dtype == np.float64 for a in arrays.values())
    t = Scaler.from_state(config, {k: v.copy() for k, v in arrays.items()})
    np.testing.assert_array_equal(t.transform(X[150:]), s.transform(X[150:]))
    np.testing.assert_array_equal(t.transform(X[150:], np.float64), s.transform(X[150:], np.float64))


def test_scaler_from_state_validation():
    config, arrays = Scaler().fit(sample_features()).state()
    with pytest.raises(DataError, match=r"'scale' must be real numbers of shape \(5,\), got float64 \(4,\)"):
        Scaler.from_state(config, {**arrays, "scale": arrays["scale"][:4]})
    with pytest.raises(DataError, match=r"'offset' holds NaN"):
        Scaler.from_state(config, {**arrays, "offset": np.full(5, np.nan)})
    with pytest.raises(DataError, match=r"'scale' must be positive, got minimum 0\.0"):
        Scaler.from_state(config, {**arrays, "scale": np.zeros(5)})
    with pytest.raises(DataError, match=r"lacks the array 'offset' \(found \['scale'\]\)"):
        Scaler.from_state(config, {"scale": arrays["scale"]})
    with pytest.raises(UnknownNameError, match=r"unknown scaler kind 'robust'"):
        Scaler.from_state({**config, "kind": "robust"}, arrays)
    with pytest.raises(InvalidArgumentError, match=r"n_features must be a positive int, got '5'"):
        Scaler.from_state({**config, "n_features": "5"}, arrays)
    with pytest.raises(DataError, match=r"kind 'none' must have offset 0 and scale 1"):
        Scaler.from_state({**config, "kind": "none"}, arrays)
    with pytest.raises(InvalidArgumentError, match=r"scaler config must be a dict"):
        Scaler.from_state([], arrays)


def test_scaler_errors():
    s = Scaler().fit(np.zeros((3, 4)))
    with pytest.raises(InvalidArgumentError, match=r"X has 3 features, but this Scaler was fitted on 4 features"):
        s.transform(np.zeros((2, 3)))
    with pytest.raises(InvalidArgumentError, match=r"not fitted yet"):
        Scaler().transform(np.zeros((2, 3)))
    with pytest.raises(InvalidArgumentError, match=r"not fitted yet"):
        Scaler().state()
    with pytest.raises(UnknownNameError, match=r"unknown scaler kind 'zscore'; the kinds are 'standard', 'minmax', 'none'"):
        Scaler("zscore")
    X = np.zeros((10, 3))
    X[7, 2] = np.nan
    with pytest.raises(DataError, match=r"X holds 1 NaN or infinite value\(s\); the first is at \(row, column\) \(7, 2\)"):
        Scaler().fit(X)
    with pytest.raises(DataError, match=r"first is at \(row, column\) \(7, 2\)"):
        s.fit(np.zeros((10, 3))).transform(X)
    with pytest.raises(DataError, match=r"X has 0 samples"):
        Scaler().fit(np.zeros((0, 3)))
    assert s.transform(np.zeros((0, 3))).shape == (0, 3)  # an empty batch is fine


def test_scaler_fit_chunked_on_memmap_matches_numpy(tmp_path, monkeypatch):
    rng = np.random.default_rng(42)
    X = rng.standard_normal((5003, 7)) * rng.uniform(0.01, 100, 7) + rng.uniform(-1e3, 1e3, 7)
    np.save(tmp_path / "X.npy", X.astype(np.float32))
    m = load_array(tmp_path / "X.npy")
    X32 = np.asarray(m, dtype=np.float64)
    monkeypatch.setattr(checks, "CHUNK_ELEMENTS", 7 * 64)  # 64 rows per block: 79 blocks
    s = Scaler().fit(m)
    np.testing.assert_allclose(s.offset_, X32.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(s.scale_, X32.std(axis=0), rtol=1e-12)
    for rows in (1, 10, 999):
        t = Scaler().fit(m, chunk_rows=rows)
        np.testing.assert_allclose(t.offset_, X32.mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(t.scale_, X32.std(axis=0), rtol=1e-12)
    mm = Scaler("minmax").fit(m)
    np.testing.assert_array_equal(mm.offset_, X32.min(axis=0))
    np.testing.assert_array_equal(mm.scale_, X32.max(axis=0) - X32.min(axis=0))
    # Chunked transform of the memmap equals the transform of the in-memory copy.
    monkeypatch.setattr(checks, "CHUNK_ELEMENTS", 1 << 20)
    np.testing.assert_array_equal(s.transform(m), s.transform(np.array(m)))


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------


def test_check_array_accepts_and_converts():
    X = np.ones((3, 2), dtype=np.float32)
    assert check_array(X) is X
    assert check_array(X, dtype=np.float32) is X  # no copy
    X64 = check_array(X, dtype=np.float64)
    assert X64.dtype == np.float64 and X64 is not X
    lst = check_array([[1, 2], [3, 4]], dtype=np.float32)
    assert lst.dtype == np.float32
    assert check_array(np.zeros((0, 2)), allow_empty=True).shape == (0, 2)
    assert check_array(np.array([[True, False]])).dtype == bool


@pytest.mark.parametrize(
    "X, error, match",
    [
        (np.array([["a", "b"]]), InvalidTypeError, r"X must hold numbers, got dtype <U1"),
        (np.array([[1, None]], dtype=object), InvalidTypeError, r"got dtype object; if the values are numbers, convert with X\.astype\(float\)"),
        (np.ones((2, 2), dtype=complex), InvalidTypeError, r"complex dtype complex128"),
        (np.ones(5), DataError, r"2-D .*got a 1-D array of shape \(5,\); use X\.reshape\(-1, 1\)"),
        (np.ones((2, 3, 4)), DataError, r"3-D .*X\.reshape\(len\(X\), -1\)"),
        (np.ones((0, 3)), DataError, r"X has 0 samples"),
        (np.ones((3, 0)), DataError, r"X has 0 features"),
        (None, InvalidTypeError, r"got None"),
        ([[1, 2], [3]], DataError, r"ragged"),
    ],
)
def test_check_array_errors(X, error, match):
    with pytest.raises(error, match=match):
        check_array(X)


def test_check_array_nonfinite_counts_and_locates():
    X = np.zeros((6, 4))
    X[2, 3] = np.inf
    X[4, 0] = np.nan
    X[5, 1] = -np.inf
    with pytest.raises(DataError, match=r"features holds 3 NaN or infinite value\(s\); the first is at \(row, column\) \(2, 3\)"):
        check_array(X, name="features")
    assert check_array(np.zeros((2, 2), dtype=np.int64)) is not None  # ints are always finite


def test_check_array_memmap_is_scanned_in_chunks(tmp_path, monkeypatch):
    X = np.zeros((1000, 3), dtype=np.float32)
    X[999, 2] = np.nan
    np.save(tmp_path / "X.npy", X)
    m = load_array(tmp_path / "X.npy")
    monkeypatch.setattr(checks, "CHUNK_ELEMENTS", 30)  # 10 rows per block
    seen = []
    real_isfinite = np.isfinite

    def spy(a, *args, **kwargs):
        seen.append(a.shape[0])
        return real_isfinite(a, *args, **kwargs)

    monkeypatch.setattr(checks.np, "isfinite", spy)
    with pytest.raises(DataError, match=r"1 NaN .*\(999, 2\)"):
        check_array(m)
    monkeypatch.setattr(checks.np, "isfinite", real_isfinite)
    assert max(seen) <= 10
    ok = np.save(tmp_path / "ok.npy", np.ones((50, 3))) or load_array(tmp_path / "ok.npy")
    assert check_array(ok) is ok  # still the memmap


def test_check_targets():
    y = check_targets(np.array(["a", "b"], dtype=object), 2)
    assert y.dtype.kind == "U"
    assert check_targets([0.5, 1.5], 2).dtype == np.float64
    with pytest.raises(DataError, match=r"y has 3 samples but X has 4"):
        check_targets(np.zeros(3), 4)
    with pytest.raises(DataError, match=r"labels holds 1 NaN or infinite value\(s\); the first is at index 1"):
        check_targets([0.0, np.nan], 2, name="labels")
    with pytest.raises(InvalidTypeError, match=r"complex"):
        check_targets(np.ones(2, dtype=complex), 2)
    with pytest.raises(InvalidTypeError, match=r"dtype object"):
        check_targets(np.array([1, None], dtype=object), 2)
    with pytest.raises(InvalidArgumentError, match=r"1-D .* or 2-D .*got shape \(\)"):
        check_targets(np.float64(1.0), 1)
