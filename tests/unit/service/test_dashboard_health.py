"""The dashboard's documented health rules (``sibyl.service._dashboard.health``)."""

from __future__ import annotations

from typing import Any

import pytest

from sibyl.service._dashboard import health
from sibyl.settings import DashboardSettings
from sibyl.store import RequestStats

RULES = DashboardSettings()


def stats(ok: int, failed: int = 0, p95: float | None = 20.0, invalid: int = 0) -> RequestStats:
    by_status = {"ok": ok, "error": failed, "invalid": invalid}
    return RequestStats(ok + failed + invalid, by_status, ok, 10.0, p95)


def alert(severity: str, state: str = "firing") -> dict[str, Any]:
    return {"rule": f"m:{severity}", "state": state, "severity": severity}


@pytest.mark.parametrize(
    ("numbers", "alerts", "drift", "status"),
    [
        (stats(100), [], {"status": "ok"}, "ok"),
        (stats(0, p95=None), [], {"status": "unknown"}, "ok"),  # no traffic
        (stats(98, invalid=50), [], {}, "ok"),  # client errors do not count
        (stats(985, 15), [], {}, "degraded"),  # 98.5 % < 99 %
        (stats(90, 10), [], {}, "failing"),  # 90 % < 95 %
        (stats(100, p95=150.0), [], {}, "degraded"),
        (stats(100, p95=1500.0), [], {}, "failing"),
        (stats(100), [alert("warning")], {}, "degraded"),
        (stats(100), [alert("critical")], {}, "failing"),
        (stats(100), [alert("critical", "pending")], {}, "ok"),  # not firing yet
        (stats(100), [], {"status": "drift"}, "degraded"),
    ],
)
def test_health_rules(
    numbers: RequestStats, alerts: list[dict[str, Any]], drift: dict[str, Any], status: str
) -> None:
    got = health(numbers, alerts, drift, RULES)
    assert got["status"] == status
    assert bool(got["reasons"]) == (status != "ok")
