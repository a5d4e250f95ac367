"""The estimators' network: built from their parameters, and read back as scikit-learn's ``coefs_``."""

from sklearn.utils.validation import check_is_fitted

from ..checks import check_bool, check_positive_int
from ..errors import InvalidArgumentError, describe
from ..layers import Dense
from ..model import Network


def check_layer_options(norm, residual, embed_categories):
    """``norm``, ``residual`` and ``embed_categories`` as the estimators take them (errors name the value)."""
    if norm not in (None, "batch", "layer"):
        raise InvalidArgumentError(f"norm must be None, 'batch' or 'layer', got {describe(norm)}")
    check_bool(residual, "residual")
    if embed_categories is not None:
        check_positive_int(embed_categories, "embed_categories")


def make_network(est, sizes, dtype, seed):
    """``Network.from_sizes`` with the estimator's activations, dropout, norms, residual blocks and output.

    With a data contract that gives category codes (``embed_categories``),
    the first layer is an Embedding over the contract's code columns.
    """
    out_activation, loss = est._output_spec()
    contract = getattr(est, "contract_", None)
    embed = None
    if contract is not None and contract.categories_as == "codes" and contract.schema.categorical:
        embed = contract.embedding_columns(est.embed_categories)
    return Network.from_sizes(sizes, activation=est.activation, output_activation=out_activation, loss=loss,
                              dropout=est.dropout, initializer=est.initializer, dtype=dtype, seed=seed,
                              norm=est.norm, residual=est.residual, embed=embed)


def plain_layers(est, name):
    """The layers of a plain MLP (Dense with biases alone, as scikit-learn's); AttributeError otherwise."""
    check_is_fitted(est, "network_")
    layers = est.network_.layers
    if not all(type(layer) is Dense and layer.bias for layer in layers):
        raise AttributeError(f"{name} describes a plain MLP (Dense layers alone, as scikit-learn's); this network "
                             f"has norms, residual blocks or embeddings: read network_.layers")
    return layers
