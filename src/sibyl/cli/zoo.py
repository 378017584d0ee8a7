"""``sibyl zoo …``: the reference use cases — list them, reproduce a published table, report
which engine serves each model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from sibyl.cli import train as train_cli
from sibyl.cli._common import console, fail, out, progress_bar

if TYPE_CHECKING:
    from sibyl.zoo.knowledge_tracing.reproduce import ReproRow

app = typer.Typer(
    no_args_is_help=True,
    help="Reference use cases: list, reproduce published results, report serving engines.",
)

REPRODUCIBLE = ("dkt",)
"""Use cases ``reproduce`` knows."""


@app.callback()
def _group() -> None:
    """Reference use cases: list, reproduce published results, report serving engines."""


@app.command("list")
def list_use_cases() -> None:
    """The five use cases and the models each registers (``sibyl train <use-case>``)."""
    from sibyl.zoo.catalog import USE_CASES

    table = Table("use case", "models", "what")
    for case in USE_CASES.values():
        table.add_row(case.name, ", ".join(case.models), case.title)
    out.print(table)


app.command("engines")(train_cli.engines)


@app.command()
def reproduce(
    use_case: Annotated[str, typer.Argument(help="Use case to reproduce: dkt.")],
    full: Annotated[
        bool,
        typer.Option("--full/--smoke", help="Train to convergence (minutes) or a smoke run."),
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of the data generator and the models.")] = 0,
    threads: Annotated[int, typer.Option(min=1, help="torch threads while training.")] = 1,
) -> None:
    """Regenerate a use case's data, fit every model of its paper table and print measured
    AUCs beside the paper's (dkt: Piech et al. 2015, Simulated-5)."""
    if use_case not in REPRODUCIBLE:
        raise fail(
            ValueError(
                f"No reproducible use case '{use_case}'; choose one of {', '.join(REPRODUCIBLE)}"
            )
        )
    from sibyl.zoo.knowledge_tracing.reproduce import REPRODUCE_STEPS
    from sibyl.zoo.knowledge_tracing.reproduce import reproduce as run

    size = "full" if full else "smoke"
    with progress_bar(REPRODUCE_STEPS, f"reproducing {use_case} ({size})") as bar:
        rows = run(full=full, seed=seed, threads=threads, progress=bar)
    out.print(_table(rows, f"{use_case}: Simulated-5, seed {seed}, {size} run"))
    console.print("AUC: positions 2…50 of the 2,000 test students, pooled (the paper's protocol).")


def _table(rows: list[ReproRow], title: str) -> Table:
    table = Table("model", "AUC", "paper", "seconds", "note", title=title)
    for row in rows:
        paper = "—" if row.paper_auc is None else f"{row.paper_auc:.2f}"
        table.add_row(row.model, f"{row.auc:.3f}", paper, f"{row.seconds:.1f}", row.note)
    return table
