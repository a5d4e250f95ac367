"""The worked step (deltaprop.walkthrough): its numbers are deltaprop's own, its text shows them under their equations."""

import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import deltaprop as dp
from deltaprop import activations, losses
from deltaprop.cli import main
from deltaprop.errors import InvalidArgumentError, InvalidTypeError, UnknownNameError
from deltaprop.walkthrough import MAX_WIDTH, walkthrough

QUANTITIES = ("z", "a", "delta", "grad_W", "grad_b", "W_new", "b_new")


def network_step(w):
    """The same step taken through dp.Network: the walkthrough's weights, a batch of one, SGD with its η."""
    layers = [dp.Dense(s.W.shape[1], s.W.shape[0], activation=s.activation) for s in w.layers]
    net = dp.Network(layers, loss=w.loss, dtype="float64", seed=0)
    for layer, s in zip(net.layers, w.layers):
        layer.W[...] = s.W
        layer.b[...] = s.b
    X, Y = w.x[None, :], w.y[None, :]
    got = {"loss_before": net.loss_and_gradients(X, Y)}
    got["z"] = [layer.z[0].copy() for layer in net.layers]
    got["a"] = [layer.a[0].copy() for layer in net.layers]
    got["delta"] = [layer.grad_b.copy() for layer in net.layers]  # a batch of one: ∂L/∂b = δ
    got["grad_b"] = got["delta"]
    got["grad_W"] = [layer.grad_W.copy() for layer in net.layers]
    dp.SGD(learning_rate=w.learning_rate).step(net.params, net.grads)
    got["W_new"] = [layer.W.copy() for layer in net.layers]
    got["b_new"] = [layer.b.copy() for layer in net.layers]
    got["loss_after"] = net.loss(net.predict(X), Y)
    return got


def assert_same_step(w, atol=1e-15, rtol=0.0):
    got = network_step(w)
    for key in QUANTITIES:
        for s, value in zip(w.layers, got[key]):
            np.testing.assert_allclose(getattr(s, key), value, rtol=rtol, atol=atol, err_msg=f"{key}^({s.l})")
            # The walkthrough's own reference is this very step: bit for bit.
            np.testing.assert_array_equal(w.reference[key][s.l - 1], value, err_msg=f"reference {key}^({s.l})")
    for key in ("loss_before", "loss_after"):
        assert math.isclose(getattr(w, key), got[key], rel_tol=max(rtol, 1e-15), abs_tol=atol), key
        assert w.reference[key] == got[key], key
    assert w.max_difference <= atol + rtol * max(np.max(np.abs(s.grad_a)) for s in w.layers)


# ---------------------------------------------------------------- the numbers
@pytest.mark.parametrize("kwargs", [
    {},
    {"seed": 3},
    {"sizes": (3, 4, 4, 2), "activation": ["tanh", "relu"], "seed": 1},
    {"sizes": (2, 2), "output_activation": "identity", "seed": 2},
    {"output_activation": "softmax", "loss": "categorical_crossentropy"},
    {"sizes": (2, 3, 1), "output_activation": "sigmoid", "loss": "binary_crossentropy"},
])
def test_the_numbers_are_those_of_the_same_step_through_network(kwargs):
    assert_same_step(walkthrough(**kwargs))


def test_the_default_is_the_seeds_generic_rule_on_numbers_a_person_can_copy():
    w = walkthrough()
    assert w.sizes == [2, 3, 2] and not w.canonical and w.chain_delta is None
    out = w.layers[-1]
    np.testing.assert_array_equal(out.delta, out.grad_a * out.sigma_prime)     # δ^(L) = ∂L/∂a ⊙ σ'(z)
    np.testing.assert_array_equal(out.sigma_prime, out.a * (1 - out.a))
    for array in [w.x, w.y] + [s.W for s in w.layers] + [s.b for s in w.layers]:
        np.testing.assert_array_equal(array, np.round(array, 1))                # one decimal each
    assert w.loss_after < w.loss_before


