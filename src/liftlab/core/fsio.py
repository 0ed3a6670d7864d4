"""Writes that never lose data: a crash at any point leaves the previous output whole, and
liftlab replaces or deletes only what it wrote itself.

Files are written to a temporary sibling and renamed into place (rename is atomic on POSIX).
Every folder liftlab creates holds an ownership marker (``.liftlab-output``, naming the kind
of output and listing the files liftlab wrote). A folder is replaced whole only when it
carries liftlab's marker of the same kind and holds nothing else: the new one is built beside
it and the two are exchanged in one ``renameat2`` call (two renames where the file system
lacks it; a run killed between them is repaired by the next). A folder liftlab did not write
is refused unless the user forces it; forced, liftlab writes its files beside the others,
never over a file it did not write, and deletes nothing. No symbolic link is written
through.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import secrets
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from liftlab.core.errors import UserError

MARKER = ".liftlab-output"
TMP_PREFIX = ".liftlab-"
STAGING = "staging"  # the name of write_beside's staging folders
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_libc = ctypes.CDLL(None, use_errno=True)
_renameat2 = getattr(_libc, "renameat2", None)


def write_error(path: Path, exc: OSError) -> UserError:
    """An environment fault (disk full, file-size limit, read-only, no permission) as a user
    error naming the path."""
    reason = {errno.ENOSPC: "the disk is full", errno.EFBIG: "the file-size limit is reached",
              errno.EDQUOT: "the disk quota is exceeded",
              errno.EROFS: "the file system is read-only"}.get(exc.errno or 0,
                                                              exc.strerror or str(exc))
    return UserError(f"cannot write {path}: {reason}; the previous output is left as it was")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old or the new file."""
    path = Path(path)
    _ensure_dir(path.parent)
    refuse_link(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{TMP_PREFIX}", suffix=".tmp",
                                   dir=path.parent)
    except OSError as exc:
        raise write_error(path.parent, exc) from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise write_error(path, exc) from exc
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    """JSON with sorted keys and no NaN (NaN/inf become null), so reruns are byte-identical."""
    atomic_write_text(path, dumps_json(obj) + "\n")


def dumps_json(obj: Any) -> str:
    return json.dumps(_finite(obj), indent=2, sort_keys=False, ensure_ascii=False)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


# -- ownership ------------------------------------------------------------------------------
def read_marker(folder: Path) -> dict[str, Any] | None:
    """liftlab's marker in ``folder`` (a small regular file), or None."""
    path = Path(folder) / MARKER
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size > 65536:
            return None
        marker = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("liftlab") != "output":
        return None
    return marker


def _marker(kind: str, files: list[str] | None = None) -> dict[str, Any]:
    return {"liftlab": "output", "kind": kind, **({"files": files} if files is not None else {})}


def refuse_link(path: Path) -> None:
    """A symbolic link where liftlab writes is refused: it would write outside the output."""
    if Path(path).is_symlink():
        raise UserError(f"{path} is a symbolic link (to {os.readlink(path)}); liftlab does not "
                        "write through links: give the real path instead")


