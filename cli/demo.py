"""``loyalty demo``: demo and benchmark data."""

from __future__ import annotations

from typing import Any

import click

from cli.common import engine


@click.group("demo")
def demo_group() -> None:
    """Demo data for trying the product and for benchmarks."""


@demo_group.command("seed")
@click.option("--members", type=click.IntRange(1, 10_000_000), default=10_000, show_default=True)
@click.option("--months", type=click.IntRange(1, 120), default=24, show_default=True, help="Months of history.")
@click.option("--seed", "seed_value", type=int, default=42, show_default=True, help="Random seed (repeatable data).")
def seed_command(members: int, months: int, seed_value: int) -> None:
    """Add MEMBERS members with MONTHS of orders, points, consents and complaints (COPY + set-based SQL)."""
    from cli.seed import seed

    bar_cm: Any = click.progressbar(length=members, label="members", file=click.get_text_stream("stderr"))  # type: ignore[operator]
    with bar_cm as bar:
        shown = [0]

        def progress(done: int) -> None:
            bar.update(done - shown[0])
            shown[0] = done

        def on_step(name: str, rows: int, seconds: float) -> None:
            click.echo(f"\n{name}: {rows:,} rows in {seconds:.1f} s", err=True)

        counts = seed(engine(), members=members, months=months, seed=seed_value, on_step=on_step, progress=progress)
    click.echo(", ".join(f"{k}={v}" for k, v in counts.items()))


def register(main: click.Group) -> None:
    main.add_command(demo_group)
