"""The new layer kinds through every door: the command line, the estimators and the data contract.

A tabular ResNet (``--residual --norm batch``) and entity embeddings
(``--embed-categories``) must train, save, load and predict the same from
``deltaprop predict``, ``dp.load`` and the estimators, and a model file that
pairs category codes with a network that would read them as numbers is
refused. Comparisons are exact unless a tolerance is stated.
"""

import json
import warnings

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from sklearn.exceptions import ConvergenceWarning

import deltaprop as dp
from deltaprop.blocks import Residual
from deltaprop.embedding import Embedding
from deltaprop.errors import InvalidArgumentError, ModelFileError
from deltaprop.estimators import DeltapropClassifier, DeltapropRegressor
from deltaprop.norms import BatchNorm, LayerNorm
from deltaprop.tabular import DataContract, TabularModel, read_table

from test_cli import QUIET, fails, ok, run

pd = pytest.importorskip("pandas")
pytestmark = pytest.mark.usefixtures("one_blas_thread")  # tests/conftest.py


def _frame(n=400, seed=0):
    """A numeric column, two text columns (one with gaps) and a label that needs the categories."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"a": rng.standard_normal(n), "colour": rng.choice(list("rgbyk"), n),
                       "size": rng.choice(["s", "m", None], n)})
    y = np.where((df["a"] > 0) ^ (df["colour"] == "r"), "yes", "no")
    return df, y


# ------------------------------------------------------------- the contract
def test_codes_contract_gives_one_code_column_per_category_column():
    df, y = _frame()
    table = read_table(df.assign(y=y))
    onehot = DataContract.fit(table, "y")
    codes = DataContract.fit(table, "y", categories_as="codes")
    X = codes.inputs(table, np.float64)
    assert X.shape == (len(df), codes.n_inputs) == (len(df), 3)  # a, then colour's and size's codes
    dense, slots, sizes = onehot.schema.transform(table.without("y"), dtype=np.float64)
    assert_array_equal(X[:, :1], dense)     # the numeric block is the one-hot contract's
    assert_array_equal(X[:, 1:], slots)     # each code is the index of the active slot of its one-hot block
    assert codes.embedding_columns(4) == [(1, onehot.schema.sizes[0], 4), (2, onehot.schema.sizes[1], 4)]
    assert DataContract.from_state(codes.state()).categories_as == "codes"
    assert "categories_as" not in onehot.state()  # older readers of one-hot files see no change


def test_a_contract_refuses_a_network_that_would_read_codes_as_numbers():
    df, y = _frame()
    table = read_table(df.assign(y=y))
    codes = DataContract.fit(table, "y", categories_as="codes")
    plain = dp.Network.from_sizes([codes.n_inputs, 8, 1], loss="binary_crossentropy", seed=0)
    with pytest.raises(InvalidArgumentError, match="not an Embedding"):
        TabularModel(plain, codes)
    wrong = dp.Network.from_sizes([3, 8, 1], loss="binary_crossentropy", seed=0, embed=[(1, 99, 2), (2, 4, 2)])
    with pytest.raises(InvalidArgumentError, match="Embedding reads"):
        TabularModel(wrong, codes)
    onehot = DataContract.fit(table, "y")
    embedded = dp.Network.from_sizes([onehot.n_inputs, 8, 1], loss="binary_crossentropy", seed=0,
                                     embed=[(1, 2, 2)])
    with pytest.raises(InvalidArgumentError, match="gives no category codes"):
        TabularModel(embedded, onehot)


def test_unseen_categories_read_a_zero_embedding_row():
    df, y = _frame()
    table = read_table(df.assign(y=y))
    contract = DataContract.fit(table, "y", categories_as="codes", min_frequency=1)
    net = dp.Network.from_sizes([contract.n_inputs, 8, 1], loss="binary_crossentropy", seed=0,
                                embed=contract.embedding_columns(3))
    contract.silence_unused(net)
    for table_k, column in zip(net.layers[0].tables, contract.schema.categorical):
        assert column.n_rare == 0
        assert not table_k[column.other].any()   # the "other" row: zeros
        assert table_k[0].any()                  # a trained category's row: drawn


# ---------------------------------------------------------- the estimators
@pytest.mark.parametrize("kw", [dict(norm="batch"), dict(norm="layer"), dict(residual=True, norm="batch"),
                                dict(embed_categories=3), dict(embed_categories=2, residual=True, norm="layer",
                                                               dropout=0.1)])
def test_estimator_options_build_the_network_and_survive_a_file(tmp_path, kw):
    df, y = _frame()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = DeltapropClassifier(hidden_layer_sizes=(16, 16), epochs=40, learning_rate=0.01, random_state=0,
                                  early_stopping=True,
                                  **kw).fit(df, y)
    kinds = {type(layer) for layer in clf.network_.layers}
    if kw.get("residual"):
        assert Residual in kinds
    if kw.get("norm"):
        norm = BatchNorm if kw["norm"] == "batch" else LayerNorm
        assert any(isinstance(inner, norm) for layer in clf.network_.layers
                   for inner in getattr(layer, "layers", [layer]))
    assert (type(clf.network_.layers[0]) is Embedding) == ("embed_categories" in kw)
    assert clf.score(df, y) > 0.8  # it learned the rule that needs the categories
    path = tmp_path / "m.safetensors"
    clf.save(path)
    back = DeltapropClassifier.load(path)
    assert back.get_params()["norm"] == kw.get("norm") and back.get_params()["residual"] == kw.get("residual", False)
    assert_array_equal(back.predict_proba(df), clf.predict_proba(df))
    if kw.get("norm") == "batch":
        assert back.network_.buffers.size and np.array_equal(back.network_.buffers, clf.network_.buffers)


def test_estimator_option_errors_name_the_value():
    df, y = _frame(60)
    with pytest.raises(InvalidArgumentError, match="norm must be None, 'batch' or 'layer', got 'group'"):
        DeltapropClassifier(norm="group").fit(df, y)
    with pytest.raises(InvalidArgumentError, match="embed_categories"):
        DeltapropRegressor(embed_categories=0).fit(df, np.arange(60.0))
    with pytest.raises(InvalidArgumentError, match="batch_size"):  # 61 rows in batches of 60 leave one row
        DeltapropRegressor(norm="batch", batch_size=60, epochs=1).fit(_frame(61)[0], np.arange(61.0))


def test_warm_start_refuses_a_changed_norm():
    df, y = _frame(100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = DeltapropClassifier(hidden_layer_sizes=(8,), epochs=2, warm_start=True, random_state=0).fit(df, y)
        clf.set_params(norm="batch")
        with pytest.raises(InvalidArgumentError, match="norm"):
            clf.fit(df, y)


# ---------------------------------------------------------- the command line
@pytest.fixture(scope="module")
def table_csv(tmp_path_factory):
    folder = tmp_path_factory.mktemp("resnet")
    df, y = _frame(600, seed=1)
    df.assign(y=y).to_csv(folder / "t.csv", index=False)
    return folder


def test_cli_trains_a_tabular_resnet_with_embeddings_that_every_door_reads_alike(table_csv):
    out = table_csv / "r.safetensors"
    result = ok(run("train", "--data", "t.csv", "--target", "y", "--hidden", "32,32", "--residual", "--norm",
                    "batch", "--embed-categories", "3", "--epochs", "4", "--out", out.name, *QUIET, cwd=table_csv))
    assert "accuracy" in result.stdout
    model = dp.load(out)
    layers = model.network.layers
    assert isinstance(layers[0], Embedding) and sum(isinstance(layer, Residual) for layer in layers) == 2
    running_means = [layer.layers[0].running_mean for layer in layers if isinstance(layer, Residual)]
    assert all(np.any(m != 0) for m in running_means)  # trained running statistics were saved
    printed = ok(run("predict", out.name, "--data", "t.csv", cwd=table_csv)).stdout.split()
    assert_array_equal(printed[1:], model.predict(str(table_csv / "t.csv")))
    info = json.loads(ok(run("info", out.name, "--json", cwd=table_csv)).stdout)
    assert [layer["type"] for layer in info["layers"]][:3] == ["Embedding", "Dense", "Residual"]
    assert info["layers"][2]["layers"][0]["type"] == "BatchNorm"


def test_cli_embed_categories_without_categories_says_so(table_csv):
    result = ok(run("train", "--data", "t.csv", "--target", "y", "--features", "a", "--embed-categories", "3",
                    "--hidden", "4", "--epochs", "1", "--out", "n.safetensors", "--plot", "none", cwd=table_csv))
    assert "--embed-categories has nothing to embed" in result.stderr + result.stdout
    assert type(dp.load(table_csv / "n.safetensors").network.layers[0]).__name__ == "Dense"


def test_cli_rejects_a_bad_norm(table_csv):
    fails(run("train", "--data", "t.csv", "--norm", "group", "--out", "x.safetensors", cwd=table_csv), 2, "--norm")


def test_cli_gradcheck_checks_a_resnet_in_training_mode(table_csv):
    result = ok(run("gradcheck", "--hidden", "5,5", "--norm", "batch", "--residual", cwd=table_csv))
    assert "layers.0.gamma" in result.stdout and "training mode" in result.stdout
    assert result.stdout.strip().splitlines()[-1].startswith("passed")


def test_a_file_pairing_codes_with_a_plain_network_is_refused(table_csv, tmp_path):
    from safetensors.numpy import load_file, save_file
    from safetensors import safe_open

    src = table_csv / "r.safetensors"
    if not src.exists():
        ok(run("train", "--data", "t.csv", "--target", "y", "--hidden", "8", "--embed-categories", "2",
               "--epochs", "1", "--out", src.name, *QUIET, cwd=table_csv))
    with safe_open(str(src), "np") as f:
        meta = dict(f.metadata())
    contract = json.loads(meta["data_contract"])
    contract.pop("categories_as", None)  # now the file claims one-hot inputs for an Embedding network
    meta["data_contract"] = json.dumps(contract)
    bad = tmp_path / "bad.safetensors"
    save_file(load_file(str(src)), str(bad), metadata=meta)
    with pytest.raises(ModelFileError, match="inputs but the network has|gives no category codes"):
        dp.load(bad)
