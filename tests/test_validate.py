"""deltaprop.validate: the one validator of JSON metadata read from files."""

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deltaprop.errors import InvalidArgumentError, ModelFileError
from deltaprop.validate import (
    CLASSES,
    ESTIMATOR_RECORD,
    FEATURE_NAMES,
    HISTORY,
    LIBRARY_VERSION,
    MODEL_METADATA,
    RUN_CONFIG,
    TARGET_SCALING,
    TASK,
    TEST_SCORES,
    Any_of,
    Bool,
    Dict,
    Float,
    Int,
    Json,
    List,
    Null,
    Str,
    check,
    json_depth,
    parse_json,
    validate_model_metadata,
)


def refused(value, spec, where, *parts):
    """Check that ``spec`` refuses ``value`` with a message starting with the path and holding ``parts``."""
    with pytest.raises(InvalidArgumentError) as info:
        check(value, spec, where)
    message = str(info.value)
    for part in parts:
        assert part in message, message
    return message


# ------------------------------------------------------------- the spec language
def test_scalars_accept_and_refuse_naming_the_path():
    assert check("abc", Str(max_len=3), "x") == "abc"
    refused("abcd", Str(max_len=3), "x.name", "x.name: ", "4 characters is too long (at most 3)")
    refused(3, Str(), "x", "x: expected a string", "got 3")
    assert check(5, Int(1, 5), "n") == 5
    refused(6, Int(1, 5), "n", "n: expected an integer in [1, 5], got 6")
    refused(True, Int(), "n", "got true")
    refused(2.0, Int(), "n", "got 2.0")
    assert check(2, Float(0, 2), "f") == 2
    refused(float("nan"), Float(), "h[3].val_loss", "h[3].val_loss: NaN is not allowed")
    refused(float("inf"), Float(), "f", "f: infinity is not allowed")
    refused(0.0, Float(0.0, None, lo_open=True), "s", "expected a finite number > 0")
    refused(10**400, Float(), "f", "integer of 401 digits")
    assert math.isnan(check(float("nan"), Float(nan=True), "f"))
    refused(float("-inf"), Float(nan=True), "f", "-infinity is not allowed")
    assert check(None, Null(), "z") is None
    refused(0, Null(), "z", "expected null")
    refused(0, Bool(), "b", "expected true or false, got 0")
    refused("x", Str(choices=("a", "b")), "task", "task: expected 'a' or 'b', got the string 'x'")


def test_containers_name_the_item_and_the_key():
    refused("64,32", List(Int(), max_len=64), "config.hidden",
            "config.hidden: expected a list of at most 64 integers, got the string '64,32'")
    refused([1] * 65, List(Int(), max_len=64), "h", "got a list of 65 items")
    refused([1, "2"], List(Int()), "h", "h[1]: expected an integer")
    spec = Dict({"a": Int()}, required=("a",))
    refused({}, spec, "d", "d: the key 'a' is missing")
    refused({"a": 1, "b": 2}, spec, "d", "d: unexpected key 'b'")
    refused({"a": "1"}, spec, "d", "d.a: expected an integer")
    refused({"a": 1, "odd key": "x"}, Dict({"a": Int()}, extra=Int()), "d", "d['odd key']: expected an integer")
    assert check({"a": 1, "z": [[]]}, Dict({"a": Int()}, extra="allow"), "d")
    refused({"k" * 300: 1}, Dict(extra=Int()), "d", "d key 'kkk", "too long")
    refused({str(i): 1 for i in range(11)}, Dict(extra=Int(), max_keys=10), "d", "at most 10 keys")
    one_of = Any_of(Null(), List(Int()))
    assert check(None, one_of, "u") is None
    refused([1, "x"], one_of, "u", "u[1]: expected an integer")  # the alternative that reads a list speaks
    refused("x", one_of, "u", "u: expected null or a list of integers")


def test_json_bounds_depth_items_strings_and_numbers():
    spec = Json(max_depth=3, max_items=20, max_str=5)
    assert check({"a": [1, {"b": None}]}, spec, "c")
    refused({"a": [[[1]]]}, spec, "c", "c.a[0][0]: nested deeper than 3 levels")
    refused(list(range(30)), spec, "c", "more than 20 values")
    refused({"a": "toolong"}, spec, "c", "c.a: a string of 7 characters is too long")
    refused({"a": [1.0, float("nan")]}, spec, "c", "c.a[1]: NaN is not allowed")
    refused({"a": 2**70}, spec, "c", "c.a: an integer of 22 digits is out of range")
    refused({"a": (1,)}, spec, "c", "is not JSON data")
    refused([], Json(top="object"), "config", "config: expected an object, got a list of 0 items")


