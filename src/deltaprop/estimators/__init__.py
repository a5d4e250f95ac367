r"""scikit-learn compatible estimators: :class:`DeltapropClassifier` and :class:`DeltapropRegressor`.

Drop-in replacements for scikit-learn's ``MLPClassifier`` and ``MLPRegressor``
backed by a :class:`deltaprop.Network` trained with
:func:`deltaprop.training.fit`, with what scikit-learn's MLP lacks: dropout,
class weights, every deltaprop activation (one per layer if wanted), Huber,
absolute-error and hinge losses, every deltaprop optimizer and schedule, the
validation loss curve, ``partial_fit`` together with early stopping, float32
training, and model files without pickle::

    from deltaprop.estimators import DeltapropClassifier
    clf = DeltapropClassifier(hidden_layer_sizes=(128, 64), dropout=0.2,
                              class_weight="balanced", early_stopping=True)
    clf.fit(X, y)
    clf.save("model.safetensors")
    clf = DeltapropClassifier.load("model.safetensors")

Raw tables work too: a pandas or polars DataFrame with text columns or
missing values (``categorical_features="from_dtype"``, as
``HistGradientBoostingClassifier``) goes through a
:class:`deltaprop.tabular.DataContract` fitted on the training rows, and a
scipy sparse matrix trains as it is, never densified::

    clf = DeltapropClassifier().fit(penguins.drop(columns="species"), penguins["species"])
    clf.predict(new_rows)  # columns by name; unseen categories and gaps are fine

Why these names: ``DeltapropClassifier`` says which library does the work;
an ``MLPClassifier`` of ours would shadow scikit-learn's in user code, in
``repr`` and in tracebacks, and its parameters are not all the same.

How scikit-learn's parameters map
---------------------------------
``learning_rate_init`` is ``learning_rate`` here (the step size η, as
everywhere in deltaprop), scikit-learn's ``learning_rate`` schedule is
``schedule`` (``"adaptive"`` included), ``solver``/``beta_1``/... are
``optimizer`` (a name or ``{"name": "sgd", "momentum": 0.9}``) and
``max_iter`` is ``epochs``: the number of passes over the data, never steps.

``alpha`` is scikit-learn's L2 term: each mini-batch objective is

.. math::
    L_B = \frac{Σ_{i∈B} w_i ℓ_i}{Σ_{i∈B} w_i} + \frac{α}{2\,Σ_{i∈B} w_i} Σ_l ‖W_l‖²

(``w_i = 1`` without sample weights, so the denominator is the batch size), so
the gradient of the weights gains ``(α / Σ_{i∈B} w_i) W`` (never the biases).
It is applied as the optimizer's coupled ``weight_decay``, reset before every
batch to ``α / Σ_{i∈B} w_i`` (:mod:`deltaprop.estimators._callbacks`).
deltaprop's squared error has no factor ½ (its gradient is
``2 (a - y) / n_out``), so the same ``alpha`` regularises half as strongly
relative to the data term as in ``MLPRegressor``.

ONNX: ``deltaprop.export_onnx(estimator, "model.onnx")`` writes what
``predict`` and ``predict_proba`` compute; inside a scikit-learn pipeline,
skl2onnx's ``to_onnx`` converts the estimators like any scikit-learn model
once :func:`register_skl2onnx` has registered their converters (see
:mod:`deltaprop.estimators._onnx`)::

    from deltaprop.estimators import register_skl2onnx
    register_skl2onnx()
    onx = skl2onnx.to_onnx(pipeline, initial_types=...)

Modules: ``_base`` (what both estimators share: parameters, fitting,
scikit-learn's ``n_iter_no_change`` rule, prediction), ``_inputs`` (what
``X`` becomes: arrays and sparse matrices as they are, DataFrames through a
data contract), ``_callbacks`` (the per-batch L2 and per-epoch hand-over, as
a training callback), ``_files`` (model files with the estimator's record),
``_classifier``, ``_regressor``, ``_onnx`` (skl2onnx's converters).

This package is the only one that imports scikit-learn (the ``sklearn``
extra); the core never does.
"""

try:
    import sklearn  # noqa: F401
    from sklearn.utils.validation import validate_data  # noqa: F401 - new in scikit-learn 1.6
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "deltaprop.estimators needs scikit-learn >= 1.6 (pip install 'deltaprop[sklearn]'); "
        f"importing it failed: {exc}"
    ) from None

from ._base import expected_failed_checks
from ._classifier import DeltapropClassifier
from ._onnx import register_if_loaded as _register_if_loaded
from ._onnx import register_skl2onnx
from ._regressor import DeltapropRegressor

__all__ = ["DeltapropClassifier", "DeltapropRegressor", "expected_failed_checks", "register_skl2onnx"]

_register_if_loaded()  # skl2onnx already imported: its converters cost nothing to register (never imports it)
