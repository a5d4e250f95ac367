"""BLAS threads of a training run: a fixed count, or ``"auto"``, chosen by timing steps each epoch.

When another process holds a core, BLAS threads that spin while they wait
for each other can make a step several times slower than one thread would.
``"auto"`` times the first steps of every epoch, in blocks of steps
alternating 1 thread and every usable core (``os.sched_getaffinity``),
and runs the rest of the epoch with the count whose steps took less time in
all. Totals, not medians: the cost of spinning threads is rare long stalls
(the other process holds the core for a time slice), which a median hides.
The timed steps are real steps of the epoch: no work is repeated or thrown
away.

Results and thread count: with OpenBLAS 0.3.31 (Haswell kernels), the
float32 products (sgemm) round differently with 1 thread and with 2, so
float32 weights differ in the last bits between thread counts and, under
``"auto"``, depend on the machine's load; the float64 products (dgemm) and
the numba kernels gave identical weights in our probe. A run that must be
bit-reproducible gives a fixed count.

``fit(threads=...)``: None (the default) leaves the BLAS as it is, since a
library call should not change the process's global BLAS state unasked (the
command line's ``--threads`` sets it for a whole command); an int fixes the
count; ``"auto"`` chooses as above. With an int or ``"auto"``, each row of
the history records the epoch's count as ``"threads"``. ``"auto"`` is
refused for a data-parallel run (see :func:`check_threads`).

threadpoolctl sets the limits of the BLAS and OpenMP libraries already
loaded; :class:`ThreadControl` restores the previous limits when it closes,
also when the run fails.
"""

import os
import statistics
import time

from .errors import InvalidArgumentError

__all__ = ["check_threads", "usable_cpus", "ThreadControl"]

#: blocks timed per thread count at the start of an epoch under "auto" (alternating), and steps per block
TRIAL_BLOCKS = 3
BLOCK_STEPS = 4


def check_threads(threads, name="threads", processes=1):
    """``threads`` as None, an int >= 1 or ``"auto"``; an :class:`InvalidArgumentError` naming the value otherwise.

    ``"auto"`` is refused for a data-parallel run (``processes`` > 1): each
    process would time its own steps and could choose another count; give
    an int there (for example cores // processes per node).
    """
    if threads is None:
        return None
    raw = threads
    if isinstance(threads, str):
        if threads.strip().lower() == "auto":
            if processes > 1:
                raise InvalidArgumentError(f"{name}='auto' times steps on each process alone, so {processes} "
                                           f"processes could choose different counts; give an int with comm")
            return "auto"
        try:
            threads = int(threads.strip())
        except ValueError:
            pass
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise InvalidArgumentError(f"{name} must be a positive integer, 'auto' or None, got {raw!r}")
    return int(threads)


def usable_cpus():
    """The cores this process may run on (its affinity mask where the system has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class ThreadControl:
    """The BLAS thread count of one ``fit``: None (untouched), a fixed int, or ``"auto"``.

    Use as a context manager; the previous limits come back on exit.
    ``step(fn, *args)`` runs one training step, timing it while an epoch's
    trials are under way; ``begin_epoch()`` starts the trials of an epoch and
    ``current`` is the count in force (None when untouched).
    """

    def __init__(self, threads, blocks=TRIAL_BLOCKS, block_steps=BLOCK_STEPS):
        self.spec = threads
        self.blocks, self.block_steps = blocks, block_steps
        self.current = None
        self.choices = []  # one per epoch under "auto"
        self.times = {}  # under "auto": {count: [seconds of the current epoch's timed steps]}
        self._controller = None
        self._original = None
        self._plan = []
        self._warm = False

    def __enter__(self):
        if self.spec is None:
            return self
        from threadpoolctl import ThreadpoolController

        self._controller = ThreadpoolController()
        self._original = [(lib, lib.num_threads) for lib in self._controller.lib_controllers]
        if self.spec != "auto":
            self._set(self.spec)
        return self

    def __exit__(self, *exc):
        if self._original is not None:
            for lib, n in self._original:
                lib.set_num_threads(n)
            self._original = None
        return False

    def _set(self, n):
        if n != self.current:
            for lib in self._controller.lib_controllers:
                lib.set_num_threads(n)
            self.current = n

    def begin_epoch(self, steps):
        """Plan the timed steps of an epoch of ``steps`` steps (under "auto"; otherwise nothing)."""
        if self.spec != "auto":
            return
        most = usable_cpus()
        if most == 1:
            self._set(1)
            self._plan = []
            return
        free = steps - (0 if self._warm else 1)
        per = min(self.block_steps, free // 2)
        k = min(self.blocks, free // (2 * per)) if per else 0
        if k < 1:  # too few steps to compare: keep the last choice (all cores at first)
            self._set(self.current or most)
            self._plan = []
            return
        # alternate, starting with the count that lost last time; the first step of a run warms up untimed
        first, second = (most, 1) if self.current == 1 else (1, most)
        self._plan = ([None] if not self._warm else []) + ([first] * per + [second] * per) * k
        self.times = {1: [], most: []}

    def step(self, fn, *args):
        """``fn(*args)``: one step, timed at the planned thread count while the epoch's trials last."""
        if not self._plan:
            return fn(*args)
        n = self._plan.pop(0)
        if n is None:
            self._set(self.current or usable_cpus())
            self._warm = True
            return fn(*args)
        self._set(n)
        t0 = time.perf_counter()
        out = fn(*args)
        self.times[n].append(time.perf_counter() - t0)
        if not self._plan:
            self._choose()
        return out

    def _choose(self):
        means = {n: statistics.fmean(ts) for n, ts in self.times.items() if ts}
        self._set(min(means, key=lambda n: (means[n], n)))

    def end_epoch(self):
        """The epoch's history entry: ``{"threads": count}``, or ``{}`` when the BLAS is untouched."""
        if self._plan:  # the epoch ended during its trials (a stop or a short epoch): choose from what was timed
            self._plan = []
            if any(self.times.values()):
                self._choose()
        if self.spec == "auto":
            self.choices.append(self.current)
        return {} if self.current is None else {"threads": self.current}
