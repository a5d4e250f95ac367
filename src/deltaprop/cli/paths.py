"""Outputs never overwrite inputs: every command checks its paths before any work starts.

:func:`check_outputs` compares each output path (``--out``, ``--log``,
``--plot``, ``--checkpoint-dir``, ``predict --out``) with every input (the
data, the labels, the model, the config) and with the other outputs. Two
paths are the same file when they resolve to the same path
(:func:`os.path.realpath`: ``./x`` and ``x``, a symbolic link and its
target) or, both existing, to the same ``(st_dev, st_ino)`` (a hard link).
A file output inside the checkpoint folder, and a checkpoint folder that is
an input, are refused too. An output that is an existing folder, or whose
folder does not exist, is refused before the work that would have ended in
a failed write.

Every command calls the one function, e.g. ``train``::

    check_outputs({"--data": cfg["data"], "--labels": cfg["labels"], "--config": args.config},
                  {"--out": cfg["out"], "--log": cfg["log"], "--plot": cfg["plot"],
                   "--checkpoint-dir": cfg["checkpoint_dir"]})
"""

import os

from ..errors import SaveError
from ..report import printable
from .common import UsageError, is_builtin

__all__ = ["check_outputs", "FOLDER_ROLES"]

#: output roles that name a folder rather than a file
FOLDER_ROLES = ("--checkpoint-dir",)


class _Path:
    """One path of a role: as given, absolute, resolved, and its (device, inode) when it exists."""

    def __init__(self, role, path):
        self.role, self.given = role, os.fspath(path)
        self.absolute = os.path.abspath(self.given)
        self.real = os.path.realpath(self.given)
        try:
            st = os.stat(self.given)
        except (OSError, ValueError):  # missing, unreadable, or a NUL in the name
            self.inode, self.is_dir = None, False
        else:
            self.inode = (st.st_dev, st.st_ino)
            self.is_dir = os.path.isdir(self.given)

    def __str__(self):
        who = self.role if self.role.startswith("-") else f"the {self.role}"
        return f"{who} {printable(self.given, limit=200)}"

    def same_as(self, other):
        """None when the paths are different files, else how they are the same: ``""`` or ``" (a hard link)"``."""
        if self.real == other.real:
            return "" if self.absolute == other.absolute else " (through a symbolic link)"
        if self.inode is not None and self.inode == other.inode:
            return " (a hard link)"
        return None


def _given(paths, skip_builtin):
    out = []
    for role, path in paths.items():
        if path is None or (isinstance(path, str) and path in ("", "-")):
            continue
        if skip_builtin and isinstance(path, str) and not os.path.exists(path) and is_builtin(path):
            continue  # a built-in data set's name, not a file
        out.append(_Path(role, path))
    return out


def check_outputs(inputs, outputs, folder_roles=FOLDER_ROLES):
    """Refuse output paths that would overwrite an input or another output, before any work starts.

    Parameters
    ----------
    inputs : dict of str to (str or None)
        ``{role: path}`` of what the command reads: ``{"--data": ..., "model": ...,
        "--config": ..., "--labels": ...}``. None, ``"-"`` (standard input) and
        the name of a built-in data set that is not a file are skipped.
    outputs : dict of str to (str or None)
        ``{role: path}`` of what it writes: ``{"--out": ..., "--log": ...,
        "--plot": ..., "--checkpoint-dir": ...}``. None and ``"-"`` (standard
        output) are skipped.
    folder_roles : tuple of str
        The output roles that name a folder (default ``("--checkpoint-dir",)``).

    Raises
    ------
    UsageError
        ``--out d.csv is the same file as --data d.csv (a hard link); choose
        another output path``; an output inside the checkpoint folder; a
        checkpoint folder that is an input or an existing file; a file output
        that is an existing folder.
    SaveError
        An output whose folder does not exist (naming the folder).
    """
    ins = _given(inputs, skip_builtin=True)
    outs = _given(outputs, skip_builtin=False)
    folders = [p for p in outs if p.role in folder_roles]
    files = [p for p in outs if p.role not in folder_roles]
    for folder in folders:
        if folder.inode is not None and not folder.is_dir:
            raise UsageError(f"{folder} is a file, not a folder; choose another folder")
    for out in files:
        if out.is_dir:
            raise UsageError(f"{out} is a folder; give a file path")
        parent = os.path.dirname(out.absolute)
        if not os.path.isdir(parent):
            raise SaveError(f"cannot write {out}: the folder {printable(parent, limit=200)} does not exist")
    for i, out in enumerate(outs):
        for other in ins + outs[:i]:
            if out.role in folder_roles and other.is_dir and other in ins:
                continue  # resuming from the checkpoint folder reads it: that is its purpose
            how = out.same_as(other)
            if how is not None:
                raise UsageError(f"{out} is the same file as {other}{how}; choose another output path")
    for folder in folders:
        for out in files:
            if out.real.startswith(folder.real.rstrip(os.sep) + os.sep):
                raise UsageError(f"{out} is inside {folder}; choose an output path outside the checkpoint folder")
