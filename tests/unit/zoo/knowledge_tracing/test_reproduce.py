"""The smoke reproduction of the Simulated-5 table (seeded): the CI bars, and the CLI."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from sibyl.cli.zoo import _table, app
from sibyl.zoo.knowledge_tracing.reproduce import PAPER_AUC, REPRODUCE_STEPS, ReproRow, reproduce


@pytest.fixture(scope="module")
def smoke() -> tuple[dict[str, ReproRow], list[str]]:
    torch.set_num_threads(1)
    steps: list[str] = []
    rows = reproduce(full=False, seed=0, progress=steps.append)
    return {row.model: row for row in rows}, steps


def test_smoke_run_meets_the_ci_bars(smoke: tuple[dict[str, ReproRow], list[str]]) -> None:
    rows, _ = smoke
    lstm, sakt = rows["DKT (LSTM)"].auc, rows["DKT-Transformer (SAKT)"].auc
    baselines = max(rows["marginal"].auc, rows["BKT"].auc)
    assert lstm >= 0.78
    assert sakt >= lstm - 0.02
    assert min(lstm, sakt) > baselines + 0.1
    assert max(lstm, sakt) < rows["oracle"].auc + 0.005  # nothing beats the Bayes predictor


def test_smoke_table_has_every_row_beside_the_paper(
    smoke: tuple[dict[str, ReproRow], list[str]],
) -> None:
    rows, steps = smoke
    assert list(rows) == list(PAPER_AUC)
    assert all(rows[m].paper_auc == PAPER_AUC[m] for m in rows)
    assert all(r.seconds >= 0 for r in rows.values())
    assert len(steps) == REPRODUCE_STEPS
    table = _table(list(rows.values()), "t")
    assert table.row_count == 5


def test_cli_refuses_an_unknown_use_case_and_lists_the_valid_ones() -> None:
    result = CliRunner().invoke(app, ["reproduce", "churn"])
    assert result.exit_code == 1
    assert "churn" in result.output and "dkt" in result.output


def test_cli_table_prints_a_dash_where_the_paper_has_no_number() -> None:
    from rich.console import Console

    console = Console(width=120, record=True)
    console.print(
        _table([ReproRow("oracle", 0.829, None, 1.0, "x"), ReproRow("BKT", 0.62, 0.54, 2.0)], "t")
    )
    text = console.export_text()
    assert "0.829" in text and "—" in text and "0.54" in text
