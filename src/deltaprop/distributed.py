"""Data-parallel training over MPI: one communicator, deterministic reductions.

Start ``N`` copies of a script (or of ``deltaprop train``) with
``mpiexec -n N``; each calls ``fit(..., comm=MPIComm())``. Every process (rank) holds the same network and the
same data; each global batch of ``m`` rows, ``lo:hi``, is cut into contiguous
shards ``r0:r1`` with ``r0 = lo + m·rank // N``; each rank computes the
gradient of its shard with the *global* batch's weights (``1/m`` or
``w_i / Σ_batch w``), so the sum over ranks is the gradient of the global
batch's mean loss:

    g = Σ_ranks Σ_{i in shard} s_i ∇ℓ_i,    s_i = 1/m  (or w_i / Σ w)

One call of :meth:`MPIComm.allreduce_sum` on the flat gradient array gives
every rank that ``g``, bit for bit the same on every rank, and every rank
applies the same optimizer step. Ranks with fewer rows (uneven shards, a
short last batch) or none at all (a batch smaller than ``N``) simply
contribute less: no rank waits for rows it does not have, and no row counts
twice.

Deterministic reduction
-----------------------
``MPI_Allreduce`` adds the ranks' arrays in an order that depends on the MPI
library, the message size and ``N``. :meth:`MPIComm.allreduce_sum` instead
fixes the order (``algorithm="ordered"``, the default): the array is cut into
``N`` segments; rank ``j`` receives segment ``j`` of every rank's array
(an all-to-all), adds them in rank order ``((x_0 + x_1) + x_2) + ...`` in
float64 and rounds the sum once to the array's dtype; an all-gather then
gives every rank every segment. That is a reduce-scatter plus an all-gather,
the same bytes as a ring all-reduce: ``2 (N-1)/N · P · itemsize`` per rank.
Hence:

- for a given ``N``, two runs give bit-identical weights, and all ranks hold
  bit-identical weights at every step;
- ``mpiexec -n 1`` is the single-process run itself (bit-identical);
- across different ``N`` the gradient differs only by how the per-sample
  terms are grouped inside each rank's matrix product before the exact-order
  float64 sum: a few units in the last place of the dtype per step, which
  training then carries along (see the README for measured sizes).

Bitwise equality across ``N`` would need the gradient of fixed,
``N``-independent chunks of each batch computed separately on every rank and
the chunk gradients summed in chunk order, which costs several times the
step (figures in ``benchmarks/results/design_notes.md``). Data parallelism exists to
be faster, so deltaprop does not pay that; a given ``N`` is reproducible bit
for bit instead.

Failures
--------
A rank that raises an uncaught exception prints it, then calls
``MPI_Abort``, which ends every rank (without this, the other ranks would
wait for it forever). Every collective call waits at most ``timeout`` seconds
(``DELTAPROP_MPI_TIMEOUT``, default 600) for the other ranks, then prints
which call timed out and aborts the job. A rank that dies outright (killed,
``os._exit``) is noticed by the launcher: MPICH's ``mpiexec`` (hydra) kills
the remaining ranks at once and exits with the dead rank's status.
"""

import json
import math
import os
import sys
import time

import numpy as np

from .errors import DeltapropError, InvalidArgumentError, InvalidTypeError, describe
from .run import data_difference
from .tensorfile import json_default

__all__ = ["MPIComm", "MPIUnavailableError", "launched_by_mpi", "ordered_sum", "DEFAULT_TIMEOUT"]

#: seconds a collective call waits for the other ranks before aborting the job
DEFAULT_TIMEOUT = 600.0

#: arrays of at most this many elements times ranks are all-gathered whole
#: instead of reduce-scattered (fewer messages; the same arithmetic)
_SMALL = 8192

_ALGORITHMS = ("ordered", "mpi")

#: seconds a waiting rank polls MPI back to back before it starts sleeping
_SPIN = 0.02
_yield = getattr(os, "sched_yield", lambda: None)

