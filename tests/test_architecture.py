"""The architecture's rules, checked rather than remembered (docs/architecture.md).

- The layers' import direction is checked by ``lint-imports`` (the contracts
  in pyproject.toml), which ``make test`` runs before this suite.
- Here: no module imports the package root, files and functions stay short,
  ``import deltaprop`` stays light, and each fact that used to be written in
  several places has one home whose rule is pinned by a test.
"""

import ast
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import deltaprop as dp
from deltaprop import checks, losses, metrics
from deltaprop.training import class_weights

SRC = Path(dp.__file__).parent
MODULES = sorted(SRC.rglob("*.py"))
MAX_FILE_LINES = 600
MAX_FUNCTION_LINES = 80


def _rel(path):
    return str(path.relative_to(SRC.parent))


# ------------------------------------------------------------------- layout
@pytest.mark.parametrize("path", MODULES, ids=_rel)
def test_no_module_imports_the_package_root(path):
    """The root (``deltaprop/__init__``) is the public face above every layer: nothing inside imports it."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    depth = len(path.relative_to(SRC).parts)  # 1 for deltaprop/x.py, 2 for deltaprop/data/x.py
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert not any(a.name == "deltaprop" for a in node.names), f"{_rel(path)}:{node.lineno}"
        elif isinstance(node, ast.ImportFrom):
            assert node.module != "deltaprop" or node.level, f"{_rel(path)}:{node.lineno}"
            if node.level == depth and node.module is None:  # `from . import x` at the root's level
                for alias in node.names:
                    assert (SRC / f"{alias.name}.py").exists() or (SRC / alias.name).is_dir(), \
                        f"{_rel(path)}:{node.lineno} imports {alias.name!r} from the package root"


@pytest.mark.parametrize("path", MODULES, ids=_rel)
def test_source_files_stay_readable_in_one_sitting(path):
    n = len(path.read_text(encoding="utf-8").splitlines())
    assert n <= MAX_FILE_LINES, f"{_rel(path)} has {n} lines (limit {MAX_FILE_LINES}): split it along its concepts"


def _code_lines(func):
    """Lines of a function's body, its docstring left out."""
    body = func.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]
    if not body:
        return 0
    return body[-1].end_lineno - body[0].lineno + 1


