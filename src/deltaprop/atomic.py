"""Atomic file writes: a temporary file in the same folder, renamed over the target only when complete.

:func:`atomic_write` is the one home of deltaprop's atomic writes (model
files and checkpoints through :func:`deltaprop.tensorfile.write_file`,
predictions, logs, plots). The sequence is:

1. create ``.{basename}.{12 hex digits}.tmp`` in the target's folder (same
   file system, so the rename is atomic), with the target's permission bits
   when the target exists, else ``0o666`` minus the umask as ``open`` gives;
2. the caller writes through the file object it is handed;
3. flush, ``os.fsync`` the file, close it, ``os.replace`` it over the target,
   then fsync the folder so that the rename itself is durable.

A crash or a kill at any moment leaves the old file or the new one, never a
mixture (at worst a hidden ``.tmp`` file after a SIGKILL). An exception
inside the block, or a failing flush, fsync or rename, removes the temporary
file and leaves the old file byte-identical.
"""

import contextlib
import os
import stat

from .errors import InvalidArgumentError, SaveError

__all__ = ["atomic_write", "fsync_folder", "save_error"]

_MODES = {"w": "w", "wt": "w", "tw": "w", "wb": "wb", "bw": "wb"}


def fsync_folder(folder):
    """fsync a folder so that a rename inside it survives a crash; silently a no-op where unsupported."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot fsync a folder; the rename is done
    finally:
        os.close(fd)


def save_error(path, exc):
    """The :class:`SaveError` for an ``OSError`` met while writing ``path``: reason and errno name, old file intact."""
    import errno  # the error path only: import deltaprop stays light

    reason = exc.strerror or str(exc) or type(exc).__name__
    code = f" [{errno.errorcode.get(exc.errno, exc.errno)}]" if exc.errno else ""
    return SaveError(f"cannot write {path}: {reason}{code}; the previous file, if any, is intact")


@contextlib.contextmanager
def atomic_write(path, mode="w", encoding="utf-8", newline=None):
    """Write ``path`` all at once: yield a file object on a temporary file, renamed over ``path`` on success.

    Parameters
    ----------
    path : str or os.PathLike
        The target. Its folder must exist. A symbolic link is replaced by
        the new file (the file it pointed to is not changed). An existing
        FIFO or character device (``/dev/stdout``, ``/dev/null``) cannot be
        replaced and is written directly, without a temporary file; an
        existing folder is refused. ``"-"`` has no special meaning here:
        callers handle standard output themselves.
    mode : {"w", "wb"}, default "w"
        Text or binary.
    encoding : str, default "utf-8"
        Text mode only.
    newline : str or None
        As for :func:`open`, text mode only.

    Yields
    ------
    file object
        Opened for writing on ``.{basename}.{hex}.tmp`` in the target's folder.

    Raises
    ------
    SaveError
        An ``OSError`` while creating, writing (inside the block too: read
        your inputs before entering it), flushing, fsyncing or renaming, with
        the reason and its errno name (``[ENOSPC]``). The previous file at
        ``path``, if any, is byte-identical and no temporary file remains.
    InvalidArgumentError
        A mode other than text or binary writing.

    Notes
    -----
    Any other exception inside the block (including ``KeyboardInterrupt``)
    removes the temporary file and is re-raised unchanged. The permission
    bits of an existing target are kept; a new file gets ``0o666`` minus the
    umask, not ``mkstemp``'s ``0o600``.
    """
    if mode not in _MODES:
        raise InvalidArgumentError(f"atomic_write mode must be 'w' or 'wb', got {mode!r}")
    binary = _MODES[mode] == "wb"
    kwargs = {} if binary else {"encoding": encoding, "newline": newline}
    path = os.fspath(path)
    try:
        st = os.stat(path)
    except OSError:
        st = None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise SaveError(f"cannot write {path}: it is a folder")
    if st is not None and (stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode)):
        with _direct(path, _MODES[mode], kwargs) as f:  # a stream: nothing to rename over
            yield f
        return
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.urandom(6).hex()}.tmp")
    created = False
    try:
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
            created = True
            if st is not None and stat.S_ISREG(st.st_mode) and hasattr(os, "fchmod"):
                os.fchmod(fd, stat.S_IMODE(st.st_mode))
            f = os.fdopen(fd, _MODES[mode], **kwargs)
        except BaseException:
            if created:
                os.close(fd)
            raise
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        created = False
        fsync_folder(folder)
    except SaveError:
        raise
    except OSError as exc:
        raise save_error(path, exc) from None
    finally:
        if created:
            try:
                os.unlink(tmp)
            except OSError:
                pass


@contextlib.contextmanager
def _direct(path, mode, kwargs):
    try:
        with open(path, mode, **kwargs) as f:
            yield f
            f.flush()
    except SaveError:
        raise
    except OSError as exc:
        raise save_error(path, exc) from None
