"""Train a tiny DKT with a checkpoint, printing ``epoch N`` after each epoch (the test kills
this process after a few): ``python -m tests.unit.training._kt_worker CHECKPOINT``."""

from __future__ import annotations

import sys

from tests.unit.training.test_torch import SETTINGS


def main() -> None:
    from sibyl.training._torch import fit_knowledge_tracer

    def progress(_fraction: float, message: str) -> None:
        if message.startswith("epoch"):
            print(message.split(":")[0], flush=True)

    fit_knowledge_tracer("lstm", checkpoint=sys.argv[1], progress=progress, **SETTINGS)


if __name__ == "__main__":
    main()