#: seconds a rank that aborts the job leaves the launcher to forward its output
_LAST_WORDS = 1.0


class MPIUnavailableError(DeltapropError, ImportError):
    """mpi4py (or the MPI library it loads) is not installed."""


def launched_by_mpi():
    """Whether this process is one of several started by an MPI launcher.

    Reads the environment that ``mpiexec``/``mpirun`` (MPICH/hydra, Intel MPI,
    Open MPI, PMIx) and Slurm's ``srun`` give each process; true when it says
    there is more than one process. Imports nothing.
    """
    for key in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"):
        value = os.environ.get(key, "")
        if value.isdigit() and int(value) > 1:
            return True
    if "SLURM_STEP_ID" in os.environ:
        value = os.environ.get("SLURM_STEP_NUM_TASKS", os.environ.get("SLURM_NTASKS", ""))
        if value.isdigit() and int(value) > 1:
            return True
    return False


def ordered_sum(parts, out, acc=None):
    """Sum ``parts[0] + parts[1] + ...`` in that order, in float64, rounded once into ``out``.

    Parameters
    ----------
    parts : ndarray of shape (N, k)
        One row per rank, float32 or float64.
    out : ndarray of shape (k,)
        Receives the sum, rounded to its dtype.
    acc : ndarray of shape (k,), float64, optional
        Workspace for the running sum (allocated when not given).

    Returns
    -------
    out

    Notes
    -----
    Every rank that calls this on the same rows gets the same bits: the
    order of the additions is fixed, not left to an MPI library.

    Two rows are added in their own dtype, in one pass: that sum is
    correctly rounded, and so is the float64 sum rounded once (the float64
    sum of two float32 numbers is exact, unless one is below 2^-29 of the
    other, too small then to move the rounded result), so both give the same
    bits.
    """
    n = parts.shape[0]
    if n == 1:
        np.copyto(out, parts[0], casting="same_kind")
        return out
    if n == 2 and out.dtype == parts.dtype:
        return np.add(parts[0], parts[1], out=out)
    if acc is None:
        acc = np.empty(parts.shape[1], dtype=np.float64)
    np.add(parts[0], parts[1], out=acc, dtype=np.float64)  # dtype: add in float64, not in the rows' dtype
    for row in parts[2:]:
        np.add(acc, row, out=acc)
    np.copyto(out, acc, casting="same_kind")
    return out


def _import_mpi():
    try:
        from mpi4py import MPI
    except ImportError as exc:  # mpi4py missing, or no MPI library for it to load
        raise MPIUnavailableError(
            f"data-parallel training needs mpi4py and an MPI library ({exc}); "
            "install them with: pip install 'deltaprop[mpi]'"
        ) from None
    except RuntimeError as exc:  # mpi4py >= 4 loads libmpi at run time
        raise MPIUnavailableError(
            f"mpi4py could not load an MPI library ({exc}); install one with: pip install mpich"
        ) from None
    return MPI


_hook = {"installed": False, "comm": None}


def _abort_on_uncaught(exc_type, exc, tb):
    """``sys.excepthook`` under MPI: print as usual, then end every rank."""
    _hook["previous"](exc_type, exc, tb)
    comm = _hook["comm"]
    if comm is not None and comm.size > 1:
        name = exc_type.__name__
        comm._say(f"stopped with {name}" + (f": {exc}" if str(exc) else "")
                  + f"; ending all {comm.size} ranks (MPI_Abort)")
        # Ctrl-C 130, SIGTERM 143 (deltaprop.errors.TrainingInterrupted says which), as a shell reports them
        comm.abort(128 + int(getattr(exc, "signum", None) or 2) if issubclass(exc_type, KeyboardInterrupt) else 1)


