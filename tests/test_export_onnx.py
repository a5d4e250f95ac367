"""ONNX export of networks: onnxruntime computes what ``Network.predict`` computes.

1. Every activation (hidden and as output), every layer kind (Dense with and
   without bias, Dropout > 0, which must be off, Activation, LayerNorm,
   BatchNorm with non-trivial running statistics, Embedding, Residual and
   nested Residual), in float32 and float64, on several hundred seeded rows:
   onnxruntime's output equals ``Network.predict`` within

       float64: max |o - r| <= 1e-12 * max(1, max |r|)
       float32: max |o - r| <= 1e-6  * max(1, max |r|)

   and the argmax labels agree on every row. The error is normwise relative,
   not elementwise: onnxruntime and OpenBLAS sum the matrix products in
   different orders, so each output carries an absolute rounding error of the
   size of the largest terms, and an elementwise relative error on a tiny
   probability (1e-20 next to 1) measures nothing but that order.
2. Pre-activations up to |z| = 60 (and 1e4) give finite outputs that agree,
   for every activation that exponentiates (for the network whose weights
   are scaled so that z reaches ±65, the error is measured against 65, not
   against the outputs: a float32 rounding of such a z passes unattenuated
   through tanh or ELU near 0; and no label check there, saturated outputs
   tie at exactly ±1). Float64 ELU and softplus near 0
   (|z| down to 1e-300), where Kahan's expm1/log1p forms matter, agree with
   deltaprop's np.expm1/np.log1p values elementwise within 1e-15 relative.
   Where exp(z) is subnormal (z < -88 in float32, z < -708 in float64) ELU
   gives -1, as np.expm1 does (a bug this test found: Kahan's form divided
   by an inexact log u there).
3. Opsets 13, 17, 18 and 21 (18 moved ReduceMean/ReduceMax's axes to an
   input): every file passes ``onnx.checker.check_model(full_check=True)``
   and predicts the same; 12 and 22 are refused.
4. A user's own activation or layer, and a subclass of a built-in one, are
   refused with a message that names it (never exported as its parent);
   ``deltaprop.export.register_layer`` makes a user's layer exportable.
5. ``dp.export_onnx`` is lazy and writes atomically; without onnx the error
   says how to install it.

The data sets, the tabular heads and the command line are in
``tests/test_export_tabular_onnx.py``; the helpers in ``tests/_onnx_util.py``
(``python tests/_onnx_util.py`` prints the worst errors of a run).
"""

import os
import subprocess
import sys

import numpy as np
import pytest

import deltaprop as dp
from deltaprop import activations as acts
from deltaprop import layers as dp_layers
from deltaprop.errors import InvalidArgumentError, SaveError

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from deltaprop.export import export_onnx, register_layer, to_onnx  # noqa: E402
from deltaprop.export.network import LAYER_CONVERTERS  # noqa: E402

from _onnx_util import TINY_TOL, assert_close, assert_same_argmax, op_types, record, run_onnx  # noqa: E402
from test_cli import env_for  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_blas_thread")  # tests/conftest.py

DTYPES = ["float64", "float32"]
ACTIVATIONS = ["identity", "relu", "tanh", "sigmoid", {"name": "leaky_relu", "alpha": 0.1},
               {"name": "leaky_relu", "alpha": 2.0}, "elu", {"name": "elu", "alpha": 0.7}, "gelu", "softplus",
               "softmax"]
ROWS = 400


def _id(spec):
    return spec if isinstance(spec, str) else f"{spec['name']}{spec['alpha']}"


def _walk(layers):
    for layer in layers:
        yield layer
        yield from _walk(getattr(layer, "layers", []))


def _randomize(net, rng):
    """Random biases, norm scales and shifts, and BatchNorm running statistics far from their 0 and 1."""
    for layer in _walk(net.layers):
        if isinstance(layer, dp.Dense) and layer.bias:
            layer.b[...] = rng.normal(0.0, 0.5, layer.b.shape)
        if isinstance(layer, (dp.LayerNorm, dp.BatchNorm)):
            layer.gamma[...] = 1.0 + 0.3 * rng.standard_normal(layer.n_in)
            layer.beta[...] = 0.3 * rng.standard_normal(layer.n_in)
        if isinstance(layer, dp.BatchNorm):
            layer.running_mean[...] = rng.normal(0.0, 1.0, layer.n_in)
            layer.running_var[...] = rng.uniform(0.2, 3.0, layer.n_in)
    return net


