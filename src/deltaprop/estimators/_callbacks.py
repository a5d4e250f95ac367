r"""scikit-learn's per-batch L2 term and per-epoch stopping rule, plugged into deltaprop's training loop.

:func:`deltaprop.training.fit` knows nothing of scikit-learn's ``alpha`` or
``n_iter_no_change``; the estimators hand it one callback,
:class:`SklearnBatchL2AndStopping`, that does both. It knows no estimator
class either: it calls back the one it is given.
"""

from ..callbacks import Callback

__all__ = ["SklearnBatchL2AndStopping"]


class SklearnBatchL2AndStopping(Callback):
    r"""Before every batch, weight decay ``α / Σ_{i∈B} w_i``; after every epoch, the estimator's stopping rule.

    scikit-learn's L2 term (see :mod:`deltaprop.estimators`) is
    ``α / (2 Σ_{i∈B} w_i) Σ_l ‖W_l‖²`` per batch, whose gradient is the
    optimizer's coupled weight decay with ``weight_decay = α / Σ_{i∈B} w_i``:
    it changes with every batch's weight sum, so it is set just before each
    step. After each epoch the epoch's logs go to
    ``estimator._end_epoch(run, logs, incremental)``, which records the curves
    and applies scikit-learn's ``n_iter_no_change`` rule; True stops the run.

    Parameters
    ----------
    estimator : the estimator being fitted
        Anything with ``_end_epoch(run, logs, incremental) -> bool``.
    alpha : float
        scikit-learn's L2 strength (``>= 0``).
    decoupled : bool
        The optimizer applies its own decoupled decay (AdamW): its
        ``weight_decay`` is left alone (``alpha`` is 0 then).
    equal_weights : ndarray of shape (n_samples,) or None
        The training rows' weights when they are all equal, and so were not
        handed to the loop (which then takes plain means and has no ``Σw``
        of its own); None when the loop has the weights, or there are none.
    incremental : bool
        ``partial_fit`` (passed on to ``_end_epoch``).

    Attributes
    ----------
    final_step : int or None
        ``run.step`` when the run ended: the schedule's clock for the next call.
    """

    def __init__(self, estimator, alpha, decoupled, equal_weights, incremental):
        self.estimator = estimator
        self.alpha = alpha
        self.decoupled = decoupled
        self.equal_weights = equal_weights
        self.incremental = incremental
        self.final_step = None

    def _batch_weight(self, run, b):
        """``Σ_{i∈B} w_i`` of batch ``b`` (its size without weights)."""
        lo = b * run.batch_size
        hi = min(lo + run.batch_size, run.batches.n)
        if self.equal_weights is None:
            return run.batches.weight_sum(lo, hi)  # the loop's own sum, over the epoch's order
        # All rows weigh the same, so any hi - lo of them give the batch's sum.
        return float(self.equal_weights[:hi - lo].sum())

    def _set_weight_decay(self, run, value):
        # The estimator's one write to the optimizer's weight_decay. A plain
        # assignment rather than optimizer.configure(): it runs before every
        # step, and the value is valid by construction (alpha was checked >= 0
        # and every batch has Σw > 0, rows of weight 0 being left out).
        run.optimizer.weight_decay = value

    def _decay_for_batch(self, run, b):
        if self.alpha and b < run.batches_per_epoch:
            self._set_weight_decay(run, self.alpha / self._batch_weight(run, b))

    def on_train_begin(self, run):
        if not self.alpha and not self.decoupled:
            self._set_weight_decay(run, 0.0)  # no L2 (a decay left from an earlier alpha goes)

    def on_epoch_begin(self, run, epoch):
        self._decay_for_batch(run, run.batch)

    def on_batch_end(self, run, batch, logs):
        self._decay_for_batch(run, batch + 1)

    def on_epoch_end(self, run, epoch, logs):
        if self.estimator._end_epoch(run, logs, self.incremental):
            run.stop_training = True

    def on_train_end(self, run):
        self.final_step = run.step
