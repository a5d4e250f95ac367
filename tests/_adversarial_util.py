"""Helpers of ``tests/test_adversarial.py``: run the command in a child, watch it, and check what it left.

:func:`cli` runs ``python -m deltaprop ...`` in a child process and gives
back its exit status, standard output and error, the child's own peak
resident memory and
whether it had to be killed (a time limit, or a resident-memory ceiling
watched through ``/proc`` so that a runaway child cannot take the machine).
The peak is the child's ``VmHWM`` (which exec resets) sampled every 10 ms;
``ru_maxrss`` of ``os.wait4`` would include the forking test process's own
resident memory.
:func:`named_error` checks the one-line error contract; :func:`snapshot`
hashes every file under a folder so that a case can say "nothing changed".
:func:`write_raw` writes a safetensors file byte by byte from tensors and a
metadata map, with no validation of its own (the hostile files are built
with it, so that a stricter writer in the library does not stop a test from
making them).
"""

import hashlib
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"

#: a child's peak resident memory above this is a failure (an idle ``python -m deltaprop`` with NumPy and
#: scikit-learn loaded is about 150 MiB here)
MEMORY_LIMIT_MIB = 600
#: a child resident above this is killed at once (it would fail the case anyway)
KILL_ABOVE_MIB = 1500
#: seconds a command may take before it counts as a hang
TIME_LIMIT = 60


def env_for(extra=None):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(SRC) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["OMP_NUM_THREADS"] = "1"
    env["OPENBLAS_NUM_THREADS"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("DELTAPROP_DEBUG", None)
    env.update(extra or {})
    return env


@dataclass
class Result:
    """What a child did: ``returncode`` (negative: killed by that signal), its output, peak memory, limits hit."""

    args: list
    returncode: int
    stdout: str
    stderr: str
    maxrss_mib: float
    timed_out: bool
    memory_killed: bool

    def describe(self):
        return (f"deltaprop {' '.join(map(str, self.args))}\nexit {self.returncode}, peak {self.maxrss_mib:.0f} MiB"
                f"{', TIMED OUT' if self.timed_out else ''}{', KILLED FOR MEMORY' if self.memory_killed else ''}"
                f"\nstdout (tail):\n{self.stdout[-1500:]}\nstderr (tail):\n{self.stderr[-3000:]}")


def _memory_mib(pid):
    """``(VmRSS, VmHWM)`` of a live child in MiB, from /proc (zeros when it is gone)."""
    found = {"VmRSS:": 0.0, "VmHWM:": 0.0}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key = line.split(":", 1)[0] + ":"
                if key in found:
                    found[key] = int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return found["VmRSS:"], found["VmHWM:"]


def spawn(*args, cwd, stdin=None, env=None, file_size_limit=None):
    """Start ``python -m deltaprop ARGS`` (stdout and stderr to files); returns ``(Popen, out path, err path)``."""
    folder = tempfile.mkdtemp(prefix="deltaprop-adv-io-")
    out_path, err_path = os.path.join(folder, "stdout"), os.path.join(folder, "stderr")
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "deltaprop", *map(str, args)], cwd=cwd, env=env_for(env),
                                stdin=subprocess.DEVNULL if stdin is None else stdin, stdout=out, stderr=err,
                                preexec_fn=None if file_size_limit is None else _FileSizeLimit(file_size_limit))
    return proc, out_path, err_path


class _FileSizeLimit:
    """A ``preexec_fn`` that sets RLIMIT_FSIZE (CPython ignores SIGXFSZ, so a write past it fails with EFBIG)."""

    def __init__(self, limit):
        self.limit = limit

    def __call__(self):
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (self.limit, self.limit))


def finish(proc, out_path, err_path, args, timeout=TIME_LIMIT):
    """Wait for ``proc`` (killing it past ``timeout`` seconds or ``KILL_ABOVE_MIB``); returns a :class:`Result`."""
    deadline = time.monotonic() + timeout
    timed_out = memory_killed = False
    status = rusage = None
    peak = 0.0
    while True:
        pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        rss, hwm = _memory_mib(proc.pid)
        peak = max(peak, hwm, rss)
        if time.monotonic() > deadline:
            timed_out = True
        elif rss > KILL_ABOVE_MIB:
            memory_killed = True
        if timed_out or memory_killed:
            proc.kill()
            _, status, rusage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.01)
    proc.returncode = os.waitstatus_to_exitcode(status)
    with open(out_path, "rb") as f:
        stdout = f.read().decode("utf-8", "replace")
    with open(err_path, "rb") as f:
        stderr = f.read().decode("utf-8", "replace")
    for p in (out_path, err_path):
        os.unlink(p)
    os.rmdir(os.path.dirname(out_path))
    # The child's VmHWM (reset by exec) sampled every 10 ms is its peak; ru_maxrss of wait4 would also
    # count the forking test process's resident memory, so it is only the fallback for a child too quick to sample.
    if peak == 0.0:
        peak = rusage.ru_maxrss / 1024
    return Result(list(args), proc.returncode, stdout, stderr, peak, timed_out, memory_killed)