def test_deep_python_nesting_is_refused_without_recursion():
    deep = []
    for _ in range(10**5):
        deep = [deep]
    refused(deep, Json(max_depth=8), "c", "nested deeper than 8 levels")
    refused(deep, List(List(Int())), "c", "c[0][0]: expected an integer, got a list of 1 item")
    refused({"x": deep}, RUN_CONFIG, "config", "nested deeper than 7 levels")


def test_depth_of_json_text_is_found_without_parsing():
    assert json_depth("[1, {\"a\": [2]}]") == 3
    assert json_depth('{"[[[[": "]]]}}{"}') == 1  # brackets in strings do not count
    assert json_depth('["\\"[[["]') == 1  # an escaped quote does not end the string
    assert json_depth("3") == 0
    text = "[" * 10**5 + "]" * 10**5
    assert json_depth(text) == 10**5
    with pytest.raises(InvalidArgumentError, match="history: nested 100000 levels deep"):
        parse_json(text, "history")
    with pytest.raises(InvalidArgumentError, match="not valid JSON"):
        parse_json('{"a": 1, "a": 2}', "x")  # a duplicate key
    with pytest.raises(InvalidArgumentError, match="not valid JSON"):
        parse_json("[1,", "x")


# ------------------------------------------------------------- deltaprop's specs
GOOD = {
    "task": "classification",
    "library_version": "0.9.0",
    "classes": ["a", 1, 2.5, True],
    "class_names": ["setosa", "versicolor"],
    "feature_names": ["x1", "x2"],
    "target_name": "species",
    "target_scaling": {"kind": "standard", "n_features": 2, "offset": [0.5, -1], "scale": [2.0, 0.1]},
    "history": [{"epoch": 1, "loss": 0.5, "val_r2": float("nan"), "lr": 0.01, "time": 0.2},
                {"epoch": 2, "loss": 0.4, "val_r2": None}],
    "test": {"loss": 0.3, "samples": 38, "accuracy": 0.95},
    "config": {"data": "iris", "labels": None, "target": -1, "seed": 0, "test_split": 0.25,
               "hidden": [64, 32], "optimizer": {"name": "adam", "lr": 1e-3}},
    "architecture": {"layers": [{"n_in": 4, "n_out": 3, "activation": {"name": "softmax"}}],
                     "loss": {"name": "categorical_crossentropy"}, "dtype": "float32"},
    "preprocessing": {"kind": "standard", "n_features": 4},
    "sklearn_estimator": {"format_version": 1, "estimator": "DeltapropClassifier",
                          "params": {"hidden_layer_sizes": {"__tuple__": [100]}, "random_state": None},
                          "unsaved_params": [], "n_features_in": 4, "feature_names_in": None,
                          "loss_curve": [1.0, 0.5], "validation_scores": None, "validation_loss_curve": None,
                          "mode": "multiclass", "classes_dtype": "str", "multilabel_dtype": None},
    "data_contract": {"version": 1, "schema": {"columns": []}, "target": None, "na_values": []},
    "overrides": [{"setting": "learning_rate", "was": 0.01, "now": 0.02, "epoch": 4, "step": 15}],
}


def test_every_spec_accepts_what_deltaprop_writes():
    assert set(GOOD) == set(MODEL_METADATA)
    metadata = {key: json.dumps(value) for key, value in GOOD.items()}
    metadata["format"] = "deltaprop.model"  # not JSON: left to check_format
    parsed = validate_model_metadata("m.safetensors", metadata)
    assert set(parsed) == set(GOOD)
    assert parsed["classes"] == GOOD["classes"]
    assert math.isnan(parsed["history"][0]["val_r2"])


