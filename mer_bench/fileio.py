"""Creating files and folders the way every part of mer-bench should: atomically, and readable as the umask says.

Python's `tempfile.mkstemp` and `mkdtemp` create 0600 files and 0700 folders whatever the umask, on purpose (they are
meant to be private). mer-bench renames such temporaries into place as result files, prepared caches and synthetic
pickles, which colleagues on a shared lab folder must be able to read. So every temporary made here gets the mode
a plain `open()` or `mkdir()` would have given: 0666 or 0777 minus the umask.

Use:
- `atomic_write(path, "w" or "wb")`: a context manager yielding a handle; on success the complete file replaces
  `path` in one rename, on any error `path` is untouched and the temporary is removed.
- `write_json_atomic(path, data)`, `write_bytes_atomic(path, data)`: the common cases of it.
- `make_temp_dir(parent, prefix)`: a temporary folder to fill and rename into place (as `mkdtemp`, umask honoured).
- `honour_umask(path)`: fix the mode of a file or folder some other library created with a private mode.
- `check_output_dir(path, what)`: before long work, make sure results can be written there (one clear error if not).

Errors from writing are `OutputError`s: an `OSError` (callers that tolerate a failed write, like cache upkeep, keep
catching OSError) that is also a `UserError` (the CLI prints one line naming the file and exits 2).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from mer_bench.errors import OutputError

FILE_MODE = 0o666     # what open() asks for; the umask takes away from it
FOLDER_MODE = 0o777   # what mkdir() asks for


def current_umask() -> int:
    """The process umask. Read from /proc where it is shown (Linux >= 4.7), since setting it to read it back is not
    thread safe; elsewhere set and restored at once."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def honour_umask(path: Path | str, descriptor: int | None = None) -> None:
    """Give `path` (or the open `descriptor`) the mode open()/mkdir() would have given it under the umask."""
    is_dir = stat.S_ISDIR(os.fstat(descriptor).st_mode if descriptor is not None else os.stat(path).st_mode)
    mode = (FOLDER_MODE if is_dir else FILE_MODE) & ~current_umask()
    if descriptor is not None:
        os.fchmod(descriptor, mode)
    else:
        os.chmod(path, mode)


def output_error(path: Path | str, error: OSError, doing: str = "cannot write") -> OutputError:
    """One line naming the file and the system's reason (disk full, file too large, read-only, not a folder...)."""
    reason = error.strerror or str(error)
    return OutputError(error.errno, f"{path}: {doing}: {reason}")


def ensure_dir(path: Path | str) -> Path:
    """mkdir -p, with an `OutputError` (not a traceback) when a part of the path is a file or not writable."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError as error:   # exists, but not as a folder
        raise output_error(path, error, "cannot create folder (a file of that name exists)") from None
    except OSError as error:
        raise output_error(path, error, "cannot create folder") from None
    if not path.is_dir():
        raise OutputError(20, f"{path}: is not a folder")
    return path


@contextlib.contextmanager
def atomic_write(path: Path | str, mode: str = "w") -> Iterator[IO[Any]]:
    """Write `path` so that it is either absent, the old file, or the complete new file; never a partial one."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write writes with 'w' or 'wb', not {mode!r}")
    path = Path(path)
    ensure_dir(path.parent)
    try:
        descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise output_error(path, error) from None
    try:
        honour_umask(temporary, descriptor)
        with os.fdopen(descriptor, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(error, OutputError):
            raise
        raise output_error(path, error) from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path | str, data: Any) -> None:
    """`data` as indented JSON (no NaN: they are not JSON), written atomically."""
    with atomic_write(path, "w") as handle:
        json.dump(data, handle, indent=1, allow_nan=False)


def write_bytes_atomic(path: Path | str, data: bytes) -> None:
    with atomic_write(path, "wb") as handle:
        handle.write(data)


def make_temp_dir(parent: Path | str, prefix: str) -> Path:
    """A new empty folder under `parent` (as tempfile.mkdtemp: a unique name, created by us alone), with the mode
    mkdir() would give under the umask rather than mkdtemp's 0700, since it is renamed into place for others."""
    parent = ensure_dir(parent)
    try:
        folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    except OSError as error:
        raise output_error(parent, error, "cannot create a folder in") from None
    honour_umask(folder)
    return folder


def check_output_dir(path: Path | str, what: str = "results folder") -> Path:
    """Fail early, before any training, when results could not be written under `path`: it (or a folder above it)
    is a file, or a test file cannot be written in its nearest existing folder (read-only, full, out of quota).
    Creates nothing: a run that then fails on its input leaves no empty folders behind."""
    path = Path(path)
    existing = _nearest_existing(path)
    if not existing.is_dir():
        raise OutputError(20, f"{path}: the {what} is a file, not a folder" if existing == path
                          else f"{path}: cannot create the {what}: {existing} is a file")
    try:
        with tempfile.TemporaryFile(dir=existing) as probe:
            probe.write(b"mer-bench write check")
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as error:
        raise output_error(path, error, f"cannot write in the {what}") from None
    return path


def _nearest_existing(path: Path) -> Path:
    """`path` itself if it exists, else its closest existing parent (the folder a mkdir would start from)."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