def _inputs(net, rng, n=ROWS, scale=1.5):
    """Seeded rows for ``net``: normal values, and whole category codes in an Embedding's columns."""
    X = rng.normal(0.0, scale, (n, net.n_in))
    first = net.layers[0]
    for index, n_cat, _ in first.columns if isinstance(first, dp.Embedding) else []:
        X[:, index] = rng.integers(0, n_cat, n)
    return X.astype(net.dtype)


def check_network(net, X, what, opset=None, scale=1.0, labels=True):
    """Export ``net``, run it on ``X`` and compare with ``net.predict(X)`` (``scale``: see assert_close).

    ``labels``: also the argmax of every row (not where saturated outputs tie at exactly 1 or -1).
    """
    proto = to_onnx(net) if opset is None else to_onnx(net, opset=opset)
    onnx.checker.check_model(proto, full_check=True)
    out = run_onnx(proto, {"X": X})["output"]
    ref = net.predict(X)
    assert np.isfinite(ref).all() and np.isfinite(out).all(), what
    assert_close(out, ref, what, scale=scale)
    if labels:
        assert_same_argmax(out, ref, what)
    return proto


# ============================================================================ 1. activations
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ACTIVATIONS, ids=_id)
def test_every_activation_hidden_and_as_output(act, dtype):
    net = dp.Network([dp.Dense(6, 12, activation=act), dp.Dense(12, 9, activation=act, bias=False),
                      dp.Dense(9, 4, activation=act)], loss="mean_squared_error", dtype=dtype, seed=1)
    rng = np.random.default_rng(10)
    _randomize(net, rng)
    check_network(net, _inputs(net, rng), f"{_id(act)} {dtype}")


# ============================================================================ 2. layer kinds
def _dense_without_bias():
    return [dp.Dense(6, 10, activation="tanh", bias=False), dp.Dense(10, 4, activation="softmax", bias=False)]


def _dropout():
    return [dp.Dense(6, 10, activation="relu", dropout=0.4), dp.Dropout(0.5), dp.Dense(10, 4, activation="softmax")]


def _activation_layer():
    return [dp.Dense(6, 10), dp.Activation({"name": "elu", "alpha": 0.5}), dp.Dense(10, 5),
            dp.Activation("softmax"), dp.Dense(5, 4, activation="sigmoid")]


def _layernorm():
    return [dp.Dense(6, 10), dp.LayerNorm(), dp.Activation("gelu"), dp.Dense(10, 4, activation="softmax")]


def _batchnorm():
    return [dp.Dense(6, 10, bias=False), dp.BatchNorm(), dp.Activation("relu"), dp.Dense(10, 4, activation="softmax")]


def _embedding():
    return [dp.Embedding([(2, 5, 3), (4, 7, 2)], n_in=6), dp.Dense(9, 10, activation="tanh"),
            dp.Dense(10, 4, activation="softmax")]


def _residual():
    return [dp.Dense(6, 8, activation="relu"), dp.Residual([dp.Dense(8, 8, activation="tanh"), dp.Dense(8, 8)]),
            dp.Dense(8, 4, activation="softmax")]


def _nested_residual():
    inner = dp.Residual([dp.Dense(8, 8, activation="gelu"), dp.Dropout(0.2),
                         dp.Residual(dp.Dense(8, 8, activation="softplus"))])
    return [dp.Dense(6, 8), dp.Residual([dp.LayerNorm(), inner, dp.Dense(8, 8, bias=False)]),
            dp.Activation("sigmoid"), dp.Dense(8, 4, activation="softmax")]


def _every_kind():
    block = dp.Residual([dp.LayerNorm(), dp.Residual([dp.BatchNorm(), dp.Dense(10, 10, activation="elu",
                                                                               dropout=0.3)]),
                         dp.Dense(10, 10, bias=False), dp.Dropout(0.1)])
    return [dp.Embedding([(0, 4, 2), (3, 6, 3)], n_in=6), dp.Dense(9, 10, bias=False), dp.BatchNorm(),
            dp.Activation({"name": "leaky_relu", "alpha": 0.2}), dp.Dropout(0.25), block, dp.LayerNorm(),
            dp.Activation("tanh"), dp.Dense(10, 4, activation="softmax")]