@pytest.mark.parametrize("spec, value, where, message", [
    (TASK, "clustering", "task", "task: expected 'classification' or 'regression'"),
    (LIBRARY_VERSION, "v" * 65, "library_version", "library_version: a string of 65 characters is too long"),
    (CLASSES, ["a", None], "classes", "classes[1]: expected a string"),
    (CLASSES, ["a", float("inf")], "classes", "classes[1]: infinity is not allowed"),
    (CLASSES, ["a" * 1001], "classes", "classes[0]: a string of 1001 characters is too long"),
    (FEATURE_NAMES, "x1,x2", "feature_names", "feature_names: expected a list of at most 10,000,000 strings"),
    (TARGET_SCALING, {"kind": "standard", "n_features": 1, "offset": [0.0], "scale": [0.0]}, "target_scaling",
     "target_scaling.scale[0]: expected a finite number in (0, 1e+250], got 0.0"),
    (TARGET_SCALING, {"kind": "standard", "n_features": 2, "offset": [0.0], "scale": [1.0, 1.0]},
     "target_scaling", "target_scaling: offset has 1 value for n_features 2"),
    (TARGET_SCALING, {"kind": "standard", "n_features": 1, "offset": ["0"], "scale": [1.0]}, "target_scaling",
     "target_scaling.offset[0]: expected a finite number"),
    (HISTORY, [{"epoch": 1, "loss": 1.0}] * 3 + [{"epoch": 4, "val_loss": float("inf")}], "history",
     "history[3].val_loss: infinity is not allowed"),
    (HISTORY, [{"loss": 1.0}], "history", "history[0]: the key 'epoch' is missing"),
    (HISTORY, [{"epoch": 1, "loss": "low"}], "history", "history[0].loss: expected a finite number or null"),
    (HISTORY, [{"epoch": 1}] * 100_001, "history", "expected a list of at most 100,000 objects"),
    (TEST_SCORES, {"loss": 0.1, "samples": -1}, "test", "test.samples: expected an integer in [0, "),
    (TEST_SCORES, {"loss": 0.1}, "test", "test: the key 'samples' is missing"),
    (RUN_CONFIG, {"hidden": [[[[[[[[1]]]]]]]]}, "config", "nested deeper than 7 levels"),
    (RUN_CONFIG, {"seed": "0"}, "config", "config.seed: expected an integer >= 0"),
    (RUN_CONFIG, {"test_split": 2.0}, "config", "config.test_split: expected a finite number in [0, 1]"),
    (RUN_CONFIG, {"lr": float("nan")}, "config", "config.lr: NaN is not allowed"),
    (ESTIMATOR_RECORD, {"format_version": 1, "estimator": "X", "params": {"tol": float("inf")}},
     "sklearn_estimator", "sklearn_estimator.params.tol: infinity is not allowed"),
    (ESTIMATOR_RECORD, {"format_version": 1, "estimator": "X", "loss_curve": "1,2"}, "sklearn_estimator",
     "sklearn_estimator.loss_curve: expected a list"),
    (ESTIMATOR_RECORD, {"estimator": "X"}, "sklearn_estimator", "the key 'format_version' is missing"),
])
def test_each_spec_refuses_with_the_path(spec, value, where, message):
    refused(value, spec, where, message)


def test_validate_model_metadata_names_the_file_and_the_entry():
    with pytest.raises(ModelFileError, match=r"^m\.st: metadata history\[0\]\.loss: infinity is not allowed$"):
        validate_model_metadata("m.st", {"history": '[{"epoch": 1, "loss": Infinity}]'})
    with pytest.raises(ModelFileError, match="metadata config: 2,000,009 characters of JSON is too long"):
        validate_model_metadata("m.st", {"config": json.dumps({"a": "x" * 2_000_000})})
    with pytest.raises(ModelFileError, match="metadata classes: nested 100000 levels deep"):
        validate_model_metadata("m.st", {"classes": "[" * 10**5 + "]" * 10**5})
    with pytest.raises(ModelFileError, match="metadata test: expected JSON text, got 3"):
        validate_model_metadata("m.st", {"test": 3})
    assert validate_model_metadata("m.st", {"format": "deltaprop.model", "mine": "[[[["}) == {}


# ------------------------------------------------------------- fuzzing
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=40,
)


@settings(max_examples=200, deadline=None)
@given(value=_json, key=st.sampled_from(sorted(MODEL_METADATA)))
def test_random_json_raises_only_invalid_argument(value, key):
    try:
        check(value, MODEL_METADATA[key], key)
    except InvalidArgumentError as exc:
        assert str(exc).startswith(key)


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet='[]{}",:0123456789.eE-+ntrufalsNIiy\\ ', max_size=60),
       key=st.sampled_from(sorted(MODEL_METADATA)))
def test_random_text_raises_only_model_file_error(text, key):
    try:
        validate_model_metadata("f", {key: text})
    except ModelFileError as exc:
        assert str(exc).startswith(f"f: metadata {key}")