def test_a_one_one_one_network_by_hand():
    """Every number of a 1-1-1 sigmoid network with squared error, worked out here with math.exp."""
    net = dp.Network([dp.Dense(1, 1, activation="sigmoid"), dp.Dense(1, 1, activation="sigmoid")],
                     loss="mean_squared_error", seed=0)  # float32: the walkthrough takes a float64 copy
    (W1, b1), (W2, b2) = (0.5, 0.25), (-0.75, 0.125)   # exact in float32
    for layer, (W, b) in zip(net.layers, [(W1, b1), (W2, b2)]):
        layer.W[...], layer.b[...] = W, b
    x, y, eta = 1.5, 0.25, 0.5
    w = walkthrough(network=net, x=[x], y=[y], learning_rate=eta)

    def sigmoid(z):
        return 1.0 / (1.0 + math.exp(-z))

    z1 = W1 * x + b1
    a1 = sigmoid(z1)
    z2 = W2 * a1 + b2
    a2 = sigmoid(z2)
    d2 = 2 * (a2 - y) * a2 * (1 - a2)                   # ∂L/∂a ⊙ σ'(z), L = (a - y)²
    d1 = W2 * d2 * a1 * (1 - a1)                        # (W^(2))ᵀ δ^(2) ⊙ σ'(z^(1))
    expected = {1: dict(z=z1, a=a1, delta=d1, grad_W=d1 * x, grad_b=d1, W_new=W1 - eta * d1 * x, b_new=b1 - eta * d1),
                2: dict(z=z2, a=a2, delta=d2, grad_W=d2 * a1, grad_b=d2, W_new=W2 - eta * d2 * a1,
                        b_new=b2 - eta * d2)}
    for s in w.layers:
        for key, value in expected[s.l].items():
            assert math.isclose(getattr(s, key).item(), value, rel_tol=1e-14), (s.l, key)
    assert math.isclose(w.loss_before, (a2 - y) ** 2, rel_tol=1e-14)
    new_a2 = sigmoid(expected[2]["W_new"] * sigmoid(expected[1]["W_new"] * x + expected[1]["b_new"])
                     + expected[2]["b_new"])
    assert math.isclose(w.loss_after, (new_a2 - y) ** 2, rel_tol=1e-13)
    assert net.layers[0].W[0, 0] == W1 and net.dtype == np.float32  # the network given is left as it was


# -------------------------------------------------------------------- the text
LABELS = ["z^(1) = W^(1) a^(0) + b^(1)", "a^(1) = σ(z^(1))", "z^(2) = W^(2) a^(1) + b^(2)", "a^(2) = σ(z^(2))",
          "L = ℓ(a^(2), y)", "∂L/∂a^(2)", "δ^(2) = ∂L/∂a^(2) ⊙ σ'(z^(2))", "δ^(1) = ((W^(2))ᵀ δ^(2)) ⊙ σ'(z^(1))",
          "∂L/∂W^(2) = δ^(2) (a^(1))ᵀ", "∂L/∂W^(1) = δ^(1) (a^(0))ᵀ", "∂L/∂b^(2) = δ^(2)", "∂L/∂b^(1) = δ^(1)",
          "W^(1) ← W^(1) − η ∂L/∂W^(1)", "b^(2) ← b^(2) − η ∂L/∂b^(2)", "loss before → after",
          "checked against deltaprop.Network: max difference"]


def _stored(w, digits):
    """Every stored number rounded as the text shows it."""
    arrays = [w.x, w.y] + [getattr(s, k) for s in w.layers for k in ("W", "b", "z", "a", "sigma_prime", "grad_a",
                                                                          "delta", "grad_W", "grad_b", "W_new",
                                                                          "b_new")]
    return {float(f"{v:.{digits}g}") for array in arrays for v in np.ravel(array)}


@pytest.mark.parametrize("digits", [2, 4, 7])
def test_the_text_shows_each_equation_with_the_stored_numbers(digits):
    w = walkthrough(digits=digits)
    text = w.text()
    for label in LABELS:
        assert label in text, label
    stored = _stored(w, digits)
    shown = [float(v) for block in re.findall(r"\[([^\]]*)\]", text) for v in block.split()]
    assert len(shown) > 60
    assert set(shown) <= stored                                   # every number shown is a stored one, rounded
    assert stored <= set(shown)                                   # and every stored number is shown
    before, after = re.search(r"loss before → after: (\S+) → (\S+)", text).groups()
    assert (float(before), float(after)) == (float(f"{w.loss_before:.{digits}g}"), float(f"{w.loss_after:.{digits}g}"))
    assert f"max difference {w.max_difference:.1e}" in text
    assert str(w) == text and w.text(digits=digits + 1) != text


def test_the_text_aligns_the_rows_of_each_matrix():
    text = walkthrough().text()
    block = text.split("z^(1) = W^(1) a^(0) + b^(1)\n")[1].splitlines()[:3]
    assert len({line.index("[") for line in block}) == 1 and len({line.index("]") for line in block}) == 1
    assert block[1].lstrip().startswith("= [")


