"""One proxy across workers and instances: what the workers of one instance share.

An *instance* is one ``litellm`` command: with ``--num_workers N`` its workers are children of one
supervisor process, whose pid (with its start time, against pid reuse) names the instance's state
directory. With one worker the instance is the process itself and nothing is shared through files.

- :mod:`proxy_ext.scale.slots`: run slots per instance (a locked state file), per key, and
  optionally across instances (:mod:`proxy_ext.scale.leases`, Redis).
- :mod:`proxy_ext.metrics_multiproc`: prometheus_client's multiprocess mode for the instance.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["instance_dir", "is_alive", "multi_worker", "process_start", "worker_count"]

_PREFIX = "proxy_ext-instance-"


def worker_count() -> int:
    """Workers of this instance, as the ``litellm`` command line said (``NUM_WORKERS``, set by it)."""
    try:
        return max(1, int(os.environ.get("NUM_WORKERS", "1")))
    except ValueError:
        return 1


def multi_worker() -> bool:
    """True in a worker of a ``--num_workers`` > 1 proxy."""
    return worker_count() > 1


def process_start(pid: int) -> int | None:
    """The start time of ``pid`` (clock ticks since boot; None: no such process, or one that died
    and waits to be reaped — a zombie holds no slots, though its pid still shows in /proc)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return None
    try:
        fields = stat.rsplit(b")", 1)[1].split()
        if fields[0] in (b"Z", b"X"):
            return None
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def is_alive(pid: int, start: int | None = None) -> bool:
    """``pid`` runs and (given ``start``) is the same process that had it then."""
    now = process_start(pid)
    if now is None:
        if os.path.exists(f"/proc/{pid}/stat"):
            return False  # a zombie: dead, not yet reaped by its parent
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return start is None  # no /proc: trust the pid alone
    return start is None or now == start


def _instance_id() -> str:
    owner = os.getppid() if multi_worker() else os.getpid()
    return f"{owner}-{process_start(owner) or 0}"


def _reap(base: Path) -> None:
    """Remove the state of instances whose supervisor is gone."""
    for entry in base.glob(_PREFIX + "*"):
        try:
            pid_text, start_text = entry.name[len(_PREFIX):].split("-", 1)
            pid, start = int(pid_text), int(start_text)
        except ValueError:
            continue
        if not is_alive(pid, start or None):
            shutil.rmtree(entry, ignore_errors=True)


def instance_dir(state_dir: str | os.PathLike[str] | None = None) -> Path:
    """This instance's state directory (created; stale siblings of dead instances removed)."""
    base = Path(state_dir) if state_dir else Path(tempfile.gettempdir()) / f"proxy_ext-{os.getuid()}"
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = base / (_PREFIX + _instance_id())
    if not path.exists():
        _reap(base)
        path.mkdir(exist_ok=True, mode=0o700)
    return path
