"""What this tool may write and delete on disk: markers, "is this folder safe to remove", staged replace.

One policy for ``export``, ``run``, ``sweep`` and the pruner state:

* every folder the tool creates as a whole (a run, a sweep, an export) gets a marker file inside it
  (:data:`RUN_MARKER`, :data:`SWEEP_MARKER`, :data:`EXPORT_MARKER`); a folder is only ever removed or
  reused if it holds the marker of its kind (:func:`check_removable`);
* never removed, marker or not: ``/`` (any filesystem root), the home folder or one above it, the
  current folder or one above it, and any folder the caller names as protected (the run's own
  model and pruner folders, and every folder above them);
* a folder is replaced by writing its successor beside it (:func:`make_sibling_dir`), then moving the
  old one aside, renaming the new one into place and deleting the old one last
  (:func:`replace_dir`), so a failure at any point leaves the old folder or the new one complete;
* files and folders get the usual permissions (``0o666``/``0o777`` less the umask):
  ``tempfile.mkdtemp`` makes ``0o700`` folders and ``safetensors`` writes ``0o600`` files, which
  other users of a shared machine could not read (:func:`normal_permissions`).

>>> import tempfile
>>> root = Path(tempfile.mkdtemp())
>>> check_removable(root / "nothing", EXPORT_MARKER)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
sevenprune._fsutil.UnsafePathError: refusing to remove .../nothing: it does not exist
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = [
    "EXPORT_MARKER",
    "RUN_MARKER",
    "SWEEP_MARKER",
    "UnsafePathError",
    "atomic_write_text",
    "DIAGNOSTICS_MARKER",
    "check_file_outputs",
    "check_output_parent",
    "check_removable",
    "check_replaceable_position",
    "has_marker",
    "make_sibling_dir",
    "normal_permissions",
    "own_files",
    "record_own_files",
    "save_file_atomically",
    "replace_dir",
    "write_marker",
]

RUN_MARKER = ".sevenprune-run"
SWEEP_MARKER = ".sevenprune-sweep"
EXPORT_MARKER = ".sevenprune-export"
#: in a folder of plots of ``sevenprune diagnostics``: the names of the files it wrote there (one a line)
DIAGNOSTICS_MARKER = ".sevenprune-diagnostics"
#: what the marker files say, for a person who finds one
_MARKER_TEXT = {
    RUN_MARKER: "a sevenprune run folder: `sevenprune run --overwrite` may replace it\n",
    SWEEP_MARKER: "a sevenprune sweep folder: `sevenprune sweep` may add runs to it\n",
    EXPORT_MARKER: "a sevenprune export folder: `sevenprune export --overwrite` may replace it\n",
}


class UnsafePathError(ValueError):
    """A path the tool refuses to remove or write into (the message names it and says why)."""


def _umask() -> int:
    # os.umask can only be read by setting it; set it back at once
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def normal_permissions(path: str | os.PathLike[str]) -> None:
    """Give ``path`` (and, for a folder, everything under it) the permissions of a plain ``open``/``mkdir``."""
    mask = _umask()
    root = Path(path)
    items = [root, *root.rglob("*")] if root.is_dir() else [root]
    for p in items:
        if p.is_symlink():
            continue
        os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~mask)


def write_marker(directory: str | os.PathLike[str], marker: str) -> None:
    """Mark ``directory`` as written by this tool (kind ``marker``)."""
    (Path(directory) / marker).write_text(_MARKER_TEXT.get(marker, "written by sevenprune\n"), encoding="utf-8")


def has_marker(directory: str | os.PathLike[str], marker: str) -> bool:
    """Whether ``directory`` holds the marker ``marker`` (a regular file, not a link)."""
    p = Path(directory) / marker
    return p.is_file() and not p.is_symlink()


def _absolute(path: str | os.PathLike[str]) -> Path:
    """``path`` made absolute with ``..`` and ``.`` folded (``Path.absolute`` keeps them, so ``x/..`` would
    have the name ``..`` and its siblings would land one folder too high)."""
    return Path(os.path.abspath(path))


def _above_or_equal(path: Path, other: Path) -> bool:
    """Whether ``path`` is ``other`` or one of the folders above it (both resolved)."""
    return path == other or path in other.parents


def check_removable(path: str | os.PathLike[str], marker: str, *, protect: Iterable[str | os.PathLike[str]] = (),
                    what: str = "") -> Path:
    """Return ``path`` resolved if this tool may delete it as a whole; raise :class:`UnsafePathError` if not.

    Refused: a path that does not exist or is a link; a filesystem root; the home folder or one above
    it; the current folder or one above it; a folder in ``protect`` or one above it; and any folder
    without ``marker`` inside (one that this tool did not write).
    """
    label = f"{what} {path}" if what else str(path)
    resolved = check_replaceable_position(path, protect=protect, what=what)
    if not resolved.is_dir():
        raise UnsafePathError(f"refusing to remove {label}: it is a file, not a folder this tool wrote")
    if not has_marker(resolved, marker):
        raise UnsafePathError(f"refusing to remove {label}: it was not written by sevenprune (no {marker} "
                              f"file inside); choose another folder or remove it yourself")
    return resolved


def check_replaceable_position(path: str | os.PathLike[str], *, protect: Iterable[str | os.PathLike[str]] = (),
                               what: str = "") -> Path:
    """The checks of :func:`check_removable` that do not depend on the folder's content (even an
    empty current folder is not replaced: the shell would be left in a deleted folder)."""
    label = f"{what} {path}" if what else str(path)
    p = Path(path)
    if p.is_symlink():
        raise UnsafePathError(f"refusing to remove {label}: it is a symbolic link")
    if not p.exists():
        raise UnsafePathError(f"refusing to remove {label}: it does not exist")
    resolved = p.resolve()
    if resolved == Path(resolved.anchor):
        raise UnsafePathError(f"refusing to remove {label}: it is the filesystem root")
    if _above_or_equal(resolved, Path.home().resolve()):
        raise UnsafePathError(f"refusing to remove {label}: it is the home folder or one above it")
    if _above_or_equal(resolved, Path.cwd().resolve()):
        raise UnsafePathError(f"refusing to remove {label}: it is the current folder or one above it")
    for keep in protect:
        kept = Path(keep).resolve()
        if _above_or_equal(resolved, kept):
            what_it_is = "it is" if resolved == kept else "it holds"
            raise UnsafePathError(f"refusing to remove {label}: {what_it_is} {keep}, which this command reads")
    return resolved


def check_output_parent(path: str | os.PathLike[str], what: str) -> None:
    """Refuse an output path that cannot be created: one below a file, or in a folder not writable.

    Run before any slow work, so that the error comes first and names the path.
    """
    p = _absolute(path)
    if p.exists() and not p.is_dir():
        raise UnsafePathError(f"{what} {path} is a file, not a folder")
    existing = p
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UnsafePathError(f"{what} {path} cannot be created: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UnsafePathError(f"{what} {path} cannot be created: {existing} is not writable")


def make_sibling_dir(target: str | os.PathLike[str], tag: str) -> Path:
    """Create an empty hidden folder beside ``target`` (``.<name>.<tag>-<random>``), usual permissions."""
    target = _absolute(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        candidate = target.parent / f".{target.name}.{tag}-{secrets.token_hex(4)}"
        try:
            candidate.mkdir()  # mode 0o777 less the umask, unlike tempfile.mkdtemp's 0o700
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"cannot create a temporary folder beside {target}")  # pragma: no cover


def replace_dir(staged: str | os.PathLike[str], target: str | os.PathLike[str], marker: str, *,
                protect: Iterable[str | os.PathLike[str]] = (), what: str = "") -> Path:
    """Move the finished folder ``staged`` to ``target``.

    An empty ``target`` folder is removed first; a non-empty one must pass :func:`check_removable`; it
    is moved aside, ``staged`` renamed into its place, and only then deleted (if the rename fails,
    the old folder is moved back).
    """
    staged, target = Path(staged), _absolute(target)
    if not target.exists() and not target.is_symlink():
        os.replace(staged, target)
        return target
    if target.is_dir() and not target.is_symlink() and not any(target.iterdir()):
        check_replaceable_position(target, protect=protect, what=what)
        target.rmdir()
        os.replace(staged, target)
        return target
    check_removable(target, marker, protect=protect, what=what)
    aside = make_sibling_dir(target, "old")
    aside.rmdir()  # a free name beside the target
    os.replace(target, aside)
    try:
        os.replace(staged, target)
    except BaseException:
        os.replace(aside, target)
        raise
    shutil.rmtree(aside)
    return target


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``path`` through a temporary file renamed into place (never half-written)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# -- single files written into a folder that may hold the user's own files (diagnostics, report) -------------
_OWN_FILES_HEADER = "files written by sevenprune, which it may replace (one a line):\n"


def own_files(directory: str | os.PathLike[str], marker: str) -> set[str]:
    """The names listed in ``directory/marker`` (:func:`record_own_files`); none if it is missing or a link."""
    p = Path(directory) / marker
    if not p.is_file() or p.is_symlink():
        return set()
    lines = p.read_text(encoding="utf-8", errors="replace").splitlines()
    return {line for line in lines[1:] if line and "/" not in line}


def record_own_files(directory: str | os.PathLike[str], names: Iterable[str], marker: str) -> None:
    """Add ``names`` to the list of files this tool wrote in ``directory`` (its marker file)."""
    names = sorted(own_files(directory, marker) | set(names))
    atomic_write_text(Path(directory) / marker, _OWN_FILES_HEADER + "".join(f"{n}\n" for n in names))


def check_file_outputs(directory: str | os.PathLike[str], names: Iterable[str], *, what: str,
                       owned: Iterable[str] = ()) -> None:
    """Refuse, before anything is written: ``directory`` that is a file; two outputs of one name; an
    output that is a symbolic link (writing would follow it out of the folder) or not a plain file;
    and an existing file not in ``owned`` (the files this tool wrote there itself)."""
    folder = Path(directory)
    if folder.exists() and not folder.is_dir():
        raise UnsafePathError(f"{what} {directory} is a file, not a folder; give a folder for the output files")
    names = list(names)
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UnsafePathError(f"{what}: two outputs would be written to {folder / twice[0]}")
    owned = set(owned)
    for name in names:
        p = folder / name
        if p.is_symlink():
            raise UnsafePathError(f"{what}: {p} is a symbolic link; refusing to write through it (remove the link "
                                  "or choose another folder)")
        if p.exists() and not p.is_file():
            raise UnsafePathError(f"{what}: {p} exists and is not a file")
        if p.exists() and name not in owned:
            raise UnsafePathError(f"{what}: {p} exists and was not written by sevenprune; move it away or choose "
                                  "another folder")


def save_file_atomically(path: str | os.PathLike[str], write: Any) -> Path:
    """Call ``write(temporary path)`` and rename the result onto ``path``: a link at ``path`` is replaced,
    never written through, and an interrupted write leaves no half file."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{secrets.token_hex(4)}{path.suffix}")
    try:
        write(tmp)
        normal_permissions(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