def _state(path: Path) -> tuple[str, dict[str, Any] | None]:
    """missing, empty, marked (liftlab's marker) or foreign; links and files are refused."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "missing", None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from exc
    refuse_link(path)
    if not stat.S_ISDIR(st.st_mode):
        raise UserError(f"{path} is a file, not a folder; liftlab writes a folder there and "
                        "never replaces a file it did not write: remove it or choose another "
                        "--out")
    marker = read_marker(path)
    if marker is not None:
        return "marked", marker
    with os.scandir(path) as entries:
        return ("foreign" if any(True for _ in entries) else "empty"), None


def _refusal(path: Path, kind: str, marker: dict[str, Any] | None,
             others: list[str]) -> UserError:
    if marker is None:
        whose = "was not written by liftlab (it has no .liftlab-output marker)"
    elif marker.get("kind") != kind:
        whose = f"holds liftlab's {marker.get('kind')!r} output, not {kind!r}"
    else:
        whose = f"holds files liftlab did not write ({', '.join(others[:5])})"
    return UserError(f"{os.path.abspath(path)} {whose}; liftlab never replaces a folder it did "
                     "not write. Choose a new or empty folder, or add --force to write "
                     "liftlab's files beside what is there (nothing is deleted or overwritten)")


def claim_root(root: Path, kind: str, force: bool) -> None:
    """A folder liftlab adds its own entries to (the reports root, the demo folder): created
    with a marker; an empty one is adopted; a non-empty one without liftlab's marker needs
    ``force`` (then it is adopted: the marker allows adding entries, never deleting others)."""
    root = Path(root)
    _ensure_dir(root.parent)
    with _dir_lock(root.parent):  # two first runs at once: the second sees the marker
        state, _ = _state(root)
        if state == "marked":
            recover_leftovers(root / MARKER)  # a temporary marker of a killed first run
            return
        if state == "foreign" and not force:
            raise _refusal(root, kind, None, [])
        _ensure_dir(root)
        atomic_write_json(root / MARKER, _marker(kind))


def claim_cache(root: Path) -> None:
    """The monitor's cache folder: created with a marker; an existing one is used as it is
    (the cache removes only the files it names itself). A link or a file is refused."""
    state, _ = _state(Path(root))
    if state in ("missing", "empty"):
        _ensure_dir(Path(root))
        atomic_write_json(Path(root) / MARKER, _marker("cache"))


def replace_dir(dest: Path, kind: str, force: bool, build: Callable[[Path], None]) -> None:
    """Write the folder ``dest`` with ``build(folder)``.

    Missing, empty, or liftlab's own output of this ``kind`` holding only the files its
    marker lists: built aside and swapped in whole (readers see the old or the new folder).
    Anything else (a folder liftlab did not write, another kind of output, files added by
    someone else) is refused without ``force``; forced, the files are written beside what is
    there (see ``write_beside``).
    """
    dest = Path(dest)
    _ensure_dir(dest.parent)
    with _dir_lock(dest.parent):
        recover_leftovers(dest)
        state, marker = _state(dest)
        if state in ("missing", "empty") or (
                marker is not None and marker.get("kind") == kind
                and _listing(dest) <= set(marker.get("files", []))):
            with atomic_dir(dest, kind) as tmp:
                build(tmp)
            return
        if not force:
            raise _refusal(dest, kind, marker, sorted(_listing(dest) - _listed(marker)))
        write_beside(dest, kind, force, build)


def write_beside(dest: Path, kind: str, force: bool, build: Callable[[Path], None]) -> None:
    """Add the files ``build(folder)`` makes to the folder ``dest`` one by one (each atomic),
    deleting nothing. A folder without liftlab's marker needs ``force``. The marker lists the
    files liftlab wrote; a file of the same name that is not on the list is refused: nothing
    of anyone else's is overwritten.
    """
    dest = Path(dest)
    state, marker = _state(dest)
    if state == "foreign" and not force:
        raise _refusal(dest, kind, None, [])
    if state in ("missing", "empty"):
        _ensure_dir(dest)
    recover_leftovers(dest / STAGING)  # a killed writer's staging folders inside dest
    recover_leftovers(dest / MARKER)  # and its temporary marker
    owned = _listed(marker)
    tmp = _make_tmp(dest, STAGING, kind)
    try:
        build(tmp)
        names = sorted(_listing(tmp))
        clash = [n for n in names if n not in owned and os.path.lexists(dest / n)]
        if clash:
            raise UserError(f"{dest} already holds {', '.join(clash[:5])} that liftlab did "
                            "not write; it overwrites nothing of yours: move them or choose "
                            "another --out")
        listed = {**(marker or _marker(kind)), "files": sorted(owned | set(names))}
        atomic_write_json(dest / MARKER, listed)  # listed before they are written
        for name in names:
            target = dest / name
            _real_dirs(dest, target.parent)
            _replace(tmp / name, target)
    finally:
        remove_ours(tmp)


def _listed(marker: dict[str, Any] | None) -> set[str]:
    files = (marker or {}).get("files", [])
    return {str(f) for f in files} if isinstance(files, list) else set()


def _listing(folder: Path) -> set[str]:
    """Every file (or link) under ``folder`` but the marker, as relative paths; links to
    folders are listed, never followed."""
    out, stack = set(), [Path(folder)]
    while stack:
        current = stack.pop()
        with os.scandir(current) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                else:
                    out.add(os.path.relpath(entry.path, folder))
    out.discard(MARKER)
    return out


def remove_ours(folder: Path) -> None:
    """Delete one of liftlab's own folders, its marker last and only once all else is gone:
    a run killed (or failing) half-way leaves a folder that is still recognisably liftlab's,
    removed by the next run."""
    for entry in _entries(folder):
        with contextlib.suppress(OSError):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
    if _entries(folder):
        return
    with contextlib.suppress(OSError):
        os.unlink(Path(folder) / MARKER)
    with contextlib.suppress(OSError):
        os.rmdir(folder)


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    """The entries of ``folder`` but its marker ([] when it cannot be read)."""
    try:
        with os.scandir(folder) as it:
            return [e for e in it if e.name != MARKER]
    except OSError:
        return []


def _real_dirs(root: Path, folder: Path) -> None:
    """Create ``folder`` under ``root``; every step must be a real folder, not a link."""
    current = root
    for part in folder.relative_to(root).parts:
        current = current / part
        refuse_link(current)
        _ensure_dir(current)


# -- whole-folder swap ----------------------------------------------------------------------
@contextlib.contextmanager
def atomic_dir(dest: Path, kind: str) -> Iterator[Path]:
    """Yield a fresh temporary folder (with the marker of ``kind``); on success it replaces
    ``dest`` whole. On any exception it is removed and ``dest`` is left untouched."""
    dest = Path(dest)
    _ensure_dir(dest.parent)
    tmp = _make_tmp(dest.parent, dest.name, kind)
    try:
        yield tmp
        atomic_write_json(tmp / MARKER, _marker(kind, sorted(_listing(tmp))))
        _swap_in(tmp, dest)
    except BaseException:
        remove_ours(tmp)
        raise


def _swap_in(tmp: Path, dest: Path) -> None:
    if not os.path.lexists(dest):
        _rename(tmp, dest)
        return
    try:
        exchanged = _exchange(tmp, dest)
    except OSError as exc:
        raise write_error(dest, exc) from exc
    if exchanged:  # tmp now holds the previous output
        remove_ours(tmp)
        return
    old = dest.with_name(f".{dest.name}{TMP_PREFIX}{secrets.token_hex(8)}.old")
    _rename(dest, old)
    _rename(tmp, dest)
    remove_ours(old)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2); False where that is not supported."""
    if _renameat2 is None:
        return False
    rc = _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _rename(src: Path, dest: Path) -> None:
    try:
        os.rename(src, dest)
    except OSError as exc:
        raise write_error(dest, exc) from exc


