"""CPU time and memory of the measured processes, read from ``/proc`` (Linux).

A process is named (``gateway``, ``kafka``, ``bench``, ...) and counted with its descendants (the shortlink edge's
User-Agent parser runs in a child process, for example): user + system time from ``/proc/<pid>/stat``. The
accounting itself (deltas, per 1,000 recipients, percent of one core) is pure, in ``cpu_delta`` and friends.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def parse_stat(text: str) -> tuple[int, float]:
    """(ppid, utime + stime in seconds) of one ``/proc/<pid>/stat`` line (the command may contain spaces and
    parentheses, so fields are counted after the last ``)``)."""
    fields = text[text.rindex(")") + 2 :].split()
    # fields[0] is the state (field 3): ppid is field 4, utime 14, stime 15
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _read_stat(pid: int) -> tuple[int, float] | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return parse_stat(stat.read())
    except (OSError, ValueError, IndexError):
        return None


def process_table() -> dict[int, tuple[int, float]]:
    """Every process: pid -> (ppid, cpu seconds)."""
    table: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _read_stat(int(entry))
            if stat is not None:
                table[int(entry)] = stat
    return table


def tree_cpu(
    table: Mapping[int, tuple[int, float]], roots: Mapping[str, int], *, alone: Iterable[str] = ()
) -> dict[str, float]:
    """CPU seconds per named root process with its descendants (those named in ``alone`` without them). A process
    under two roots counts for the nearest one."""
    children: dict[int, list[int]] = defaultdict(list)
    for pid, (ppid, _) in table.items():
        children[ppid].append(pid)
    root_pids = set(roots.values())
    solo = set(alone)
    result: dict[str, float] = {}
    for name, root in roots.items():
        if root not in table:
            continue
        total = 0.0
        stack = [root]
        while stack:
            pid = stack.pop()
            total += table[pid][1]
            if name in solo:
                break
            stack.extend(child for child in children.get(pid, ()) if child not in root_pids)
        result[name] = round(total, 3)
    return result


def cpu_snapshot(roots: Mapping[str, int], *, alone: Iterable[str] = ()) -> dict[str, float]:
    return tree_cpu(process_table(), roots, alone=alone)


def cpu_delta(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    """CPU seconds spent between two snapshots, per process present in both."""
    return {name: round(max(0.0, after[name] - before[name]), 3) for name in before if name in after}


def per_thousand(delta: Mapping[str, float], recipients: int) -> dict[str, float]:
    """CPU seconds per 1,000 recipients, per process, most expensive first, with the total."""
    if recipients <= 0:
        return {}
    rows = {name: round(seconds * 1000 / recipients, 3) for name, seconds in delta.items()}
    ordered = dict(sorted(rows.items(), key=lambda item: -item[1]))
    ordered["total"] = round(sum(delta.values()) * 1000 / recipients, 3)
    return ordered


def percent_of_core(delta: Mapping[str, float], seconds: float) -> dict[str, float]:
    """Percent of one core per process over ``seconds`` of wall time, with the total."""
    if seconds <= 0:
        return {}
    rows = {name: round(cpu * 100 / seconds, 2) for name, cpu in delta.items()}
    rows["total"] = round(sum(delta.values()) * 100 / seconds, 2)
    return rows


def measure_idle(roots: Mapping[str, int], seconds: float) -> dict[str, float]:
    """Percent of one core of each process (and all of them) over ``seconds`` of doing nothing."""
    before = cpu_snapshot(roots)
    started = time.monotonic()
    time.sleep(seconds)
    after = cpu_snapshot(roots)
    return percent_of_core(cpu_delta(before, after), time.monotonic() - started)


# --- memory --------------------------------------------------------------------------------------------------
def rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def rss_mb(pid: int) -> float:
    return round(rss_kb(pid) / 1024, 1)
