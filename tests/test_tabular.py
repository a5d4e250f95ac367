"""Raw tables (read_table) and the feature/target schema (Schema, Target): formats, names, gaps, states, messages."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deltaprop.errors import DataError, InvalidArgumentError, InvalidTypeError
from deltaprop.tabular.schema import Schema, TransformReport
from deltaprop.tabular.table import Table, category_str, read_table
from deltaprop.tabular.target import Target

# One small data set in every form: a numeric column with a gap, an integer column with a gap,
# a string column with a gap, a boolean column, a category column.
ROWS = {
    "bill": [39.1, None, 40.3, 36.7, 39.3, 38.9, 39.2, 34.1],
    "count": [1, 2, None, 4, 5, 6, 7, 8],
    "island": ["Biscoe", "Dream", None, "Biscoe", "Torgersen", "Biscoe", "Dream", "Biscoe"],
    "flag": [True, False, True, True, False, True, True, False],
    "colour": ["red", "blue", "red", None, "red", "blue", "red", "red"],
}


def _pandas():
    return pd.DataFrame({
        "bill": pd.array(ROWS["bill"], dtype="Float64"),
        "count": pd.array(ROWS["count"], dtype="Int64"),
        "island": pd.Series(ROWS["island"], dtype="string"),
        "flag": pd.Series(ROWS["flag"], dtype=bool),
        "colour": pd.Series(ROWS["colour"], dtype="category"),
    })


def _csv(tmp_path):
    path = tmp_path / "rows.csv"
    tokens = ["", "NA", "?"]
    lines = ["bill,count,island,flag,colour"]
    for i in range(8):
        cells = [ROWS[k][i] for k in ROWS]
        gap = tokens[i % 3]
        lines.append(",".join(gap if v is None else ("true" if v is True else "FALSE" if v is False else str(v))
                              for v in cells))
    path.write_text("\n".join(lines) + "\n")
    return path


def _all_sources(tmp_path):
    import polars as pl
    import pyarrow as pa
    import pyarrow.feather as feather
    import pyarrow.parquet as pq

    df = _pandas()
    arrow = pa.Table.from_pandas(df, preserve_index=False)
    pq.write_table(arrow, tmp_path / "rows.parquet")
    feather.write_feather(arrow, tmp_path / "rows.feather")
    obj = np.empty((8, 5), dtype=object)
    for j, k in enumerate(ROWS):
        obj[:, j] = ROWS[k]
    return {
        "csv": read_table(_csv(tmp_path)),
        "pandas": read_table(df),
        "polars": read_table(pl.from_pandas(df)),
        "dict": read_table(dict(ROWS)),
        "parquet": read_table(str(tmp_path / "rows.parquet")),
        "feather": read_table(tmp_path / "rows.feather"),
        "array": read_table(obj, names=list(ROWS)),
        "arrow": read_table(arrow),
    }


# ------------------------------------------------------------------ read_table
def test_csv_reads_strings_gaps_tokens_and_booleans(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("x,s,b,m\n1, a ,TRUE,NA\n n/a ,b,false,null\nNaN,?,True,None\n-,c,,\n")
    t = read_table(path, na_values=["-"])
    assert t.kinds == {"x": "numeric", "s": "categorical", "b": "categorical", "m": "numeric"}
    np.testing.assert_array_equal(t.columns["x"], [1.0, np.nan, np.nan, np.nan])
    assert t.columns["s"].tolist() == ["a", "b", None, "c"]
    assert t.columns["b"].tolist() == ["True", "False", "True", None]
    assert np.isnan(t.columns["m"]).all()  # all missing: numeric, refused at fit time
    assert t.lines.tolist() == [2, 3, 4, 5] and t.named and t.n_rows == 4
    assert not any(t.declared.values())


def test_every_source_gives_the_same_table_and_transform(tmp_path):
    tables = _all_sources(tmp_path)
    ref = tables["csv"]
    schema = Schema.fit(ref, min_frequency=1)
    dense, codes, sizes = schema.transform(ref)
    for name, t in tables.items():
        assert t.names == ref.names and t.kinds == ref.kinds, name
        d, c, s = schema.transform(t)
        assert d.tobytes() == dense.tobytes() and np.array_equal(c, codes) and s == sizes, name
        assert Schema.fit(t, min_frequency=1).state() == schema.state(), name
    assert tables["pandas"].declared == {"bill": False, "count": False, "island": True, "flag": True,
                                         "colour": True}


def test_pandas_nullable_and_object_columns():
    df = pd.DataFrame({"i": pd.array([1, None, 3], dtype="Int64"), "o": np.array(["x", np.nan, None], object),
                       "b": pd.array([True, None, False], dtype="boolean"), "n": np.array([1, None, 2.5], object)})
    t = read_table(df)
    np.testing.assert_array_equal(t.columns["i"], [1.0, np.nan, 3.0])
    assert t.columns["o"].tolist() == ["x", None, None]
    assert t.columns["b"].tolist() == ["True", None, "False"]
    assert t.kinds["n"] == "numeric"


def test_unnamed_index_column_is_dropped_with_a_note(tmp_path):
    df = pd.DataFrame({"a": [3.0, 1.0, 2.0], "label": ["x", "y", "x"]})
    df.to_csv(tmp_path / "i.csv")  # pandas writes the index as an unnamed first column
    t = read_table(tmp_path / "i.csv")
    assert t.names == ["a", "label"]
    assert t.notes == ["dropped the unnamed first column: it holds the row numbers 0..2 (a saved index), "
                       "not a feature"]
    back = pd.read_csv(tmp_path / "i.csv")  # the column is now "Unnamed: 0"
    assert read_table(back).names == ["a", "label"]
    shuffled = df.iloc[[2, 0, 1]]
    shuffled.to_csv(tmp_path / "s.csv")
    t = read_table(tmp_path / "s.csv")
    assert t.names == ["a", "label"] and "like the index of a filtered or shuffled DataFrame" in t.notes[0]


def test_unnamed_first_column_that_is_not_an_index_is_kept_and_said(tmp_path):
    (tmp_path / "u.csv").write_text(",a\n5,1\n5,2\n")
    t = read_table(tmp_path / "u.csv")
    assert t.names == ["column_0", "a"]
    assert len(t.notes) == 1 and "'column_0'" in t.notes[0] and "--drop column_0" in t.notes[0]


def test_array_names_and_position():
    t = read_table(np.arange(6.0).reshape(3, 2))
    assert t.names == ["x0", "x1"] and not t.named
    assert read_table(np.arange(6.0).reshape(3, 2), names=["a", "b"]).named
    b = read_table(np.array([[True], [False]]))
    assert b.kinds == {"x0": "categorical"} and b.columns["x0"].tolist() == ["True", "False"]


def test_select_take_without():
    t = read_table({"a": [1, 2, 3], "b": ["x", "y", "z"], "c": [0.5, 0.25, 0.0]})
    assert t.select(features=["c", "a"]).names == ["c", "a"]
    assert t.select(drop="b").names == ["a", "c"]
    assert t.select(features=["a", "b"], drop=["b"]).names == ["a"]
    assert t.without("a").names == ["b", "c"]
    assert t.take(np.array([2, 0])).columns["b"].tolist() == ["z", "x"]
    with pytest.raises(DataError, match=r"no columns named 'q', 'r' \(given in drop\); the columns are 'a', 'b', 'c'"):
        t.select(drop=["q", "r"])
    many = read_table({f"c{i}": [1.0] for i in range(25)})
    with pytest.raises(DataError, match=r"'c19' \.\.\. and 5 more"):
        many.column_or_error("nope")


@pytest.mark.parametrize("source, message", [
    (np.zeros(3), r"got shape \(3,\): for one feature use X.reshape\(-1, 1\)"),
    (np.zeros((2, 2, 2)), r"shape \(2, 2, 2\): flatten each sample"),
    ({"a": [1, 2], "b": [1]}, r"dict: the columns differ in length: \{'a': 2, 'b': 1\}"),
    ({"a": [1.0, float("inf")]}, r"dict, row 1, column 'a': inf is not a finite number"),
    (pd.DataFrame({"d": pd.to_datetime(["2020-01-01"])}), r"column 'd': cannot use values of type datetime64"),
    (pd.DataFrame([[1, 2]], columns=["a", "a"]), r"duplicate column name 'a' \(columns 0 and 1\)"),
    (pd.DataFrame({"a": []}), r"DataFrame: the table has no rows"),
])
def test_read_errors_name_the_problem(source, message):
    with pytest.raises(DataError, match=message):
        read_table(source)


def test_read_errors_in_files(tmp_path):
    (tmp_path / "inf.csv").write_text("a,b\n1,x\n1e999,y\n")
    with pytest.raises(DataError, match=r"inf.csv, line 3, column 'a': '1e999' is not a finite number"):
        read_table(tmp_path / "inf.csv")
    (tmp_path / "empty.csv").write_text("a,b\n")
    with pytest.raises(DataError, match="no data rows"):
        read_table(tmp_path / "empty.csv")
    with pytest.raises(InvalidTypeError, match=r"cannot read a table from a list; expected a path"):
        read_table([[1, 2]])


def test_parquet_without_pyarrow_says_how_to_install(tmp_path, monkeypatch):
    import builtins

    (tmp_path / "x.parquet").write_bytes(b"PAR1" + b"\0" * 20)
    real = builtins.__import__

    def no_pyarrow(name, *args, **kwargs):
        if name.startswith("pyarrow"):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    with pytest.raises(DataError, match=r"reading Parquet needs pyarrow: pip install 'deltaprop\[parquet\]'"):
        read_table(tmp_path / "x.parquet")


def test_category_str_agrees_across_sources():
    assert [category_str(v) for v in (3, 3.0, -0.0, 2.5, 1e20, float("nan"))] == ["3", "3", "0", "2.5", "1e+20", None]


# ------------------------------------------------------------------ the schema
def _penguinish():
    return read_table({
        "island": ["Biscoe"] * 6 + ["Dream"] * 5 + ["Torgersen"] * 2 + [None],
        "mass": [3750.0, 3800, None, 3250, 3450, 3650, 3625, 4675, 3475, 4250, 3300, 3700, 3200, 3800],
        "len": [39.1, 39.5, 40.3, 36.7, 39.3, 38.9, 39.2, 34.1, 42.0, 37.8, 37.8, 41.1, 38.6, 34.6],
    })


def test_layout_input_names_and_unused_inputs():
    t = _penguinish()
    s = Schema.fit(t, min_frequency=3)
    island = s.categorical[0]
    assert island.categories == ["Biscoe", "Dream"] and island.missing and island.n_rare == 1
    assert s.input_names() == ["mass", "mass (missing)", "len", "island=Biscoe", "island=Dream",
                               "island (missing)", "island (other)"]
    assert s.n_dense == 3 and s.sizes == [4] and s.n_inputs == 7
    assert s.unused_inputs().tolist() == []  # Torgersen was pooled into 'other'
    s1 = Schema.fit(t, min_frequency=1)
    assert s1.categorical[0].categories == ["Biscoe", "Dream", "Torgersen"]
    assert s1.unused_inputs().tolist() == [3 + 4]  # 'other' never active
    assert Schema.fit(t, min_frequency=1, max_categories=1).categorical[0].categories == ["Biscoe"]
    assert Schema.fit(t, min_frequency=0.3).categorical[0].categories == ["Biscoe", "Dream"]  # 0.3 * 14 = 4.2
    dense, codes, sizes = s.transform(t)
    assert codes[:, 0].tolist() == [0] * 6 + [1] * 5 + [3, 3, 2]
    mass = np.array(t.columns["mass"])
    fill = float(np.median(mass[~np.isnan(mass)]))
    filled = np.where(np.isnan(mass), fill, mass)
    expected = ((filled - filled.mean()) / filled.std()).astype(np.float32)
    assert dense.dtype == np.float32 and dense.flags.c_contiguous
    np.testing.assert_array_equal(dense[:, 0], expected)
    np.testing.assert_array_equal(dense[:, 1], np.isnan(mass))
    assert abs(float(np.mean(dense[:, 2]))) < 1e-6 and abs(float(np.std(dense[:, 2].astype(np.float64))) - 1) < 1e-6


def test_forced_categorical_numbers_match_text():
    t = read_table({"n": [3, 2.5, 3, None], "s": ["a", "b", "a", "a"]})
    s = Schema.fit(t, categorical=["n"], min_frequency=1)
    assert s.categorical[0].categories == ["3", "2.5"] and s.categorical[0].missing
    as_text = read_table({"n": ["3", "2.5", "7", "3.0"], "s": ["a", "a", "a", "a"]})
    _, codes, _ = s.transform(as_text)
    assert codes[:, 0].tolist() == [0, 1, 3, 0]


def test_unseen_categories_and_missing_cells_at_transform():
    s = Schema.fit(read_table({"x": [1.0, 2.0, 3.0], "c": ["a", "b", "a"]}), min_frequency=1)
    report = TransformReport()
    new = read_table({"c": ["zz", None, "a", "yy", "zz", "ww", "vv"], "x": [None, 2.0, 1.0, 1, 1, 1, 1],
                      "extra": [0] * 7})
    dense, codes, _ = s.transform(new, report=report)
    assert codes[:, 0].tolist() == [2, 2, 0, 2, 2, 2, 2]
    assert dense[0, 0] == np.float32((2.0 - 2.0) / np.std([1.0, 2.0, 3.0]))  # the median fill
    assert report.extra == ["extra"] and report.unseen == {"c": 5} and report.missing == {"c": 1, "x": 1}
    assert report.unseen_examples == {"c": ["vv", "ww", "yy"]}
    assert report.messages() == [
        "ignored 1 column the model does not use: 'extra'",
        "5 rows of 'c' held a category never seen in training (e.g. 'vv', 'ww', 'yy'); treated as none of "
        "the trained categories",
        "1 missing value in 'x', which had none in training, filled in with the training median 2",
        "1 missing value in 'c', which had none in training, treated as none of the trained categories",
    ]


@st.composite
def _tables(draw):
    n = draw(st.integers(1, 12))
    k = draw(st.integers(1, 5))
    columns = {}
    for j in range(k):
        if draw(st.booleans()):
            values = draw(st.lists(st.one_of(st.none(), st.floats(-1e6, 1e6)), min_size=n, max_size=n))
            if all(v is None for v in values):
                values[0] = 1.5
        else:
            values = draw(st.lists(st.one_of(st.none(), st.sampled_from(["a", "b", "c", "d"])), min_size=n,
                                   max_size=n))
            if all(v is None for v in values):
                values[-1] = "b"
        columns[f"col{j}"] = values
    order = draw(st.permutations(list(columns)))
    return columns, order


@settings(max_examples=60, deadline=None)
@given(_tables(), st.sampled_from(["standard", "minmax", "none"]), st.integers(1, 3))
def test_any_column_order_and_state_round_trip_give_identical_transforms(data, scale, min_frequency):
    columns, order = data
    table = read_table(columns)
    schema = Schema.fit(table, scale=scale, min_frequency=min_frequency)
    dense, codes, sizes = schema.transform(table, dtype=np.float64)
    permuted = read_table({name: columns[name] for name in order})
    d, c, s = schema.transform(permuted, dtype=np.float64)
    assert d.tobytes() == dense.tobytes() and np.array_equal(c, codes) and s == sizes
    again = Schema.from_state(json.loads(json.dumps(schema.state(), allow_nan=False)))
    d, c, s = again.transform(permuted, dtype=np.float64)
    assert d.tobytes() == dense.tobytes() and np.array_equal(c, codes) and s == sizes
    assert again.state() == schema.state() and again.input_names() == schema.input_names()
    assert np.isfinite(dense).all() and ((0 <= codes) & (codes < np.array(sizes, dtype=np.intp))).all()


def test_bare_array_is_matched_by_position():
    s = Schema.fit(read_table({"a": [1.0, 2.0], "b": [3.0, 5.0]}))
    dense, _, _ = s.transform(read_table(np.array([[1.0, 3.0], [2.0, 5.0]])))
    np.testing.assert_array_equal(dense, [[-1, -1], [1, 1]])
    with pytest.raises(DataError, match=r"array: 3 columns, but the model was trained on 2 features \('a', 'b'\)"):
        s.transform(read_table(np.zeros((2, 3))))


def test_huge_values_give_finite_statistics():
    t = read_table({"big": [1e200, -1e200, 3e200, 2e200], "top": [1.7e308, 1.6e308, -1.7e308, 1.0]})
    for scale in ("standard", "minmax"):
        if scale == "minmax":
            with pytest.raises(DataError, match=r"the values of 'top' span .* more than a float64 can hold"):
                Schema.fit(t, scale=scale)
            t = t.select(features=["big"])
        s = Schema.fit(t, scale=scale)
        for c in s.numeric:
            assert all(math.isfinite(v) for v in (c.fill, c.offset, c.scale)) and c.scale > 0
        dense, _, _ = s.transform(t, dtype=np.float64)
        assert np.isfinite(dense).all()
    c = Schema.fit(read_table({"big": [1e200, -1e200, 3e200, 2e200]})).numeric[0]
    assert c.offset == pytest.approx(1.25e200, rel=1e-15) and c.scale == pytest.approx(np.std([1, -1, 3, 2]) * 1e200,
                                                                                        rel=1e-15)
    s = Schema.fit(read_table({"big": [1e200, 2e200]}), scale="none")
    with pytest.raises(DataError, match=r"row 1, column 'big': the value 2e\+200 becomes 2e\+200 after scaling, "
                                        r"too large for float32"):
        s.transform(read_table({"big": [1.0, 2e200]}))


def test_transform_errors_name_the_columns():
    s = Schema.fit(read_table({"a": [1.0, 2.0], "b": [3.0, 4.0], "c": ["x", "y"]}))
    with pytest.raises(DataError, match=r"dict: missing 2 columns the model needs: 'a', 'c'$"):
        s.transform(read_table({"b": [1.0]}))
    with pytest.raises(DataError, match=r"missing 1 column the model needs: 'a'; the table has the right number "
                                        r"of columns \(3\) but other names \('A'\)"):
        s.transform(read_table({"A": [1.0], "b": [1.0], "c": ["x"]}))
    with pytest.raises(DataError, match=r"dict, row 0, column 'a': 'oops' is not a number, but the column was "
                                        r"numeric in training"):
        s.transform(read_table({"a": ["oops", "nope"], "b": [1.0, 2.0], "c": ["x", "x"]}))
    with pytest.raises(DataError, match=r"dict, row 1, column 'a': 'oops' is not a number, while 1 other value"):
        read_table({"a": ["1.5", "oops"], "b": [1.0, 2.0], "c": ["x", "x"]})  # a typo, or a missing-value token
    ok, _, _ = s.transform(read_table({"a": ["1.5", None], "b": [1.0, 2.0], "c": ["x", "x"]}))
    assert ok[0, 0] == 0.0


def test_fit_errors_name_the_columns(tmp_path):
    (tmp_path / "gap.csv").write_text("a,empty\n1,\n2,NA\n")
    with pytest.raises(DataError, match=r"gap.csv: column 'empty' has no value in the training rows \(all 2 rows "
                                        r"missing\); drop it"):
        Schema.fit(read_table(tmp_path / "gap.csv"))
    with pytest.raises(DataError, match=r"no column named 'zz' \(given in features\)"):
        Schema.fit(read_table({"a": [1.0]}), categorical=["zz"])
    with pytest.raises(InvalidArgumentError, match=r"min_frequency must be a count .* got 0"):
        Schema.fit(read_table({"a": [1.0]}), min_frequency=0)


def _state():
    return Schema.fit(_penguinish(), min_frequency=3).state()


@pytest.mark.parametrize("corrupt, field", [
    (lambda s: s["columns"][1].__setitem__("scale", -1.0), r"schema.columns\[1\].scale must be a finite positive"),
    (lambda s: s["columns"][1].__setitem__("fill", float("nan")), r"schema.columns\[1\].fill must be a finite"),
    (lambda s: s["columns"][1].__setitem__("indicator", 1), r"schema.columns\[1\].indicator must be true or false"),
    (lambda s: s["columns"][0].__setitem__("kind", "ordinal"), r"schema.columns\[0\].kind must be one of"),
    (lambda s: s["columns"][1].pop("offset"), r"schema.columns\[1\] lacks the field 'offset'"),
    (lambda s: s["columns"][0].__setitem__("name", 3), r"schema.columns\[0\].name must be a str, got 3"),
    (lambda s: s["columns"][1].__setitem__("name", "island"), r"schema.columns must be columns of distinct names"),
    (lambda s: s["columns"][0].__setitem__("categories", ["a", "a"]), r"categories must be a list of distinct str"),
    (lambda s: s["columns"][0].__setitem__("categories", ["a", None]), r"categories\[1\] must be a str, got None"),
    (lambda s: s["columns"][0].__setitem__("n_rare", -1), r"n_rare must be an int >= 0, got -1"),
    (lambda s: s.__setitem__("n_inputs", 8), r"schema.n_inputs must be 7 \(the width its columns give\), got 8"),
    (lambda s: s.__setitem__("columns", {}), r"schema.columns must be a list"),
    (lambda s: s.__setitem__("version", 2), r"schema.version must be an int in \[1, 1\]"),
    (lambda s: s.__setitem__("scale", "log"), r"schema.scale must be one of"),
    (lambda s: s.__setitem__("min_frequency", 1.5), r"schema.min_frequency must be a fraction"),
])
def test_from_state_rejects_corrupted_states(corrupt, field):
    state = _state()
    assert Schema.from_state(state).state() == state
    corrupt(state)
    with pytest.raises(InvalidArgumentError, match=field):
        Schema.from_state(state, where="m.safetensors")
    with pytest.raises(InvalidArgumentError, match="^m.safetensors: "):
        Schema.from_state(state, where="m.safetensors")


def test_from_state_rejects_non_dicts():
    with pytest.raises(InvalidArgumentError, match=r"^schema must be a dict, got \[\]"):
        Schema.from_state([])


# ------------------------------------------------------------------ the target
def test_target_classification_from_text_and_numbers():
    t = Target.fit(np.array(["Gentoo", "Adelie", "Chinstrap", "Adelie"], dtype=object), "species")
    assert t.task == "classification" and t.classes == ["Adelie", "Chinstrap", "Gentoo"] and t.hint is None
    assert t.encode(np.array(["Gentoo", "Adelie"], dtype=object)).tolist() == [2, 0]
    decoded = t.decode(np.array([1, 2]))
    assert decoded.tolist() == ["Chinstrap", "Gentoo"] and type(decoded[0]) is str
    n = Target.fit(np.array([3.0, 1.0, 2.0, 3.0]), "rings")
    assert n.classes == [1, 2, 3] and n.hint == (
        "the target 'rings' has 3 whole-number values, so it was read as 3 classes; for a regression use "
        "--task regression (task='regression')")
    assert n.encode(np.array(["3", "1.0"], dtype=object)).tolist() == [2, 0]
    assert n.decode(np.array([0, 2])).tolist() == [1, 3]
    assert Target.fit(np.array([3.0, 1.0]), "r", task="classification").hint is None


def test_target_regression_scaling_and_rows():
    y = np.array([1.5, 2.5, 3.5, 100.0])
    t = Target.fit(y, "mpg", rows=np.array([0, 1, 2]))
    assert t.task == "regression" and t.offset == 2.5 and t.scale == pytest.approx(np.std([1.0, 2.0, 3.0]), rel=1e-15)
    enc = t.encode(y)
    assert enc.shape == (4, 1) and enc.dtype == np.float64
    np.testing.assert_allclose(t.decode(enc), y.reshape(-1, 1), rtol=1e-15)
    assert Target.fit(y, "mpg", scale_target="none").encode(y).ravel().tolist() == y.tolist()


def test_target_messages():
    with pytest.raises(DataError, match=r"^classification needs at least two classes; the target 'species' holds "
                                        r"only 'Adelie'$"):
        Target.fit(np.array(["Adelie", "Adelie"], dtype=object), "species")
    t = Target.fit(np.array(["a", "b"], dtype=object), "s")
    with pytest.raises(DataError, match=r"the target 's' holds 1 label never seen in training: 'zz'; the known "
                                        r"classes are 'a', 'b'"):
        t.encode(np.array(["a", "zz"], dtype=object))
    with pytest.raises(DataError, match=r"the target 's' has 1 missing value \(first at row 1\); drop those rows"):
        Target.fit(np.array(["a", None], dtype=object), "s")
    with pytest.raises(DataError, match=r"the target 's' holds text \('a'\), so it cannot be a regression target"):
        Target.fit(np.array(["a", "b"], dtype=object), "s", task="regression")
    assert Target.missing_mask(np.array([1.0, np.nan])).tolist() == [False, True]


@pytest.mark.parametrize("values, task", [(np.array(["b", "a", "c"], dtype=object), None),
                                          (np.array([2.5, 1.0, 7.0]), None),
                                          (np.array([1.0, 2.0, 2.0]), None)])
def test_target_state_round_trip(values, task):
    t = Target.fit(values, "y", task=task)
    again = Target.from_state(json.loads(json.dumps(t.state(), allow_nan=False)))
    assert again.state() == t.state()
    if t.task == "classification":
        assert again.encode(values).tolist() == t.encode(values).tolist()
    else:
        assert again.encode(values).tobytes() == t.encode(values).tobytes()


@pytest.mark.parametrize("corrupt, field", [
    (lambda s: s.__setitem__("classes", ["a"]), r"target.classes must be a list of at least two labels"),
    (lambda s: s.__setitem__("classes", ["b", "b"]), r"target.classes must be distinct labels"),
    (lambda s: s.__setitem__("classes", [1, 1.0]), r"target.classes must be labels of one kind"),
    (lambda s: s.__setitem__("classes", ["a", 1]), r"target.classes must be labels of one kind"),
    (lambda s: s.__setitem__("task", "ranking"), r"target.task must be one of"),
    (lambda s: s.__setitem__("scale", 0.0), r"target.scale must be a finite positive number, got 0.0"),
    (lambda s: s.__setitem__("offset", float("inf")), r"target.offset must be a finite number"),
    (lambda s: s.__setitem__("name", None), r"target.name must be a str"),
])
def test_target_from_state_rejects_corrupted_states(corrupt, field):
    state = Target.fit(np.array(["a", "b"], dtype=object), "y").state()
    corrupt(state)
    with pytest.raises(InvalidArgumentError, match=field):
        Target.from_state(state)


def test_table_requires_equal_lengths():
    with pytest.raises(DataError, match="differ in length"):
        Table({"a": np.zeros(2), "b": np.zeros(3)}, {"a": "numeric", "b": "numeric"}, {})


def test_target_from_parts_of_an_older_file():
    t = Target.from_parts("y", "classification", classes=[np.int64(0), np.int64(1)], class_names=["no", "yes"])
    assert t.classes == [0, 1] and t.decode(np.array([1, 0])).tolist() == [1, 0]
    assert t.class_names == ["no", "yes"] and Target.from_state(t.state()).class_names == ["no", "yes"]
    b = Target.from_parts("y", "classification", classes=[False, True])
    assert b.decode(np.array([1])).dtype == bool and b.encode(np.array(["True"], dtype=object)).tolist() == [1]
    r = Target.from_parts("y", "regression", offset=2.0, scale=4.0)
    assert r.decode(np.array([[1.0]])).tolist() == [[6.0]] and Target.from_state(r.state()).state() == r.state()
    with pytest.raises(InvalidArgumentError, match=r"target.scale must be a finite positive number, got -1.0"):
        Target.from_parts("y", "regression", offset=0.0, scale=-1.0)
