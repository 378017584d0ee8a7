"""Per-core CPU time from /proc/stat: how busy the server's core was with other people's work.

The machine is shared: a cell whose core 0 was busy with foreign processes (or whose vCPU was
stolen by the hypervisor) measured the neighbours too. Each cell records both shares.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CoreTimes:
    """Seconds a core spent in each state since boot."""

    process: float  # user + nice + system: time charged to some process
    steal: float
    total: float


def snapshot(core: int) -> CoreTimes:
    for line in Path("/proc/stat").read_text().splitlines():
        fields = line.split()
        if fields[0] == f"cpu{core}":
            ticks = [int(x) for x in fields[1:]]
            user, nice, system, steal = ticks[0], ticks[1], ticks[2], ticks[7]
            return CoreTimes((user + nice + system) * TICK_S, steal * TICK_S, sum(ticks) * TICK_S)
    raise RuntimeError(f"cpu{core} is not in /proc/stat")


def foreign_share(before: CoreTimes, after: CoreTimes, own_cpu_s: float) -> float:
    """Share of the core's time spent on processes other than ours (never below 0)."""
    elapsed = after.total - before.total
    if elapsed <= 0:
        return 0.0
    return max(0.0, (after.process - before.process - own_cpu_s) / elapsed)


def steal_share(before: CoreTimes, after: CoreTimes) -> float:
    elapsed = after.total - before.total
    return (after.steal - before.steal) / elapsed if elapsed > 0 else 0.0
