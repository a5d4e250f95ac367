"""ONNX export of tabular models: raw columns in, what ``TabularModel.predict`` gives out.

1. Every head: softmax with string labels, sigmoid with int and with string
   labels, hinge (labels and scores) with one and with several outputs,
   regression in the target's original units (scale_target standard, minmax,
   none), in float32 and float64. Labels are exactly equal on every row;
   probabilities, scores and values are within the tolerances of
   ``tests/test_export_onnx.py`` (normwise: ``max |o - r| <= tol * max(1, max |r|)``,
   tol 1e-12 for a float64 network, 1e-6 for float32; a float32 network's
   regression values are float64 in original units, with the float32 tolerance).
2. Data contracts with missing numbers (indicator columns), missing
   categories (empty, NA tokens, None), unseen and rare categories ("other"),
   numbers and bools as categories, one-hot blocks and category codes (an
   Embedding first layer), one input per column or one matrix; the feeds are
   built by ``onnx_feeds`` from the very dict or DataFrame given to ``predict``.
3. Opsets 13, 17, 18 and 21 with ``ai.onnx.ml``'s LabelEncoder.
4. The command line: ``deltaprop export`` writes and describes the file, and
   refuses what it must (same path as the model, a bad opset, no model file).
5. (slow) The six real tables of ``benchmarks/tabular_data.py``, trained
   for 3 epochs and exported by the command line.

6. The edges where this suite found bugs, now fixed: DataFrame cells that
   spell a missing token (categories to deltaprop), a None where the empty
   string is a category, ``na_values`` matched as written, and numbers whose
   difference with the offset overflows float64.
"""

import os
from pathlib import Path

import numpy as np
import pytest

import deltaprop as dp
from deltaprop.errors import InvalidArgumentError
from deltaprop.tabular import DataContract, TabularModel, read_table

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pd = pytest.importorskip("pandas")

from deltaprop.export import onnx_feeds, to_onnx  # noqa: E402

from _onnx_util import assert_close, run_onnx  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_blas_thread")  # tests/conftest.py

ROOT = Path(__file__).resolve().parents[1]
DTYPES = ["float64", "float32"]


# ============================================================================ helpers
def fit_model(source, target, loss, dtype, *, hidden=(12,), seed=0, epochs=3, na_values=(), categorical=None,
              embed=False, norm=None, **contract_kw):
    """A TabularModel trained briefly on ``source`` (a dict or DataFrame holding ``target``)."""
    table = read_table(source, na_values=list(na_values), categorical=categorical)
    contract = DataContract.fit(table, target, na_values=na_values, categorical=categorical,
                                categories_as="codes" if embed else "onehot", **contract_kw)
    k = len(contract.target.classes) if contract.target.task == "classification" else 1
    n_out = 1 if loss in ("binary_crossentropy", "hinge") and k == 2 else k
    codes = embed and contract.schema.categorical
    net = dp.Network.from_sizes([contract.n_inputs, *hidden, n_out], loss=loss, dtype=dtype, seed=seed, norm=norm,
                                embed=contract.embedding_columns(3) if codes else None)
    contract.silence_unused(net)
    net.fit(contract.inputs(table, net.dtype), contract.targets(table), epochs=epochs, batch_size=32, verbose=0)
    return TabularModel(net, contract)


def check_model(model, raw, what, inputs=None, opset=None):
    """Export ``model``, feed it ``raw`` through ``onnx_feeds`` and compare with ``model.predict(raw)``.

    Returns the proto and onnxruntime's outputs.
    """
    kwargs = {} if opset is None else {"opset": opset}
    proto = to_onnx(model, inputs=inputs, **kwargs)
    onnx.checker.check_model(proto, full_check=True)
    out = run_onnx(proto, onnx_feeds(model, raw, inputs=inputs))
    compare(model, out, raw, what)
    return proto, out


