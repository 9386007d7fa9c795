"""A run folder belongs to one run: never overwritten by accident, never shared by two runs.

`claim(run_dir, resume=..., overwrite=...)` is held for the whole of a training run:

- a folder that already holds a run (any file but the generated benchmark in `data/` and the
  lock) is refused unless the run is resumed (`--resume`) or replaced (`--overwrite`, which
  removes the earlier run's files first, so the two can never be mixed);
- an exclusive `flock` on `RUN/.lock` keeps a second run out while the first is alive; the
  lock file names its holder (pid, host, start, command). The operating system drops the lock
  when its process ends, however it ends, so a lock left by a killed run is stale: it is
  noticed, logged and taken over.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from tailseg.errors import RunDirError

log = logging.getLogger("tailseg.engine")

LOCK = ".lock"
KEPT = {LOCK, "data"}  # the generated benchmark is reused by any run of the same parameters


def _holder(lock: Path) -> str:
    try:
        info = json.loads(lock.read_text() or "{}")
    except (OSError, ValueError):
        return "an unknown process"
    return (
        f"pid {info.get('pid')} on {info.get('host')} since {info.get('started')} "
        f"({info.get('command')})"
    )


def _earlier_run(run_dir: Path) -> list[str]:
    if not run_dir.is_dir():
        return []
    return sorted(p.name for p in run_dir.iterdir() if p.name not in KEPT)


@contextmanager
def claim(run_dir: str | Path, *, resume: bool, overwrite: bool) -> Iterator[Path]:
    """Lock `run_dir` for this process, checking it may hold the run; yields the folder."""
    run_dir = Path(run_dir)
    if resume and overwrite:
        raise RunDirError(f"{run_dir}: --resume and --overwrite exclude each other")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(run_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise RunDirError(f"{run_dir}: cannot use as a run folder ({e.strerror})") from None
    lock = run_dir / LOCK
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RunDirError(
            f"{run_dir}: in use by another run ({_holder(lock)}); wait for it to end or "
            "choose another --out"
        ) from None
    try:
        previous = os.read(fd, 4096)
        if previous.strip():
            log.info("%s: stale lock of an ended run (%s) taken over", run_dir, _holder(lock))
        earlier = _earlier_run(run_dir)
        if earlier and not resume:
            if not overwrite:
                shown = ", ".join(earlier[:6]) + (", ..." if len(earlier) > 6 else "")
                raise RunDirError(
                    f"{run_dir}: holds an earlier run ({shown}); pass --resume to continue it, "
                    "--overwrite to replace it, or choose another --out"
                )
            log.warning("%s: --overwrite: removing the earlier run's %s", run_dir, earlier)
            for name in earlier:
                path = run_dir / name
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": " ".join(sys.argv)[:300],
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        yield run_dir
    finally:
        with suppress(OSError):
            os.ftruncate(fd, 0)  # an empty lock file: nobody holds it
        os.close(fd)  # releases the flock
