"""``loyalty scores``: channel-preference scores — refresh them, and validate them as the material did."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

import click

from cli.common import AS_OF, engine, handle_domain_errors, session_scope


@click.group("scores")
def scores_group() -> None:
    """Channel-preference scores (entropy method + logistic model) and their validation."""


@scores_group.command("report")
@click.option("--as-of", type=AS_OF, default=None, help="End of the validation window (default: now).")
@click.option("--seed", type=int, default=None, help="Model and tie-break seed (default LOYALTY_SCORE_SEED).")
@click.option("--png", type=click.Path(dir_okay=False, path_type=Path), default=Path("gains.png"), show_default=True,
              help="Where to write the gains chart.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as JSON.")
@handle_domain_errors
def report_command(as_of: datetime | None, seed: int | None, png: Path, as_json: bool) -> None:
    """Fit on 3 months, validate on the next 2: per channel, true preferrers captured by the top 10 % / 20 % and
    the lift, for the model, the baseline rule and random. Stores the report (served to the console) and writes
    the gains chart."""
    import resource

    from domain.clock import utcnow
    from domain.scores import report as score_report
    from domain.scores import service as scores
    from domain.settings import get_settings

    started = time.perf_counter()
    with session_scope() as session:
        scores.allow_long_statements(session)
        report = score_report.validate(session, as_of=(as_of or utcnow()).date(),
                                       seed=get_settings().score_seed if seed is None else seed)
        score_report.store_report(session, report=report, now=utcnow())
    png.write_bytes(score_report.gains_png(report))
    if as_json:
        click.echo(json.dumps(report, indent=1))
        return
    split = report["split"]
    click.echo(f"fit {split['fit_start']}..{split['fit_end']}, validate {split['validate_start']}.."
               f"{split['validate_end']}; {report['members']:,} members, {report['with_history']:,} with history "
               f"in the fit window; truth: {report['truth']}")
    click.echo(f"{'channel':8} {'method':9} {'true':>8} {'top10%':>7} {'lift':>5} {'top20%':>7} {'lift':>5}")
    for row in score_report.lift_table(report):
        click.echo(f"{row['channel']:8} {row['method']:9} {row['true_preferrers']:>8,} "
                   f"{row['top10_captured']:>7.1%} {row['top10_lift']:>5.2f} "
                   f"{row['top20_captured']:>7.1%} {row['top20_lift']:>5.2f}")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    click.echo(f"gains chart: {png}; {time.perf_counter() - started:.1f} s, peak memory {peak_mb:.0f} MB")


@scores_group.command("campaign-effect")
@click.option("--members", type=click.IntRange(100, 5_000_000), default=50_000, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--as-of", type=AS_OF, default=None, help="When the campaign runs (default: now).")
@handle_domain_errors
def campaign_effect_command(members: int, seed: int, as_of: datetime | None) -> None:
    """The same synthetic campaign twice through the gate, on the best-scoring channel and on the channel chosen
    without scores; acceptance of each with its 95 % interval (needs a `loyalty demo seed` population)."""
    import resource

    from domain.clock import utcnow
    from domain.scores.effect import campaign_effect

    started = time.perf_counter()
    result = campaign_effect(engine(), members=members, seed=seed, now=as_of or utcnow())
    click.echo(json.dumps(result, indent=1))
    for name, arm in result["arms"].items():
        low, high = arm["ci95"]
        click.echo(f"{name:9}: {arm['accepted']:,} of {arm['contacted']:,} contacted accepted = "
                   f"{(arm['acceptance'] or 0):.2%} (95 % CI {low:.2%}–{high:.2%}); on the true preferred channel "
                   f"{(arm['on_true_preference'] or 0):.0%}")
    low, high = result["difference"]["ci95"]
    click.echo(f"difference: {(result['difference']['uplift'] or 0):+.2%} (95 % CI {(low or 0):+.2%} to "
               f"{(high or 0):+.2%}); {time.perf_counter() - started:.1f} s, peak memory "
               f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


def register(main: click.Group) -> None:
    main.add_command(scores_group)