KINDS = {"dense_without_bias": _dense_without_bias, "dropout": _dropout, "activation_layer": _activation_layer,
         "layernorm": _layernorm, "batchnorm": _batchnorm, "embedding": _embedding, "residual": _residual,
         "nested_residual": _nested_residual, "every_kind": _every_kind}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", list(KINDS))
def test_every_layer_kind(kind, dtype):
    net = dp.Network(KINDS[kind](), loss="mean_squared_error", dtype=dtype, seed=2)
    rng = np.random.default_rng(20)
    _randomize(net, rng)
    proto = check_network(net, _inputs(net, rng), f"{kind} {dtype}")
    assert "Dropout" not in op_types(proto)  # dropout is off at prediction: no node at all
    if kind in ("embedding", "every_kind"):
        assert "Gather" in op_types(proto)


@pytest.mark.parametrize("dtype", DTYPES)
def test_batchnorm_running_statistics_of_a_trained_resnet(dtype):
    net = dp.Network.from_sizes([5, 12, 12, 3], loss="categorical_crossentropy", norm="batch", residual=True,
                                dropout=0.2, dtype=dtype, seed=4)
    rng = np.random.default_rng(4)
    X = rng.normal(2.0, 3.0, (300, 5)).astype(dtype)
    net.fit(X, rng.integers(0, 3, 300), epochs=2, batch_size=32, verbose=0)
    norms = [layer for layer in _walk(net.layers) if isinstance(layer, dp.BatchNorm)]
    assert norms and all(np.abs(n.running_mean).max() > 0.01 and np.abs(n.running_var - 1).max() > 0.01
                         for n in norms)  # trained statistics, not the initial 0 and 1
    check_network(net, X, f"trained resnet {dtype}")


@pytest.mark.parametrize("n", [1, 5000])
def test_any_batch_size(n):
    """One row, and more rows than predict's chunk of 4096 (rows are independent in prediction mode)."""
    net = _randomize(dp.Network(_every_kind(), loss="mean_squared_error", dtype="float64", seed=5),
                     np.random.default_rng(5))
    check_network(net, _inputs(net, np.random.default_rng(6), n=n), f"{n} rows")


# ============================================================================ 3. large and tiny |z|
def _unit_net(act, dtype, width=1):
    """One Dense layer with identity weights and no bias: its output is σ(X)."""
    net = dp.Network([dp.Dense(width, width, activation=act, bias=False)], loss="mean_squared_error",
                     dtype=dtype, seed=0)
    net.layers[0].W[...] = np.eye(width)
    return net


