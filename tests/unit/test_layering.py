"""Architecture rules that must hold (CONVENTIONS.md §6)."""

from __future__ import annotations

import subprocess
import sys


def test_service_layer_does_not_import_fastapi() -> None:
    code = ("import sys, sibyl.service, sibyl.batching, sibyl.runtime, sibyl.registry, "
            "sibyl.store, sibyl.routing, sibyl.cache, sibyl.experiments; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('fastapi', 'starlette')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
