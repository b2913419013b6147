"""CPU seconds of the processes a scenario keeps busy, read from /proc (Linux).

Throughput moves with whatever else the machine does; CPU seconds per request move much less, so the
bench reports both: per 1,000 requests, for the server under test and for PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its closing one.
    return text[text.rindex(")") + 2 :].split()


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of one process (0 when it is gone)."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / _TICK if fields else 0.0


def postgres_cpu(pgdata: Path) -> float:
    """CPU seconds of the postmaster and every backend it forked (running or ended)."""
    postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
    fields = _stat(postmaster)
    # cutime/cstime: backends that ended meanwhile, reaped by the postmaster, still count.
    total = sum(int(f) for f in fields[11:15]) / _TICK if fields else 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields and int(fields[1]) == postmaster:
                total += (int(fields[11]) + int(fields[12])) / _TICK
    return total


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its children: `meter serve --workers N` is a supervisor and N workers."""
    fields = _stat(pid)
    if not fields:
        return 0.0
    total = sum(int(f) for f in fields[11:15]) / _TICK  # cutime/cstime: workers that ended (restarted)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            child = _stat(int(entry.name))
            if child and int(child[1]) == pid:
                total += (int(child[11]) + int(child[12])) / _TICK
    return total
