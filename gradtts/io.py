"""Atomic file writes: a reader never sees a half-written file under its final name.

A write goes to a hidden temporary file beside the target, ``.<name>.atomic-<8 hex digits>.tmp``,
renamed onto the target only when complete. The temporary name deliberately does not end in the
target's extension, so a glob for finished outputs (``*.npy``, ``*.pt``, ``*.wav``, ``*.png``) never
matches a half-written file; a process killed mid-write leaves such a file behind, which
:func:`remove_stale_temps` clears when the next run of a stage starts. A write that fails because the
disk (or the user's quota) is full raises :class:`DiskFullError`, naming the file and the free space.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import os
import shutil
import re
import secrets
from io import StringIO  # the standard library's io: absolute imports never mean this module
from pathlib import Path
from typing import IO, Iterator, Sequence

from gradtts.errors import UserError

TEMP_SUFFIX = ".tmp"
# This writer's temporary names, and nothing else, are what remove_stale_temps deletes; the "atomic-"
# marker keeps a user's file (".notes.20240101.tmp") from looking like one.
_TEMP_RE = re.compile(r"\..+\.atomic-[0-9a-f]{8}\.tmp", re.DOTALL)
# Room for the dot, the marker, the random part and the suffix within the usual 255-byte file name limit.
_NAME_BYTES = 200


# errno values that mean "no room left": the disk itself, or the user's quota on it.
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
# Writers that report a failed write as a RuntimeError without an errno (soundfile's libsndfile, torch's
# C++ writer given a path) are taken to have hit a full disk when less than this is left on it.
_NEARLY_FULL_BYTES = 1 << 20


class DiskFullError(OSError, UserError):
    """A write failed because the disk (or quota) is full; the message names the file being written."""

    def __init__(self, message: str, code: int = errno.ENOSPC):
        super().__init__(message)  # one argument: str() is the message alone, without "[Errno 28]"
        self.errno = code


def _free_bytes(path: Path) -> int | None:
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def _full_errno(exc: BaseException) -> int | None:
    """ENOSPC or EDQUOT when ``exc`` or an exception it was raised from carries it."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        if isinstance(e, OSError) and e.errno in _FULL_ERRNOS:
            return e.errno
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def _disk_full(exc: BaseException, directory: Path) -> bool:
    """Whether ``exc`` means the disk holding ``directory`` is full."""
    if _full_errno(exc) is not None:
        return True
    if not isinstance(exc, RuntimeError):
        return False  # an OSError with another errno, or a ValueError, says what went wrong itself
    free = _free_bytes(directory)
    return free is not None and free < _NEARLY_FULL_BYTES


def _disk_full_error(path: Path, exc: BaseException) -> DiskFullError:
    code = _full_errno(exc) or errno.ENOSPC
    what = "disk quota exceeded" if code == errno.EDQUOT else "disk full"
    free = _free_bytes(path.parent)
    shown = f"{free / 2 ** 20:.1f} MiB free on its disk" if free is not None else "free space unknown"
    cause = os.strerror(code) if _full_errno(exc) is not None else f"{exc.__class__.__name__}: {exc}"
    return DiskFullError(f"{what} while writing {path} ({shown}; {cause}); free some space (or write elsewhere) "
                         "and re-run: the file was not replaced and the partial copy was removed", code)


def is_temp_name(name: str) -> bool:
    """Whether a file name is one of this module's temporary names (a write in progress or left by a kill)."""
    return _TEMP_RE.fullmatch(name) is not None


def _create_temp(path: Path) -> Path:
    """Create an empty, new temporary file beside ``path`` and return its path."""
    name = os.fsdecode(os.fsencode(path.name)[:_NAME_BYTES])
    for _ in range(100):
        tmp = path.with_name(f".{name}.atomic-{secrets.token_hex(4)}{TEMP_SUFFIX}")
        try:
            # 0o666 under the umask: the permissions a plain open() would give the final file.
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"no free temporary name beside {path}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary name does not end in ``path``'s suffix, so a writer that infers the format from the
    extension must be told the format (``soundfile.write(format=)``, ``savefig(format=)``) or be given
    an open file (``numpy.save``, which would otherwise append ``.npy``).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp_path = _create_temp(path)
    except OSError as exc:
        if _disk_full(exc, path.parent):
            raise _disk_full_error(path, exc) from exc
        raise
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except Exception as exc:
        # Only failures of the write itself become DiskFullError; GeneratorExit and KeyboardInterrupt pass.
        if _disk_full(exc, path.parent) and not isinstance(exc, DiskFullError):
            raise _disk_full_error(path, exc) from exc
        raise
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file for writing that replaces ``path`` when closed without error."""
    if "b" in mode:
        encoding = None
    with atomic_path(path) as tmp:
        with open(tmp, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_open(path, "w") as f:
        f.write(text)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as f:
        f.write(data)


def write_csv(path: str | os.PathLike, rows: Sequence[dict], fields: Sequence[str] = ()) -> None:
    """Rows (dicts) as a CSV with ``fields`` then the rest of their keys, written atomically.

    ``fields`` also gives an empty table its header, so a reader can tell "no rows" from "no file".
    """
    names = list(fields)
    for r in rows:
        names += [k for k in r if k not in names]
    buf = StringIO()
    w = csv.DictWriter(buf, fieldnames=names)
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def atomic_torch_save(obj: object, path: str | os.PathLike) -> None:
    """``torch.save`` to ``path`` atomically."""
    import torch

    # Through a Python file object: given a path, torch's C++ writer reports a full disk as a bare
    # RuntimeError ("unexpected pos ..."); a file object raises OSError(ENOSPC), which atomic_path names.
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)


def atomic_np_save(path: str | os.PathLike, array) -> None:
    """``numpy.save`` to exactly ``path`` (which should end in .npy) atomically."""
    import numpy as np

    # Through a file object: given a path without .npy, np.save would write to "<tmp>.npy" instead.
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)


def remove_stale_temps(root: str | os.PathLike, recursive: bool = True) -> int:
    """Delete the temporary files of this module left under ``root`` by killed writers; returns how many.

    Only names of this module's pattern are removed (never e.g. a user's ``.hidden.npy``). Call it when
    a stage starts over its output dir, before any writer of this run is active there.
    """
    root = Path(root)
    removed = 0
    dirs = [root]
    while dirs:
        try:
            entries = list(os.scandir(dirs.pop()))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                if recursive:
                    dirs.append(Path(entry.path))
            elif entry.is_file(follow_symlinks=False) and is_temp_name(entry.name):
                try:
                    os.unlink(entry.path)
                except FileNotFoundError:  # removed meanwhile by another process
                    continue
                removed += 1
    return removed