def _replace(src: Path, dest: Path) -> None:
    try:
        os.replace(src, dest)
    except OSError as exc:
        raise write_error(dest, exc) from exc


def _make_tmp(parent: Path, name: str, kind: str) -> Path:
    """A unique staging folder (never reused, whatever the pid) that starts with the marker."""
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}{TMP_PREFIX}", suffix=".tmp", dir=parent))
    except OSError as exc:
        raise write_error(parent, exc) from exc
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        atomic_write_json(tmp / MARKER, _marker(kind))
    except OSError as exc:
        remove_ours(tmp)
        raise write_error(tmp, exc) from exc
    except BaseException:
        remove_ours(tmp)
        raise
    return tmp


def recover_leftovers(dest: Path) -> None:
    """Clean up after a writer of ``dest`` that was killed mid-way (call under the lock).

    Its staging folders are removed; if it died between moving the previous ``dest`` aside
    and putting the new one in place, the previous one is put back. Only folders named as
    liftlab names them and holding its marker (or nothing) are touched.
    """
    dest = Path(dest)
    if not dest.parent.is_dir():
        return
    olds = _leftovers(dest, ".old")
    if olds and not os.path.lexists(dest):
        newest = max(olds, key=lambda p: p.stat().st_mtime)
        _rename(newest, dest)
        olds.remove(newest)
    for leftover in [*olds, *_leftovers(dest, ".tmp")]:
        if leftover.is_dir():
            remove_ours(leftover)
        else:
            with contextlib.suppress(OSError):
                os.unlink(leftover)


def _leftovers(dest: Path, suffix: str) -> list[Path]:
    """Staging folders (marked, or killed before the marker) and temporary files of atomic
    writes (``.NAME.liftlab-*.tmp``, a name only liftlab gives) of ``dest``."""
    out = []
    for p in dest.parent.glob(f".{dest.name}{TMP_PREFIX}*{suffix}"):
        temp_file = p.is_file() and suffix == ".tmp"
        staging = p.is_dir() and (read_marker(p) is not None or _marker_unwritten(p))
        if not p.is_symlink() and (temp_file or staging):
            out.append(p)
    return out


def _marker_unwritten(folder: Path) -> bool:
    """Empty, or holding only the temporary file of the marker (killed while writing it)."""
    return all(p.name.startswith(f".{MARKER}{TMP_PREFIX}") and p.name.endswith(".tmp")
               for p in folder.iterdir())


# -- locks ----------------------------------------------------------------------------------
@contextlib.contextmanager
def exclusive_lock(path: Path, wait: bool = True) -> Iterator[None]:
    """An advisory lock file: concurrent runs on the same output are serialised. The file is
    opened without following links, so a planted link cannot make liftlab create a file."""
    path = Path(path)
    _ensure_dir(path.parent)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            refuse_link(path)
        raise write_error(path, exc) from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UserError(f"{path}: the lock is not a regular file; remove it")
        _flock(fd, path, wait)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def _dir_lock(folder: Path) -> Iterator[None]:
    """Serialise writers of entries of ``folder`` (a lock on the folder itself: no file)."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise write_error(folder, exc) from exc
    try:
        _flock(fd, folder, True)
        yield
    finally:
        os.close(fd)


def _flock(fd: int, path: Path, wait: bool) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        raise UserError(f"another liftlab run holds the lock {path}; try again later") from exc


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _ensure_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create folder {path}: {exc.strerror}") from exc