# ------------------------------------------------------- every activation and loss
@pytest.mark.parametrize("loss", sorted(losses.REGISTRY))
@pytest.mark.parametrize("output", sorted(activations.REGISTRY))
def test_every_output_activation_and_loss(output, loss):
    w = walkthrough(output_activation=output, loss=loss, seed=4)
    assert_same_step(w, atol=1e-15, rtol=1e-14)
    canonical = losses.is_canonical_pair(activations.get(output), losses.get(loss))
    assert w.canonical == canonical and ("canonical pair" in w.text()) == canonical
    if canonical:  # the seed's rule and the fused delta agree up to rounding
        np.testing.assert_allclose(w.chain_delta, w.layers[-1].delta, rtol=0, atol=1e-15)


@pytest.mark.parametrize("hidden", sorted(activations.REGISTRY))
def test_every_hidden_activation(hidden):
    w = walkthrough(sizes=(3, 3, 3, 2), activation=hidden, seed=5)
    assert_same_step(w, rtol=1e-14)
    label = "δ^(2) = (J^(2))ᵀ ((W^(3))ᵀ δ^(3))" if hidden == "softmax" else "δ^(2) = ((W^(3))ᵀ δ^(3)) ⊙ σ'(z^(2))"
    assert label in w.text()


def test_softmax_with_crossentropy_shows_the_fused_delta_and_why():
    w = walkthrough(output_activation="softmax", loss="categorical_crossentropy", y=1)
    out, text = w.layers[-1], w.text()
    np.testing.assert_array_equal(w.y, [0.0, 1.0])
    np.testing.assert_array_equal(out.delta, out.a - w.y)                       # δ^(L) = a − y, exactly
    np.testing.assert_array_equal(out.sigma_prime, np.diag(out.a) - np.outer(out.a, out.a))
    np.testing.assert_allclose(w.chain_delta, out.sigma_prime.T @ out.grad_a, rtol=0, atol=0)
    for phrase in ("δ^(2) = (J^(2))ᵀ ∂L/∂a^(2)", "J^(2) = ∂a^(2)/∂z^(2) = diag(a^(2)) − a^(2) (a^(2))ᵀ",
                   "canonical pair", "cancels", "δ^(2) = a^(2) Σ_j y_j − y"):
        assert phrase in text, phrase


def test_softmax_without_its_loss_goes_through_the_jacobian():
    w = walkthrough(output_activation="softmax", loss="mean_squared_error")
    out = w.layers[-1]
    assert not w.canonical and not out.elementwise
    np.testing.assert_array_equal(out.delta, out.sigma_prime.T @ out.grad_a)
    assert "(softmax is not elementwise" in w.text() and "canonical" not in w.text()


# ------------------------------------------------------------------- arguments
def test_the_same_seed_gives_the_same_step_and_another_seed_another():
    a, b, c = walkthrough(seed=7), walkthrough(seed=7), walkthrough(seed=8)
    assert a.text() == b.text() and a.text() != c.text()
    given = walkthrough(seed=7, x=[0.5, -0.5])
    np.testing.assert_array_equal(given.y, a.y)  # giving x does not change the draws of y
    np.testing.assert_array_equal(given.layers[0].W, a.layers[0].W)
    assert "x given" in given.source and "W, b and y drawn with seed 7" in given.source


@pytest.mark.parametrize("kwargs, error, fragment", [
    ({"learning_rate": 0}, InvalidArgumentError, "learning_rate"),
    ({"digits": 0}, InvalidArgumentError, "digits"),
    ({"digits": 18}, InvalidArgumentError, "at most 17"),
    ({"seed": -1}, InvalidArgumentError, "seed"),
    ({"sizes": 3}, InvalidTypeError, "sizes"),
    ({"sizes": (2, MAX_WIDTH + 1, 2)}, InvalidArgumentError, "at most"),
    ({"sizes": (2,) * 9}, InvalidArgumentError, "at most"),
    ({"x": [1.0, 2.0, 3.0]}, dp.DataError, "x"),
    ({"x": [[1.0, 2.0], [3.0, 4.0]]}, InvalidArgumentError, "one sample"),
    ({"x": [1.0, float("nan")]}, dp.DataError, "x"),
    ({"loss": "categorical_crossentropy", "output_activation": "softmax", "y": 2}, dp.DataError, "class index 2"),
    ({"y": [[0.1, 0.2], [0.3, 0.4]]}, InvalidArgumentError, "one sample"),
    ({"activation": "nope"}, UnknownNameError, "nope"),
    ({"network": "net"}, InvalidTypeError, "network"),
])
def test_bad_arguments_fail_with_a_message_that_names_them(kwargs, error, fragment):
    with pytest.raises(error, match=re.escape(fragment)):
        walkthrough(**kwargs)