def compare(model, out, raw, what):
    """onnxruntime's outputs ``out`` against the model's: labels exactly, the rest within the dtype's TOL."""
    dtype = model.network.dtype
    if model.task == "regression":
        assert list(out) == ["prediction"]
        assert_close(out["prediction"], model.predict(raw), what, dtype=dtype)
        return
    labels = model.predict(raw)
    assert out["label"].dtype == labels.dtype, (what, out["label"].dtype, labels.dtype)
    assert out["label"].tolist() == labels.tolist(), f"{what}: labels differ"
    assert [type(v) for v in out["label"].tolist()] == [type(v) for v in labels.tolist()]
    if "probabilities" in out:
        assert list(out) == ["label", "probabilities"]
        assert_close(out["probabilities"], model.predict_proba(raw), what, dtype=dtype)
    else:
        assert list(out) == ["label", "scores"]
        assert_close(out["scores"], model.outputs(raw), what, dtype=dtype)


# ============================================================================ 1. heads
def _features(n, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(0.0, 1.0, (n, 3))
    kind = rng.choice(["p", "q", "r"], n)
    return {"a": X[:, 0], "b": X[:, 1] * 10 + 50, "c": X[:, 2], "kind": kind}, X, kind


def _targets(case, X, kind, rng):
    score = X @ np.array([1.0, -1.0, 0.5]) + (kind == "p")
    if case in ("softmax_strings", "hinge_multiclass"):
        return np.array(["cat", "dog", "emu"])[np.digitize(score, [-0.5, 0.5])]
    if case == "sigmoid_ints":
        return np.where(score > 0, 7, 3)
    if case in ("sigmoid_strings", "hinge_binary"):
        return np.where(score > 0, "yes", "no")
    return 1000.0 + 50.0 * score + rng.normal(0.0, 5.0, len(score))


HEADS = {"softmax_strings": ("categorical_crossentropy", {}), "sigmoid_ints": ("binary_crossentropy", {}),
         "sigmoid_strings": ("binary_crossentropy", {}), "hinge_binary": ("hinge", {}),
         "hinge_multiclass": ("hinge", {}),
         "regression_standard": ("mean_squared_error", {"scale_target": "standard"}),
         "regression_minmax": ("mean_absolute_error", {"scale_target": "minmax"}),
         "regression_none": ("huber", {"scale_target": "none"})}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", list(HEADS))
def test_every_head(case, dtype):
    rng = np.random.default_rng(1)
    train, X, kind = _features(400, 1)
    loss, kw = HEADS[case]
    model = fit_model({**train, "y": _targets(case, X, kind, rng)}, "y", loss, dtype, **kw)
    raw, _, _ = _features(300, 2)
    proto, out = check_model(model, raw, f"{case} {dtype}")
    if model.task == "classification":
        assert len(set(out["label"].tolist())) >= 2  # the labels are not all one class
        width = model.network.n_out if "scores" in out else max(2, model.network.n_out)
        assert out[list(out)[1]].shape == (300, width)
        assert out[list(out)[1]].dtype == np.dtype(dtype)
    else:
        assert out["prediction"].shape == (300,) and out["prediction"].dtype == np.float64
        assert np.ptp(out["prediction"]) > 1.0  # values in the target's units, not the scaled ones
    assert [o.name for o in proto.graph.output] == list(out)


# ============================================================================ 2. data contracts
COLOURS = ["red", "green", "blue", "teal", "plum", "gold"]


def _mixed(n, seed, source, predict=False):
    """Numbers with gaps, categories with gaps, rare ones, numbers and bools as categories; and a label.

    At prediction (``predict``) also unseen categories and more missing-value spellings.
    """
    rng = np.random.default_rng(seed)
    num = rng.normal(10.0, 3.0, n)
    num[rng.random(n) < 0.15] = np.nan
    colours = COLOURS + (["violet", "indigo"] if predict else [])
    # a dict's text reads like CSV cells (empty, NA... are missing); a DataFrame's strings are categories as
    # they are, and only None or NaN is missing (the DataFrame's empty strings: the edge tests below)
    gaps = (["", "NA", None] + (["n/a", "NULL", "nan"] if predict else [])) if source == "dict" else [None]
    p_gap = 0.05
    p = np.array([0.3, 0.25, 0.2, 0.1, 0.01, 0.01] + ([0.02, 0.02] if predict else []))
    p = np.concatenate([p / p.sum() * (1 - p_gap * len(gaps)), [p_gap] * len(gaps)])
    colour = [None if v is None else str(v) for v in rng.choice(np.array(colours + gaps, dtype=object), n, p=p)]
    if not predict:  # exactly 3 and 4 rows of two rare colours, pooled as "other" by min_frequency=10
        colour = [c if c not in ("plum", "gold") else "red" for c in colour]
        colour[:7] = ["plum"] * 3 + ["gold"] * 4
    size = rng.choice(["s", "m", "l"] + (["xl", None] if predict else []), n)
    grade = rng.integers(1, 5 + predict, n)  # numbers read as categories (5 unseen)
    flag = rng.random(n) < 0.4
    data = {"num": num, "plain": rng.normal(0.0, 1.0, n), "colour": colour, "size": size, "grade": grade,
            "flag": flag}
    data["y"] = np.where((np.nan_to_num(num, nan=10.0) > 10) ^ (np.array(colour, dtype=object) == "red") ^ flag,
                         "yes", "no")
    if predict:
        del data["y"]
        data["num"] = [None if np.isnan(v) else v for v in num] if source == "dict" else num
    return pd.DataFrame(data) if source == "dataframe" else data


@pytest.mark.parametrize("source", ["dict", "dataframe"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("categories_as", ["onehot", "codes"])
def test_missing_unseen_and_rare_categories(categories_as, dtype, source):
    model = fit_model(_mixed(500, 3, source), "y", "binary_crossentropy", dtype, categorical=["grade"],
                      embed=categories_as == "codes", min_frequency=10, hidden=(16,))
    schema = model.contract.schema
    colour = next(c for c in schema.categorical if c.name == "colour")
    assert colour.n_rare == 2 and {"plum", "gold"}.isdisjoint(colour.categories)  # pooled as "other"
    assert colour.missing and "" not in colour.categories and "NA" not in colour.categories
    assert [c.name for c in schema.numeric if c.indicator] == ["num"]
    assert {c.name for c in schema.categorical} == {"colour", "size", "grade", "flag"}
    assert (type(model.network.layers[0]).__name__ == "Embedding") == (categories_as == "codes")
    raw = _mixed(400, 4, source, predict=True)
    proto, _ = check_model(model, raw, f"{categories_as} {dtype} {source}")
    report = model.last_report  # what this predict met: the paths the file had to take
    assert report.unseen["colour"] > 0 and report.unseen["grade"] > 0 and report.unseen["size"] > 0
    assert "size" in report.missing  # missing where training had none: "other"
    kinds = {i.name: i.type.tensor_type.elem_type for i in proto.graph.input}
    assert kinds == {"num": onnx.TensorProto.DOUBLE, "plain": onnx.TensorProto.DOUBLE,
                     "colour": onnx.TensorProto.STRING, "size": onnx.TensorProto.STRING,
                     "grade": onnx.TensorProto.STRING, "flag": onnx.TensorProto.STRING}
    with pytest.raises(InvalidArgumentError, match=r"inputs='matrix' needs numeric columns only.*use "
                                                   r"inputs='columns'"):
        to_onnx(model, inputs="matrix")


def test_unseen_and_rare_categories_share_other_and_every_missing_spelling_the_missing_slot():
    model = fit_model(_mixed(500, 3, "dict"), "y", "binary_crossentropy", "float64", categorical=["grade"],
                      min_frequency=10, hidden=(16,))
    colours = ["plum", "gold", "violet", "", "NA", "n/a", "NULL", "nan", None, "red"]
    k = len(colours)
    raw = {"num": [9.0] * k, "plain": [0.5] * k, "colour": colours, "size": ["m"] * k, "grade": [2] * k,
           "flag": [True] * k}
    proto, out = check_model(model, raw, "slots")
    p = out["probabilities"]
    assert np.array_equal(p[:3], np.repeat(p[:1], 3, axis=0))    # rare and unseen: the one "other" slot
    assert np.array_equal(p[3:9], np.repeat(p[3:4], 6, axis=0))  # every spelling of missing: the missing slot
    assert not np.array_equal(p[0], p[3]) and not np.array_equal(p[3], p[9]) and not np.array_equal(p[0], p[9])


def _numeric(n, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(0.0, 1.0, (n, 4)) * [1.0, 100.0, 0.01, 5.0] + [0.0, 1e4, 0.0, -3.0]
    X[rng.random((n, 4)) < 0.1 * np.array([1, 0, 1, 0])] = np.nan
    return pd.DataFrame(X, columns=["w", "x", "y", "z"])


@pytest.mark.parametrize("dtype", DTYPES)
def test_all_numeric_columns_as_a_matrix_or_one_input_each(dtype):
    train = _numeric(400, 5)
    target = np.nan_to_num(train["w"].to_numpy()) * 2.0 + train["x"].to_numpy() / 100.0
    model = fit_model(train.assign(t=target), "t", "mean_squared_error", dtype, norm="layer", hidden=(8, 8))
    raw = _numeric(300, 6)
    proto, matrix = check_model(model, raw, f"matrix {dtype}")  # the default for numbers alone
    (x,) = proto.graph.input
    assert (x.name, [d.dim_param or d.dim_value for d in x.type.tensor_type.shape.dim]) == ("X", ["N", 4])
    assert onnx_feeds(model, raw)["X"].shape == (300, 4)
    proto, columns = check_model(model, raw, f"columns {dtype}", inputs="columns")
    assert [i.name for i in proto.graph.input] == ["w", "x", "y", "z"]
    np.testing.assert_array_equal(matrix["prediction"], columns["prediction"])


@pytest.mark.parametrize("opset", [13, 17, 18, 21])
def test_opsets_with_label_encoders(opset):
    model = fit_model(_mixed(300, 7, "dict"), "y", "categorical_crossentropy", "float64", categorical=["grade"],
                      embed=True, norm="layer", hidden=(8,), epochs=1)
    proto, _ = check_model(model, _mixed(200, 8, "dict", predict=True), f"opset {opset}", opset=opset)
    assert sorted((o.domain, o.version) for o in proto.opset_import) == [("", opset), ("ai.onnx.ml", 3)]
    assert "LabelEncoder" in {n.op_type for n in proto.graph.node}


# ============================================================================ edges: tokens, overflow
def _colour_model(source, **kw):
    rng = np.random.default_rng(9)
    n = 400
    colour = rng.choice(np.array(["red", "green", "blue", None], dtype=object), n, p=[0.4, 0.3, 0.2, 0.1])
    data = {"a": rng.normal(0.0, 1.0, n), "colour": list(colour),
            "y": np.where(rng.random(n) < 0.5, "yes", "no")}
    return fit_model(pd.DataFrame(data) if source == "dataframe" else data, "y", "binary_crossentropy", "float64",
                     min_frequency=1, **kw)


def test_dataframe_cells_that_spell_missing_tokens_are_categories():
    model = _colour_model("dataframe")
    raw = pd.DataFrame({"a": [0.5, 0.5, 0.5, 0.5], "colour": ["null", "?", "None", "NA"]})
    check_model(model, raw, "tokens in a DataFrame")


def test_a_missing_cell_where_the_empty_string_is_a_category():
    rng = np.random.default_rng(11)
    colour = rng.choice(np.array(["red", "green", "", None], dtype=object), 400, p=[0.4, 0.3, 0.2, 0.1])
    train = pd.DataFrame({"a": rng.normal(0.0, 1.0, 400), "colour": list(colour),
                          "y": np.where(rng.random(400) < 0.5, "yes", "no")})
    model = fit_model(train, "y", "binary_crossentropy", "float64", min_frequency=1)
    spec = model.contract.schema.categorical[0]
    assert "" in spec.categories and spec.missing  # the empty string is a category, None the missing slot
    check_model(model, pd.DataFrame({"a": [0.5, 0.5, 0.5], "colour": [None, "", "red"]}), "'' and None")


def test_na_values_match_as_written():
    model = _colour_model("dict", na_values=["unknown"])
    raw = {"a": [0.5, 0.5, 0.5], "colour": ["UNKNOWN", "Unknown", "unknown"]}
    check_model(model, raw, "na_values")


def test_numbers_whose_difference_with_the_offset_overflows():
    rng = np.random.default_rng(10)
    data = {"a": rng.uniform(-0.5, 1.0, 200) * 1e308, "b": rng.normal(0.0, 1.0, 200), "y": rng.normal(0, 1, 200)}
    model = fit_model(data, "y", "mean_squared_error", "float64", epochs=1)
    raw = {"a": np.array([-1.79e308, 1.0, 1.7e308]), "b": np.array([0.0, 1.0, 2.0])}
    with np.errstate(over="ignore"):
        assert np.isinf(raw["a"][0] - model.contract.schema.numeric[0].offset)  # the overflow the test is about
    assert np.isfinite(model.predict(raw)).all()
    check_model(model, raw, "huge numbers")


# ============================================================================ 4. the command line
def cli(capsys, *argv):
    """``deltaprop ARGV`` in this process: (exit status, stdout, stderr)."""
    from deltaprop.cli import main

    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def load_checked(path):
    """The ONNX file at ``path``, after ``onnx.checker.check_model(full_check=True)``."""
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    return proto


def one_error_line(err, *fragments):
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("deltaprop: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture(scope="module")
def penguins_like(tmp_path_factory):
    """A folder with penguins.csv (text, numbers, gaps; three species) and m.safetensors trained on it."""
    from deltaprop.cli import main

    folder = tmp_path_factory.mktemp("export_cli")
    rng = np.random.default_rng(12)
    n = 240
    species = rng.choice(["Adelie", "Chinstrap", "Gentoo"], n)
    bill = rng.normal(39.0, 2.5, n) + 9.0 * (species != "Adelie")
    bill[rng.random(n) < 0.05] = np.nan
    pd.DataFrame({"island": np.where(species == "Gentoo", "Biscoe", rng.choice(["Biscoe", "Dream", "Torgersen"], n)),
                  "bill_length_mm": bill, "body_mass_g": rng.normal(4200.0, 500.0, n) + 900.0 * (species == "Gentoo"),
                  "sex": rng.choice(["male", "female", ""], n, p=[0.48, 0.48, 0.04]), "species": species}
                 ).to_csv(folder / "penguins.csv", index=False)
    argv = ["train", "--data", folder / "penguins.csv", "--target", "species", "--hidden", "8", "--epochs", "2",
            "--quiet", "--plot", "none", "--out", folder / "m.safetensors"]
    assert main([str(a) for a in argv]) == 0
    return folder


def test_cli_export_writes_the_file_and_describes_it(penguins_like, capsys):
    folder = penguins_like
    status, out, err = cli(capsys, "export", folder / "m.safetensors", "--onnx", folder / "p.onnx")
    assert status == 0 and not err
    lines = out.splitlines()
    size = os.path.getsize(folder / "p.onnx") / 1024
    assert lines == [f"wrote {folder / 'p.onnx'} ({size:.1f} KiB, ONNX opset 17, IR version 8)",
                     "inputs: island tensor(string) ['N', 1], bill_length_mm tensor(double) ['N', 1], "
                     "body_mass_g tensor(double) ['N', 1], sex tensor(string) ['N', 1]",
                     "outputs: label tensor(string) ['N'], probabilities tensor(float) ['N', 3]"]
    model, csv = dp.load(folder / "m.safetensors"), str(folder / "penguins.csv")
    compare(model, run_onnx(load_checked(folder / "p.onnx"), onnx_feeds(model, csv)), csv, "cli file")
    status, out, _ = cli(capsys, "export", folder / "m.safetensors", "--onnx", folder / "p21.onnx", "--opset", "21",
                         "--inputs", "columns")
    assert status == 0 and "ONNX opset 21, IR version 10" in out
    assert ("", 21) in [(o.domain, o.version) for o in load_checked(folder / "p21.onnx").opset_import]


@pytest.mark.parametrize("spelling", ["m.safetensors", "./m.safetensors", "link.safetensors"])
def test_cli_export_never_overwrites_the_model(penguins_like, capsys, monkeypatch, spelling):
    monkeypatch.chdir(penguins_like)
    if spelling.startswith("link") and not os.path.exists(spelling):
        os.link("m.safetensors", spelling)  # another name of the same file
    before = Path("m.safetensors").read_bytes()
    status, out, err = cli(capsys, "export", "m.safetensors", "--onnx", spelling)
    assert status == 2 and not out
    one_error_line(err, "--onnx", "MODEL")
    assert Path("m.safetensors").read_bytes() == before


@pytest.mark.parametrize("opset", ["12", "22", "x"])
def test_cli_export_refuses_a_bad_opset(penguins_like, capsys, opset):
    status, out, err = cli(capsys, "export", penguins_like / "m.safetensors", "--onnx", penguins_like / "bad.onnx",
                           "--opset", opset)
    assert status == 2 and not out
    one_error_line(err, "--opset")
    assert not (penguins_like / "bad.onnx").exists()


def test_cli_export_errors_in_the_model(penguins_like, capsys):
    status, _, err = cli(capsys, "export", penguins_like / "none.safetensors", "--onnx", penguins_like / "n.onnx")
    assert status == 1
    one_error_line(err, "none.safetensors: no such model file")
    status, _, err = cli(capsys, "export", penguins_like / "m.safetensors", "--onnx", penguins_like / "n.onnx",
                         "--inputs", "matrix")
    assert status == 1
    one_error_line(err, "categorical", "columns")
    assert not (penguins_like / "n.onnx").exists()


def test_cli_exports_a_network_saved_alone(tmp_path, capsys):
    net = dp.Network([dp.Dense(3, 4, activation="tanh"), dp.Dense(4, 2, activation="softmax")],
                     loss="categorical_crossentropy", dtype="float64", seed=0)
    dp.save(net, tmp_path / "net.safetensors")
    status, out, _ = cli(capsys, "export", tmp_path / "net.safetensors", "--onnx", tmp_path / "net.onnx")
    assert status == 0
    assert out.splitlines()[1:] == ["inputs: X tensor(double) ['N', 3]", "outputs: output tensor(double) ['N', 2]"]
    X = np.random.default_rng(0).normal(size=(100, 3))
    assert_close(run_onnx(load_checked(tmp_path / "net.onnx"), {"X": X})["output"], net.predict(X), "net file")


# ============================================================================ 5. real tables (slow)
#: data set -> (the package that ships it, extra training flags: every layer kind and both dtypes among them)
TABLES = {"penguins": ("palmerpenguins", []),
          "seattle-weather": ("vega_datasets", ["--dtype", "float64", "--norm", "batch"]),
          "anes96": ("statsmodels", ["--residual", "--norm", "layer", "--dropout", "0.1"]),
          "cars": ("vega_datasets", ["--embed-categories", "3", "--dtype", "float64"]),
          "grunfeld": ("statsmodels", ["--residual", "--norm", "batch", "--embed-categories", "2"]),
          "randhie": ("statsmodels", [])}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(TABLES))
def test_real_tables_trained_and_exported_by_the_command_line(name, tmp_path, capsys, monkeypatch):
    package, flags = TABLES[name]
    pytest.importorskip(package)
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import tabular_data

    loader, target, _, drop, cli_args, _ = tabular_data.SPECS[name]
    csv = tmp_path / f"{name}.csv"
    loader().to_csv(csv, index=False)  # as benchmarks/tabular_data.py writes it, here in a temporary folder
    model_path, onnx_path = tmp_path / "m.safetensors", tmp_path / "m.onnx"
    status, _, err = cli(capsys, "train", "--data", csv, "--target", target, *(["--drop", ",".join(drop)] if drop
                                                                               else []),
                         *cli_args, "--hidden", "16", "--epochs", "3", *flags, "--quiet", "--plot", "none",
                         "--out", model_path)
    assert status == 0, err
    status, out, err = cli(capsys, "export", model_path, "--onnx", onnx_path)
    assert status == 0, err
    model = dp.load(model_path)
    compare(model, run_onnx(load_checked(onnx_path), onnx_feeds(model, str(csv))), str(csv), name)