EXPONENTIAL = ["sigmoid", "softplus", "elu", {"name": "elu", "alpha": 0.7}, "gelu", "tanh", "softmax"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", EXPONENTIAL, ids=_id)
def test_large_preactivations_stay_finite_and_agree(act, dtype):
    rng = np.random.default_rng(30)
    z = np.concatenate([np.linspace(-60.0, 60.0, 241), [-1e4, -1e3, 1e3, 1e4]])
    grid = np.stack([z, -z, rng.permutation(z)], axis=1).astype(dtype)
    check_network(_unit_net(act, dtype, width=3), grid, f"{_id(act)} |z| to 1e4 {dtype}", labels=False)
    # Two layers whose weights are scaled so that the pre-activations of each reach ±65. A float32 rounding of
    # such a z (about 65 · 6e-8) passes unattenuated through tanh or ELU near 0, so the error is measured
    # against the largest pre-activation rather than against the outputs, which may be of size 1.
    net = dp.Network([dp.Dense(4, 16, activation=act), dp.Dense(16, 3, activation=act)],
                     loss="mean_squared_error", dtype=dtype, seed=3)
    X = rng.normal(0.0, 1.0, (ROWS, 4)).astype(dtype)
    a = X.astype(np.float64)
    for layer in net.layers:
        layer.W[...] *= 65.0 / np.abs(a @ layer.W.T.astype(np.float64)).max()
        zl = a @ layer.W.T.astype(np.float64)
        assert 60.0 <= np.abs(zl).max() <= 70.0 and zl.min() < -30.0  # the test reaches what it claims
        a = layer.activation(zl)
    check_network(net, X, f"{_id(act)} scaled weights {dtype}", scale=65.0, labels=False)


def _relative(o, r):
    o, r = o.astype(np.float64), r.astype(np.float64)
    assert np.array_equal(o == 0, r == 0)
    nz = r != 0
    return float(np.max(np.abs(o[nz] - r[nz]) / np.abs(r[nz])))


@pytest.mark.parametrize("act", ["elu", {"name": "elu", "alpha": 0.7}, "softplus"], ids=_id)
def test_elu_and_softplus_near_zero_agree_elementwise(act):
    """float64: Kahan's expm1 and log1p forms against np.expm1/np.log1p, to a few units in the last place.

    ELU needs expm1 where |z| is tiny; softplus needs log1p(e^-|z|) where |z| is large.
    """
    tiny = np.geomspace(1e-300, 1e-1, 600)
    moderate = np.linspace(0.1, 40.0, 400)
    tail = np.linspace(40.0, 700.0, 300)  # e^-|z| from 4e-18 to 1e-304 (ELU beyond 708: the subnormal test below)
    z = np.concatenate([-tiny, tiny, [0.0], -moderate, moderate, -tail, tail])[:, None]
    net = _unit_net(act, "float64")
    ref = net.predict(z)
    alpha = net.layers[0].activation.get_config().get("alpha", 1.0)
    direct = (np.where(z > 0, z, alpha * np.expm1(np.minimum(z, 0.0))) if "elu" in _id(act)
              else np.log1p(np.exp(-np.abs(z))) + np.maximum(z, 0.0))
    assert _relative(ref, direct) <= TINY_TOL  # deltaprop computes the NumPy definition
    out = run_onnx(to_onnx(net), {"X": z})["output"]
    assert np.isfinite(out).all()
    err = _relative(out, ref)
    record("float64 elementwise near 0", err, f"{_id(act)} near 0", TINY_TOL)
    assert err <= TINY_TOL, f"{_id(act)}: elementwise relative error {err:.3g} > {TINY_TOL:g}"
    if "elu" in _id(act):  # where e^z rounds to 1, expm1(z) is z itself: exactly α z
        assert np.array_equal(out[np.abs(z) <= 1e-17], ref[np.abs(z) <= 1e-17])


SUBNORMAL_EXP = {"float32": (-103.9, -88.0), "float64": (-745.0, -709.0)}


@pytest.mark.parametrize("dtype", DTYPES)
def test_elu_where_exp_is_subnormal(dtype):
    low, high = SUBNORMAL_EXP[dtype]
    z = np.linspace(low, high, 200, dtype=dtype)[:, None]
    net = _unit_net("elu", dtype)
    assert_close(run_onnx(to_onnx(net), {"X": z})["output"], net.predict(z), f"elu subnormal e^z {dtype}")


# ============================================================================ 4. opsets
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opset", [13, 17, 18, 21])
def test_opsets(opset, dtype):
    net = _randomize(dp.Network(_every_kind(), loss="categorical_crossentropy", dtype=dtype, seed=7),
                     np.random.default_rng(7))
    proto = check_network(net, _inputs(net, np.random.default_rng(8)), f"opset {opset} {dtype}", opset=opset)
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", opset)]
    assert proto.ir_version == {13: 7, 17: 8, 18: 8, 21: 10}[opset]
    reductions = [n for n in proto.graph.node if n.op_type in ("ReduceMean", "ReduceMax")]
    assert {n.op_type for n in reductions} == {"ReduceMean", "ReduceMax"}  # LayerNorm's and softmax's
    for node in reductions:  # axes: an attribute before opset 18, an input from 18 on
        assert len(node.input) == (2 if opset >= 18 else 1), (opset, node)
        assert ("axes" in [a.name for a in node.attribute]) == (opset < 18)


@pytest.mark.parametrize("opset", [12, 22, 17.0, "17", True])
def test_other_opsets_are_refused(opset):
    net = dp.Network([dp.Dense(2, 2)], dtype="float64", seed=0)
    with pytest.raises(InvalidArgumentError, match=r"opset must be an int from 13 to 21, got"):
        to_onnx(net, opset=opset)


def test_a_network_has_one_input_matrix():
    net = dp.Network([dp.Dense(3, 2, activation="softmax")], dtype="float32", seed=0)
    proto = to_onnx(net)
    (x,), (y,) = proto.graph.input, proto.graph.output
    assert (x.name, x.type.tensor_type.elem_type, [d.dim_param or d.dim_value for d in x.type.tensor_type.shape.dim]) \
        == ("X", onnx.TensorProto.FLOAT, ["N", 3])
    assert (y.name, [d.dim_param or d.dim_value for d in y.type.tensor_type.shape.dim]) == ("output", ["N", 2])
    with pytest.raises(InvalidArgumentError, match="inputs='matrix'"):
        to_onnx(net, inputs="columns")
    with pytest.raises(InvalidArgumentError, match="inputs must be one of 'columns', 'matrix', got 'rows'"):
        to_onnx(net, inputs="rows")


# ============================================================================ 5. refusals and register_layer
class Cube(acts.Activation):
    """A user's own activation."""

    name = "onnx_test_cube"

    def forward(self, z, out):
        return np.power(z, 3, out=out)

    def derivative(self, z, a):
        return 3.0 * z * z


class MyReLU(acts.ReLU):
    """A subclass of a built-in activation: it keeps the name "relu" but may compute something else."""

    def forward(self, z, out):
        return np.maximum(z, 0.1 * z, out=out)


class MyDense(dp.Dense):
    """A subclass of a built-in layer."""


class Scale(dp_layers.Layer):
    """A user's own layer, ``y = s ⊙ x``."""

    def __init__(self, n_in=None):
        self.n_in = n_in

    def param_shapes(self):
        return {"s": (self.n_in,)}

    def initialize(self, rng):
        self.s[...] = 1.0 + 0.3 * rng.standard_normal(self.n_in)

    def forward(self, a_prev, training=False, rng=None, need_input_grad=True):
        return a_prev * self.s

    def backward(self, grad, need_input_grad=True):
        return grad * self.s

    def get_config(self):
        return {"type": "onnx_test_scale", "n_in": self.n_in}


@pytest.fixture
def registered():
    """Cube and Scale registered under their names for the test, then removed."""
    acts.register("onnx_test_cube", Cube)
    dp_layers.register("onnx_test_scale", Scale)
    yield
    acts.REGISTRY.pop("onnx_test_cube", None)
    dp_layers.REGISTRY.pop("onnx_test_scale", None)
    LAYER_CONVERTERS.pop(Scale, None)


def test_a_users_activation_is_refused_naming_it(registered):
    net = dp.Network([dp.Dense(3, 4, activation="tanh"), dp.Dense(4, 2, activation="onnx_test_cube")],
                     dtype="float64", seed=0)
    with pytest.raises(InvalidArgumentError, match=r"^layer 1: the activation 'onnx_test_cube' \(Cube\) has no "
                                                   r"exact ONNX form; deltaprop exports its built-in activations "
                                                   r"\(elu, gelu, .*\)"):
        to_onnx(net)
    nested = dp.Network([dp.Dense(3, 4), dp.Residual([dp.Dense(4, 4), dp.Activation("onnx_test_cube")]),
                         dp.Dense(4, 2)], dtype="float64", seed=0)
    with pytest.raises(InvalidArgumentError, match=r"^layer 1 \(Residual\) layer 1: the activation 'onnx_test_cube'"):
        to_onnx(nested)


def test_subclasses_of_built_in_parts_are_refused_never_exported_as_their_parent():
    relu = dp.Network([dp.Dense(3, 4, activation=MyReLU()), dp.Dense(4, 2)], dtype="float64", seed=0)
    z = np.linspace(-2.0, 2.0, 9)[:, None]
    assert not np.array_equal(MyReLU()(z), acts.ReLU()(z))  # exported as a ReLU, the file would predict otherwise
    with pytest.raises(InvalidArgumentError, match=r"^layer 0: the activation 'relu' \(MyReLU\) has no exact ONNX"):
        to_onnx(relu)
    dense = dp.Network([dp.Dense(3, 4), MyDense(4, 2)], dtype="float64", seed=0)
    with pytest.raises(InvalidArgumentError, match=r"^layer 1 \(MyDense\) has no ONNX converter, so the file could "
                                                   r"not predict what the model predicts; register one with "
                                                   r"deltaprop\.export\.register_layer\(MyDense, \.\.\.\)"):
        to_onnx(dense)


def _scale_converter(g, x, layer, dtype, where):
    return g.op("Mul", x, g.const(layer.s.copy(), "s"), hint="scaled")


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_users_layer_is_refused_until_register_layer(registered, dtype):
    net = dp.Network([dp.Dense(5, 6, activation="tanh"), dp.Residual([Scale(), dp.Dense(6, 6, activation="elu")]),
                      Scale(), dp.Dense(6, 3, activation="softmax")], loss="categorical_crossentropy", dtype=dtype,
                     seed=9)
    with pytest.raises(InvalidArgumentError, match=r"^layer 1 \(Residual\) layer 0 \(Scale\) has no ONNX converter"):
        to_onnx(net)
    register_layer(Scale, _scale_converter)
    rng = np.random.default_rng(9)
    proto = check_network(net, rng.normal(size=(ROWS, 5)).astype(dtype), f"user layer {dtype}")
    assert sum(n.op_type == "Mul" and n.output[0].startswith("scaled") for n in proto.graph.node) == 2


def test_register_layer_checks_its_arguments():
    with pytest.raises(InvalidArgumentError, match="register_layer takes a layer class and a callable converter"):
        register_layer(Scale(), _scale_converter)
    with pytest.raises(InvalidArgumentError, match="register_layer takes a layer class"):
        register_layer(Scale, "not callable")
    assert Scale not in LAYER_CONVERTERS


# ============================================================================ 6. export_onnx, files, no onnx
def test_export_onnx_is_a_lazy_attribute_of_the_package(tmp_path):
    code = ("import sys, deltaprop\n"
            "before = sorted(m for m in ('deltaprop.export', 'onnx', 'onnxruntime') if m in sys.modules)\n"
            "f = deltaprop.export_onnx\n"
            "print(before, f.__module__, 'onnx' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env_for(), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["[]", "deltaprop.export", "False"]  # onnx itself waits for the first export


def test_export_onnx_replaces_a_file_atomically(tmp_path):
    net = dp.Network([dp.Dense(3, 2, activation="softmax")], dtype="float64", seed=0)
    path = tmp_path / "m.onnx"
    path.write_bytes(b"an older file")
    proto = dp.export_onnx(net, path)
    assert path.read_bytes() == proto.SerializeToString()
    assert os.listdir(tmp_path) == ["m.onnx"]  # no temporary file left
    loaded = onnx.load(str(path))
    onnx.checker.check_model(loaded, full_check=True)
    X = np.random.default_rng(0).normal(size=(20, 3))
    assert_close(run_onnx(loaded, {"X": X})["output"], net.predict(X), "file")


def test_export_onnx_refuses_a_folder_and_keeps_the_old_file_when_refused(tmp_path, registered):
    net = dp.Network([dp.Dense(3, 2)], dtype="float64", seed=0)
    folder = tmp_path / "folder.onnx"
    folder.mkdir()
    with pytest.raises(SaveError):
        export_onnx(net, folder)
    assert folder.is_dir() and not any(folder.iterdir())
    path = tmp_path / "m.onnx"
    path.write_bytes(b"keep me")
    cube = dp.Network([dp.Dense(3, 2, activation="onnx_test_cube")], dtype="float64", seed=0)
    with pytest.raises(InvalidArgumentError, match="onnx_test_cube"):
        export_onnx(cube, path)
    assert path.read_bytes() == b"keep me"
    assert sorted(os.listdir(tmp_path)) == ["folder.onnx", "m.onnx"]


def test_without_onnx_the_error_says_how_to_install(monkeypatch, tmp_path):
    for name in ("onnx", "onnx.helper", "onnx.numpy_helper"):
        monkeypatch.setitem(sys.modules, name, None)  # `import onnx` raises ImportError
    net = dp.Network([dp.Dense(3, 2)], dtype="float64", seed=0)
    with pytest.raises(InvalidArgumentError, match=r"pip install 'deltaprop\[onnx\]'"):
        to_onnx(net)
    with pytest.raises(InvalidArgumentError, match=r"ONNX export needs the onnx package: pip install "
                                                   r"'deltaprop\[onnx\]' \(onnx and onnxruntime\)"):
        dp.export_onnx(net, tmp_path / "m.onnx")
    assert not os.listdir(tmp_path)