@pytest.mark.parametrize("path", MODULES, ids=_rel)
def test_functions_stay_short(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    long = [(node.name, _code_lines(node)) for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _code_lines(node) > MAX_FUNCTION_LINES]
    assert not long, f"{_rel(path)}: functions over {MAX_FUNCTION_LINES} code lines: {long}"


@pytest.mark.parametrize("use, expected", [("", ["deltaprop"]), ("deltaprop.Network", ["deltaprop", "numpy"])])
def test_import_deltaprop_loads_numpy_and_the_standard_library_alone(use, expected):
    """The package face is lazy (no NumPy); the core behind its names needs NumPy and the standard library."""
    code = (
        "import sys\n"
        f"import deltaprop\n{use}\n"
        "top = {m.split('.')[0] for m in sys.modules}\n"
        "print(sorted(t for t in top if t not in sys.stdlib_module_names and not t.startswith(('_', 'cython'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert eval(out) == expected, out


def test_import_deltaprop_defers_what_only_some_runs_need():
    """Files, streaming, checkpoints and generators' classes load their modules when used, not on import."""
    deferred = ("numpy.random", "secrets", "hashlib", "mmap", "safetensors", "tqdm", "numba", "threadpoolctl",
                "deltaprop.checkpoint", "deltaprop.tensorfile")
    on_demand = ("DeltapropClassifier", "DeltapropRegressor", "TabularModel", "read_table", "export_onnx")
    code = (f"import sys, deltaprop; [getattr(deltaprop, n) for n in deltaprop.__all__ if n not in {on_demand!r}]; "
            f"print([m for m in {deferred!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert eval(out) == [], out


# ------------------------------------------------------- one home per fact
def test_balanced_class_weights_count_samples_by_their_weight():
    """scikit-learn's rule: n / (k n_c) with n and n_c summing sample_weight (weight 2 = the sample twice)."""
    index = np.array([0, 0, 0, 1])
    w = np.array([1.0, 1.0, 1.0, 3.0])
    np.testing.assert_array_equal(class_weights("balanced", index, 2, sample_weight=w), [1.0, 1.0, 1.0, 1.0])
    np.testing.assert_array_equal(class_weights("balanced", index, 2), [2 / 3, 2 / 3, 2 / 3, 2.0])
    repeated = np.array([0, 0, 0, 1, 1, 1])
    once = class_weights("balanced", np.array([0, 0, 0, 1]), 2, sample_weight=w)
    twice = class_weights("balanced", repeated, 2)
    assert once[3] == twice[3] and once[0] == twice[0]


def test_fit_applies_the_balanced_rule_with_sample_weight():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((12, 3))
    y = np.array([0] * 9 + [1] * 3)
    w = rng.uniform(0.5, 2.0, 12)

    def net():
        return dp.Network([dp.Dense(3, 4, activation="tanh"), dp.Dense(4, 2, activation="softmax")],
                          dtype="float64", seed=0)

    a, b = net(), net()
    a.fit(X, y, epochs=2, batch_size=4, class_weight="balanced", sample_weight=w, verbose=0)
    b.fit(X, y, epochs=2, batch_size=4, sample_weight=w * class_weights("balanced", y, 2, sample_weight=w),
          verbose=0)
    np.testing.assert_array_equal(a.params, b.params)


@pytest.mark.parametrize("outputs, threshold, expected", [
    ([[0.5], [0.5000001], [0.4999999]], 0.5, [0, 1, 0]),   # a probability of exactly 0.5 is class 0
    ([[0.0], [1e-12], [-1e-12]], 0.0, [0, 1, 0]),          # a hinge margin of exactly 0 is class 0
    ([[0.5, 0.5], [0.2, 0.8], [0.4, 0.4]], 0.5, [0, 1, 0]),  # argmax: the first of ties
])
def test_one_rule_reads_a_class_from_outputs(outputs, threshold, expected):
    a = np.array(outputs)
    assert metrics.predicted_classes(a, threshold).tolist() == expected
    loss = "hinge" if threshold == 0.0 else "binary_crossentropy" if a.shape[1] == 1 else "categorical_crossentropy"
    acc = metrics.build(["accuracy"], losses.get(loss), a.shape[1])[0]
    Y = np.eye(2)[expected] if a.shape[1] == 2 else np.array(expected, dtype=float).reshape(-1, 1)
    acc.update(a, Y, np.ones(len(a)))
    assert acc.result() == 1.0


def test_the_tie_rule_is_the_same_for_targets():
    assert metrics.class_index(np.array([[0.0], [1.0], [0.5]]))[0].tolist() == [0, 1, 0]


@pytest.mark.parametrize("activation, loss", [
    ("softmax", "categorical_crossentropy"), ("sigmoid", "binary_crossentropy"), ("identity", "mean_squared_error"),
    ("tanh", "mean_squared_error"), ("relu", "mean_squared_error"),
])
def test_one_table_pairs_output_activations_with_losses(activation, loss):
    assert losses.default_loss_for(activation) == loss
    net = dp.Network([dp.Dense(2, 3, activation=activation)])
    assert net.loss.name == loss
    if activation in ("softmax", "sigmoid", "identity"):
        assert losses.default_activation_for(loss) == activation
        assert losses.is_canonical_pair(net.layers[-1].activation, net.loss)


@pytest.mark.parametrize("task, n_classes, given, expected", [
    ("classification", 2, {}, ("sigmoid", "binary_crossentropy", 1, "index")),
    ("classification", 5, {}, ("softmax", "categorical_crossentropy", 5, "index")),
    ("classification", 3, {"loss": "mse"}, ("identity", "mean_squared_error", 3, "onehot")),
    ("classification", 3, {"loss": "hinge"}, ("identity", "hinge", 3, "index")),
    ("regression", None, {}, ("identity", "mean_squared_error", 1, "real")),
    ("regression", None, {"output_activation": "sigmoid"}, ("sigmoid", "binary_crossentropy", 1, "real")),
])
def test_choosing_the_output_reads_the_same_table(task, n_classes, given, expected):
    if expected[1] == "binary_crossentropy" and task == "regression":
        with pytest.raises(dp.InvalidArgumentError, match="for classification"):
            losses.choose_output(task, n_classes, **given)
        return
    assert losses.choose_output(task, n_classes, **given) == expected


def test_from_sizes_is_the_constructor_layer_by_layer():
    built = dp.Network.from_sizes([4, 8, 6, 3], activation=["relu", "tanh"], dropout=[0.1, 0.0],
                                  loss="categorical_crossentropy", seed=7)
    by_hand = dp.Network([dp.Dense(4, 8, activation="relu", dropout=0.1), dp.Dense(8, 6, activation="tanh"),
                          dp.Dense(6, 3, activation="softmax")], loss="categorical_crossentropy", seed=7)
    assert built.get_config() == by_hand.get_config()
    np.testing.assert_array_equal(built.params, by_hand.params)


def test_a_network_pickles_as_its_parameters_and_configuration():
    net = dp.Network.from_sizes([100, 64, 10], loss="categorical_crossentropy", seed=0)
    empty = len(pickle.dumps(net))
    net.predict(np.zeros((4096, 100)))  # fills workspaces of 4096 rows
    blob = pickle.dumps(net)
    assert len(blob) == empty  # no workspace, no last input
    assert len(blob) < 1.3 * net.params.nbytes + 4096
    copy = pickle.loads(blob)
    X = np.random.default_rng(0).standard_normal((5, 100))
    np.testing.assert_array_equal(copy.predict(X), net.predict(X))
    assert all(np.shares_memory(layer.W, copy.params) for layer in copy.layers)
    copy.params[0] += 1.0
    assert copy.layers[0].W.T.ravel()[0] == copy.params[0]  # still a view, not a stray copy


def test_sample_scale_has_one_formula():
    w = np.array([1.0, 3.0, 0.0, 4.0])
    np.testing.assert_array_equal(dp.Network.sample_scale(4, w, np.dtype(np.float32)),
                                  checks.sample_scale(4, w, np.dtype(np.float32)))
    assert checks.sample_scale(8, None, np.dtype(np.float64)) == 1 / 8
    np.testing.assert_array_equal(checks.sample_scale(4, w, np.dtype(np.float64)).ravel(), w / 8.0)


@pytest.mark.parametrize("make, error", [
    (lambda: dp.Dense(2.0, 3), dp.InvalidTypeError),
    (lambda: dp.Dense(0, 3), dp.InvalidArgumentError),
    (lambda: dp.SGD(learning_rate="0.1"), dp.InvalidTypeError),
    (lambda: dp.SGD(learning_rate=-1.0), dp.InvalidArgumentError),
    (lambda: dp.StepDecay(step_size=1.5), dp.InvalidTypeError),
    (lambda: dp.StepDecay(step_size=0), dp.InvalidArgumentError),
    (lambda: dp.EarlyStopping(patience=-1), dp.InvalidArgumentError),
    (lambda: dp.EarlyStopping(patience=1.5), dp.InvalidTypeError),
])
def test_a_wrong_type_and_a_wrong_value_are_told_apart_everywhere(make, error):
    with pytest.raises(error, match="must be"):
        make()


def test_schedules_learn_the_run_length_from_bind_not_from_the_loop():
    cosine = dp.CosineDecay()
    assert cosine.sized_by_run
    cosine.bind(steps_per_epoch=5, run_steps=20)
    assert cosine(20, 1.0) == 0.0 and cosine(0, 1.0) == 1.0
    warm = dp.LinearWarmup(4, after=dp.CosineDecay())
    assert warm.sized_by_run
    warm.bind(steps_per_epoch=5, run_steps=24)
    assert warm(24, 1.0) == 0.0  # the cosine after the warm-up runs for the 20 steps left
    assert not dp.CosineDecay(total_steps=10).sized_by_run


@pytest.mark.parametrize("offset", [0.0, 1e3, 1e6])
def test_r2_of_a_constant_target_is_scikit_learns_convention(offset):
    y = np.full((50, 1), offset + 0.1)
    r2 = metrics.R2()
    r2.reset(1)
    r2.update(y, y, np.ones(50))
    assert r2.result() == 1.0
    r2.reset(1)
    r2.update(y + 0.5, y, np.ones(50))
    assert r2.result() == 0.0


def _zero_output_classifier():
    """A fitted binary classifier whose every output is exactly sigmoid(0) = 0.5."""
    from deltaprop.estimators import DeltapropClassifier

    X = np.random.default_rng(0).standard_normal((20, 3))
    clf = DeltapropClassifier(hidden_layer_sizes=(4,), epochs=1, random_state=0).fit(X, np.arange(20) % 2 == 0)
    clf.network_.params[...] = 0.0
    return clf, X


def test_an_output_of_one_half_is_class_0_in_the_estimators_and_the_command_line(tmp_path):
    clf, X = _zero_output_classifier()
    assert np.all(clf.predict_proba(X)[:, 1] == 0.5)
    assert not clf.predict(X).any()  # classes_ = [False, True]: class 0
    path = tmp_path / "half.safetensors"
    dp.save(clf.network_, path, classes=["no", "yes"])
    data = tmp_path / "x.csv"
    data.write_text("a,b,c\n" + "\n".join(",".join(f"{v:.3f}" for v in row) for row in X[:3]) + "\n")
    out = subprocess.run([sys.executable, "-m", "deltaprop", "predict", str(path), "--data", str(data)],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out[1:] == ["no", "no", "no"], out