def cli(*args, cwd, timeout=TIME_LIMIT, stdin=None, env=None, file_size_limit=None):
    """Run ``python -m deltaprop ARGS`` in ``cwd`` and wait; a :class:`Result`.

    ``stdin`` is an open file (default: /dev/null). ``file_size_limit``
    (bytes) sets the child's RLIMIT_FSIZE: a write past it fails with EFBIG,
    the way a full disk fails a write part-way.
    """
    proc, out_path, err_path = spawn(*args, cwd=cwd, stdin=stdin, env=env, file_size_limit=file_size_limit)
    return finish(proc, out_path, err_path, args, timeout)


def bounded(result, memory_mib=MEMORY_LIMIT_MIB):
    """The child ended by itself within the time limit and peak memory."""
    assert not result.timed_out, "no answer within the time limit\n" + result.describe()
    assert not result.memory_killed, f"killed above {KILL_ABOVE_MIB} MiB resident\n" + result.describe()
    assert result.maxrss_mib < memory_mib, f"peak memory {result.maxrss_mib:.0f} MiB >= {memory_mib}\n" + \
        result.describe()


def ok(result, memory_mib=MEMORY_LIMIT_MIB):
    """Exit 0, no traceback, bounded."""
    bounded(result, memory_mib)
    assert result.returncode == 0, result.describe()
    assert "Traceback" not in result.stderr, result.describe()
    return result


def named_error(result, statuses=(1, 2), fragments=(), memory_mib=MEMORY_LIMIT_MIB):
    """Exactly one line on stderr, ``deltaprop: error: ...`` (not an internal error), no traceback, a status
    in ``statuses``, each of ``fragments`` in the line, and the child bounded in time and memory; the line."""
    bounded(result, memory_mib)
    assert "Traceback" not in result.stderr, result.describe()
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"{len(lines)} lines on stderr, expected one error line\n" + result.describe()
    line = lines[0]
    assert not line.startswith("deltaprop: internal error:"), "hostile input gave an internal error\n" + \
        result.describe()
    assert line.startswith("deltaprop: error: "), result.describe()
    assert result.returncode in statuses, f"exit {result.returncode}, expected one of {statuses}\n" + \
        result.describe()
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in the error line\n" + result.describe()
    return line


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def snapshot(folder):
    """``{relative path: sha256}`` of every regular file under ``folder`` (symlinks as ``-> target``)."""
    folder = Path(folder)
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            out[rel] = sha256(path)
    return out


# ------------------------------------------------------------------ raw model files
_DTYPES = {"float32": "F32", "float64": "F64", "int64": "I64", "int32": "I32", "uint8": "U8", "float16": "F16"}


def read_model(path):
    """``(tensors, metadata)`` of a valid model file (through deltaprop's own reader)."""
    from deltaprop.tensorfile import read_file

    tensors, metadata = read_file(path)
    return {k: np.array(v) for k, v in tensors.items()}, dict(metadata)


def write_raw(path, tensors, metadata):
    """Write a safetensors file from ``tensors`` and ``metadata`` as given, checking nothing."""
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        raw = a.astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": _DTYPES[a.dtype.name], "shape": list(a.shape), "data_offsets": [offset,
                                                                                                offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    header["__metadata__"] = metadata
    text = json.dumps(header, allow_nan=True).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))
    return path


def with_metadata(src, dst, **entries):
    """A copy of model file ``src`` at ``dst`` with metadata entries replaced (a value of None removes one)."""
    tensors, metadata = read_model(src)
    for key, value in entries.items():
        if value is None:
            metadata.pop(key, None)
        else:
            metadata[key] = value
    return write_raw(dst, tensors, metadata)


def with_config(src, dst, **changes):
    """A copy of ``src`` whose stored training configuration has ``changes``."""
    _, metadata = read_model(src)
    config = json.loads(metadata["config"])
    config.update(changes)
    return with_metadata(src, dst, config=json.dumps(config))


def deep_list(depth):
    return "[" * depth + "]" * depth


def deep_dict(depth):
    return '{"a":' * depth + "1" + "}" * depth


def wait_for(predicate, proc, seconds=60):
    """Poll ``predicate()`` until true, the child ends, or ``seconds`` pass; whether it became true."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        if exited(proc):
            return predicate()
        time.sleep(0.01)
    return False


def exited(proc):
    """Whether the child has ended, without reaping it (so that :func:`finish` still gets its rusage)."""
    return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def send(proc, signum=signal.SIGTERM):
    try:
        proc.send_signal(signum)
    except ProcessLookupError:
        pass
