"""Alerting is transport-free (CONVENTIONS §6): no FastAPI/Starlette below ``api/``."""

from __future__ import annotations

import subprocess
import sys


def test_alerts_do_not_import_fastapi() -> None:
    code = ("import sys, sibyl.monitoring.alerts; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('fastapi', 'starlette')]; "
            "print(bad); sys.exit(1 if bad else 0)")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