@pytest.mark.parametrize("layers", [
    [dp.Dense(2, 3, activation="relu", dropout=0.5), dp.Dense(3, 1)],
    [dp.Dense(2, 3, bias=False), dp.Dense(3, 1)],
    [dp.Dense(2, 3), dp.LayerNorm(), dp.Dense(3, 1)],
])
def test_a_network_it_cannot_follow_is_refused(layers):
    with pytest.raises(InvalidArgumentError, match="Dense layers with a bias and without dropout"):
        walkthrough(network=dp.Network(layers, seed=0))


def test_to_dict_holds_every_number_in_full():
    w = walkthrough(output_activation="softmax", loss="cce")
    d = json.loads(json.dumps(w.to_dict()))
    assert d["sizes"] == [2, 3, 2] and d["activations"] == ["sigmoid", "softmax"] and d["canonical"]
    assert d["loss"] == "categorical_crossentropy" and d["learning_rate"] == 0.5
    for s, layer in zip(w.layers, d["layers"]):
        assert layer["l"] == s.l
        for key in ("W", "z", "delta", "grad_W", "W_new", "sigma_prime"):
            np.testing.assert_array_equal(np.array(layer[key]), getattr(s, key))
    assert d["loss_before"] == w.loss_before and d["max_difference"] == w.max_difference


# ------------------------------------------------------------------ the command
def test_the_command_prints_the_text(capsys):
    assert main(["walkthrough"]) == 0
    assert capsys.readouterr().out == walkthrough().text() + "\n"


def test_the_command_options_reach_the_function(capsys):
    argv = ["walkthrough", "--sizes", "3,2,2", "--activation", "tanh", "--learning-rate", "0.1", "--seed", "2",
            "--digits", "6", "--x", "0.5,-1,2", "--y", "0.25,0.75"]
    assert main(argv) == 0
    expected = walkthrough((3, 2, 2), activation="tanh", learning_rate=0.1, seed=2, digits=6, x=[0.5, -1, 2],
                           y=[0.25, 0.75])
    assert capsys.readouterr().out == expected.text() + "\n"


def test_a_loss_alone_brings_its_matching_output_activation(capsys):
    assert main(["walkthrough", "--loss", "cce", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["activations"] == ["sigmoid", "softmax"] and d["canonical"]
    assert d == json.loads(json.dumps(walkthrough(output_activation="softmax", loss="cce").to_dict()))
    assert main(["walkthrough", "--loss", "mse", "--output-activation", "tanh", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["activations"] == ["sigmoid", "tanh"]


@pytest.mark.parametrize("argv, fragment", [
    (["--sizes", "2,x"], "--sizes must be layer sizes"),
    (["--sizes", "2"], "--sizes must list"),
    (["--sizes", "2,40,2"], "at most"),
    (["--activation", "nope"], "unknown activation 'nope'"),
    (["--activation", "relu,tanh"], "--activation has 2 names for 1 hidden layers"),
    (["--output-activation", "nope"], "unknown activation 'nope'"),
    (["--loss", "nope"], "unknown loss 'nope'"),
    (["--learning-rate", "0"], "--learning-rate must be a number > 0"),
    (["--learning-rate", "fast"], "--learning-rate"),
    (["--seed", "-1"], "--seed"),
    (["--digits", "30"], "--digits must be at most 17"),
    (["--x", "1,2,3"], "x has 3 features"),
    (["--y", "a"], "--y"),
    (["--loss", "cce", "--y", "7"], "class index 7"),
    (["--bogus"], "unrecognized arguments"),
])
def test_bad_options_are_one_line_usage_errors(argv, fragment, capsys):
    assert main(["walkthrough", *argv]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("deltaprop: error:") and fragment in lines[0], captured.err
    assert captured.out == ""


def test_help_shows_examples(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["walkthrough", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "deltaprop walkthrough --loss categorical_crossentropy" in out


def test_python_m_deltaprop_walkthrough():
    result = subprocess.run([sys.executable, "-m", "deltaprop", "walkthrough", "--sizes", "1,1,1", "--x", "1",
                             "--y", "0"], capture_output=True, text=True, encoding="utf-8", timeout=120,
                            env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    assert result.returncode == 0, result.stderr
    assert "δ^(1) = ((W^(2))ᵀ δ^(2)) ⊙ σ'(z^(1))" in result.stdout
    assert result.stdout.rstrip().splitlines()[-1].startswith("  checked against deltaprop.Network")