class MPIComm:
    """The MPI communicator that :func:`deltaprop.fit` trains through.

    Parameters
    ----------
    comm : mpi4py.MPI.Comm, optional
        Default ``MPI.COMM_WORLD``.
    timeout : float, optional
        Seconds any collective call waits for the other ranks before it
        prints which call timed out and aborts the job. Default: the
        environment variable ``DELTAPROP_MPI_TIMEOUT``, else 600.
    algorithm : {"ordered", "mpi"}, default "ordered"
        ``"ordered"``: reduce-scatter by all-to-all, rank-ordered float64
        sum, all-gather (deterministic, independent of the MPI library).
        ``"mpi"``: ``MPI_Allreduce`` in the array's dtype (the library's
        order and precision; kept for comparison).
    abort_on_error : bool, default True
        With more than one rank, install a ``sys.excepthook`` that aborts
        the job on an uncaught exception instead of leaving the other ranks
        waiting.

    Attributes
    ----------
    rank, size : int
    is_root : bool
        ``rank == 0``: the rank that writes checkpoints, model files and logs
        and shows progress.
    local_rank, local_size : int
        Position and count of the ranks on this machine (for choosing BLAS
        threads: ``cores // local_size``).
    reduce_seconds : float
        Seconds spent in :meth:`allreduce_sum`, waiting included.
    reduce_calls : int
    """

    def __init__(self, comm=None, timeout=None, algorithm="ordered", abort_on_error=True):
        MPI = _import_mpi()
        self.MPI = MPI
        self.comm = MPI.COMM_WORLD if comm is None else comm
        if not isinstance(self.comm, MPI.Comm):
            raise InvalidTypeError(f"comm must be an mpi4py communicator, got {describe(comm)}")
        if timeout is None:
            env = os.environ.get("DELTAPROP_MPI_TIMEOUT")
            try:
                timeout = DEFAULT_TIMEOUT if env in (None, "") else float(env)
            except ValueError:
                raise InvalidArgumentError(
                    f"DELTAPROP_MPI_TIMEOUT must be a number of seconds, got {env!r}"
                ) from None
            name = "DELTAPROP_MPI_TIMEOUT"
        else:
            name = "timeout"
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0 \
                or math.isnan(timeout):
            raise InvalidArgumentError(f"{name} must be a positive number of seconds, got {timeout!r}")
        if algorithm not in _ALGORITHMS:
            raise InvalidArgumentError(f"algorithm must be one of {_ALGORITHMS}, got {algorithm!r}")
        self.timeout = float(timeout)
        self.algorithm = algorithm
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        self.is_root = self.rank == 0
        local = self.comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank, self.local_size = local.Get_rank(), local.Get_size()
        local.Free()
        self.reduce_seconds = 0.0
        self.reduce_calls = 0
        self._bufs = {}
        self._position = None  # the run's position, for the timeout message (set by sync_run)
        if abort_on_error and self.size > 1:
            if not _hook["installed"]:
                _hook["previous"] = sys.excepthook
                sys.excepthook = _abort_on_uncaught
                _hook["installed"] = True
            _hook["comm"] = self

    def __repr__(self):
        return f"MPIComm(rank={self.rank}, size={self.size}, algorithm={self.algorithm!r})"

    # ---------------------------------------------------------- failures
    def _say(self, text):
        try:
            sys.stderr.write(f"deltaprop: rank {self.rank} of {self.size}: {text}\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass

    def abort(self, code=1):
        """End every rank of the job (``MPI_Abort``) with exit status ``code``.

        Waits ``_LAST_WORDS`` seconds first: the launcher kills every rank as
        soon as it hears of the abort, and drops what it has not yet
        forwarded of their output (this rank's message included).
        """
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        time.sleep(_LAST_WORDS)
        self.comm.Abort(int(code))

    def _wait(self, request, what):
        """Complete ``request``; abort the job after ``timeout`` seconds without progress.

        Each ``Test`` drives MPI's progress (large transfers over shared
        memory move a chunk per call), so the first ``_SPIN`` seconds poll
        back to back, yielding the core between polls to any rank that
        shares it; a longer wait (a rank writing a checkpoint) polls every
        0.2 ms at most, sleeping in between.
        """
        if request.Test():
            return
        start = time.monotonic()
        delay = 0.0
        while not request.Test():
            waited = time.monotonic() - start
            if waited < _SPIN:
                _yield()
                continue
            if waited > self.timeout:
                where = f" at {self._position()}" if self._position is not None else ""
                self._say(
                    f"no answer from the other ranks for {self.timeout:g} s in {what}{where}: a rank has died, "
                    f"hangs or left training early; ending the job (MPI_Abort). Set DELTAPROP_MPI_TIMEOUT "
                    f"to wait longer."
                )
                self.abort(1)
            delay = min(2e-4, delay * 2 if delay else 2e-5)
            time.sleep(delay)

    # -------------------------------------------------------- reductions
    def allreduce_sum(self, array):
        """Sum ``array`` over all ranks, in place, in a fixed order; returns it.

        ``array ← Σ_{r=0}^{N-1} array_r`` added in rank order in float64 and
        rounded once to the array's dtype, the same bits on every rank.

        Parameters
        ----------
        array : ndarray of shape (k,), float32 or float64, C-contiguous
        """
        if not isinstance(array, np.ndarray) or array.ndim != 1 or array.dtype not in (np.float32, np.float64) \
                or not array.flags.c_contiguous or not array.flags.writeable:
            raise InvalidTypeError(
                f"allreduce_sum needs a writable C-contiguous 1-D float32/float64 array, got {describe(array)}"
            )
        t0 = time.perf_counter()
        if self.size > 1 and array.size:
            if self.algorithm == "mpi":
                self._wait(self.comm.Iallreduce(self.MPI.IN_PLACE, array, op=self.MPI.SUM), "allreduce_sum")
            elif array.size * self.size <= _SMALL:
                self._allreduce_small(array)
            else:
                self._allreduce_segments(array)
        self.reduce_seconds += time.perf_counter() - t0
        self.reduce_calls += 1
        return array

    def _allreduce_small(self, array):
        parts = np.empty((self.size, array.size), dtype=array.dtype)
        self._wait(self.comm.Iallgather(array, parts), "allreduce_sum")
        ordered_sum(parts, array)

    def _segments(self, n):
        bounds = [n * j // self.size for j in range(self.size + 1)]
        counts = np.array([bounds[j + 1] - bounds[j] for j in range(self.size)], dtype=np.int64)
        return np.array(bounds[:-1], dtype=np.int64), counts

    def _allreduce_segments(self, array):
        key = (array.size, array.dtype.str)
        bufs = self._bufs.get(key)
        if bufs is None:
            displs, counts = self._segments(array.size)
            mine = int(counts[self.rank])
            recv = np.empty((self.size, mine), dtype=array.dtype)
            rdispls = np.arange(self.size, dtype=np.int64) * mine
            rcounts = np.full(self.size, mine, dtype=np.int64)
            acc = np.empty(mine, dtype=np.float64)
            bufs = self._bufs[key] = (displs, counts, recv, rcounts, rdispls, acc)
        displs, counts, recv, rcounts, rdispls, acc = bufs
        dt = self.MPI.FLOAT if array.dtype == np.float32 else self.MPI.DOUBLE
        # reduce-scatter: segment j of every rank's array goes to rank j ...
        self._wait(self.comm.Ialltoallv([array, (counts, displs), dt], [recv, (rcounts, rdispls), dt]),
                   "allreduce_sum (reduce-scatter)")
        lo = int(displs[self.rank])
        ordered_sum(recv, array[lo:lo + recv.shape[1]], acc)
        # ... which adds them in rank order; then every rank gets every segment.
        self._wait(self.comm.Iallgatherv(self.MPI.IN_PLACE, [array, (counts, displs), dt]),
                   "allreduce_sum (all-gather)")

    # ----------------------------------------------------------- broadcast
    def bcast(self, obj, root=0):
        """Rank ``root``'s ``obj`` on every rank, sent as JSON (no pickle).

        ``obj`` must be JSON-serialisable (NumPy scalars and arrays are
        turned into numbers and lists). Every rank, ``root`` included, gets
        the decoded copy, so all ranks hold equal values.
        """
        data = b""
        if self.rank == root:
            data = json.dumps(obj, default=json_default, allow_nan=True).encode("utf-8")
        n = np.array([len(data)], dtype=np.int64)
        self._wait(self.comm.Ibcast(n, root=root), "bcast")
        buf = bytearray(data) if self.rank == root else bytearray(int(n[0]))
        if n[0]:
            self._wait(self.comm.Ibcast([buf, self.MPI.BYTE], root=root), "bcast")
        return json.loads(buf.decode("utf-8"))

    def bcast_array(self, array, root=0, what="bcast_array"):
        """Overwrite ``array`` (C-contiguous) on every rank with rank ``root``'s, in place; returns it."""
        if array.size:
            self._wait(self.comm.Ibcast(array, root=root), what)
        return array

    def allgather(self, obj):
        """Every rank's ``obj`` (JSON-serialisable), as a list in rank order, on every rank."""
        data = json.dumps(obj, default=json_default, allow_nan=True).encode("utf-8")
        sizes = np.zeros(self.size, dtype=np.int64)
        self._wait(self.comm.Iallgather(np.array([len(data)], dtype=np.int64), sizes), "allgather")
        displs = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64)
        out = bytearray(int(sizes.sum()))
        self._wait(self.comm.Iallgatherv([bytearray(data), self.MPI.BYTE], [out, (sizes, displs), self.MPI.BYTE]),
                   "allgather")
        return [json.loads(bytes(out[d:d + s]).decode("utf-8")) for d, s in zip(displs, sizes)]

    def barrier(self):
        """Wait until every rank has called ``barrier``."""
        self._wait(self.comm.Ibarrier(), "barrier")

    # ------------------------------------------------------- run state
    def sync_run(self, run):
        """Make every rank's run state rank 0's; called once by ``fit`` before the first step.

        Checks first that every rank trains the same network with the same
        settings on the same data (:meth:`deltaprop.run.Run.fingerprint`:
        shapes, dtype and hashes of sampled rows and weights; else every rank
        raises the same :class:`InvalidArgumentError`), then broadcasts rank
        0's :meth:`~deltaprop.run.Run.state_dict` (parameters, optimizer
        state and step count, generator state, position and the epoch's
        order, history, running sums, learning rate, and the callbacks'
        state) and every rank loads it. Replicas can then never start apart
        (Horovod #672), whether the run is fresh, seeded differently on each
        rank, or resumed from a checkpoint.
        """
        everyone = self.allgather(run.fingerprint())
        for r, theirs in enumerate(everyone):
            if theirs != everyone[0]:
                diff = sorted(k for k in set(theirs) | set(everyone[0]) if theirs.get(k) != everyone[0].get(k))
                if "data" in diff and set(diff) <= {"data", "sample_weight", "class_weight"}:
                    how = data_difference(theirs.get("data"), everyone[0].get("data"))
                    raise InvalidArgumentError(
                        f"rank {r}'s data differs from rank 0's ({how}); every rank must load the same data"
                    )
                k = diff[0]
                raise InvalidArgumentError(
                    f"rank {r} trains something else than rank 0: {k} is {describe(theirs.get(k))} on rank {r} "
                    f"but {describe(everyone[0].get(k))} on rank 0; every rank must build the same network and "
                    f"load the same data with the same settings"
                )
        meta, arrays = run.state_dict() if self.is_root else (None, None)
        shapes = {name: [list(a.shape), a.dtype.str] for name, a in arrays.items()} if self.is_root else None
        meta, shapes = self.bcast([meta, shapes])
        received = {}
        for name, (shape, dtype) in shapes.items():
            buf = np.ascontiguousarray(arrays[name]) if self.is_root else np.empty(shape, dtype=np.dtype(dtype))
            received[name] = self.bcast_array(buf, what=f"sync_run ({name})")
        run.load_state_dict(meta, received)
        self._position = run.position
