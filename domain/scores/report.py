"""Validation as the material did it: fit on a 3-month window, validate on the following 2 months.

Per channel: the share of the true preferrers that the top 10 % and 20 % of each ranking hold, and the lift
(that share divided by the share of members taken), for the model, the baseline rule and a random order.
"""

from __future__ import annotations

import io
from datetime import date, datetime
from typing import Any

import numpy as np
import sqlalchemy as sa
from numpy.typing import NDArray
from sqlmodel import Session, col, select

from domain.errors import NotFound
from domain.scores import rules
from domain.scores import service as scores
from domain.scores.models import ScoreReport

TOPS = (0.1, 0.2)


def _seeded_truth(session: Session) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    rows = scores.copy_numeric(session, sa.text(
        "SELECT member_id, array_position(CAST(:channels AS text[]), preferred) - 1 FROM demo_channel_truth "
        "ORDER BY member_id"
    ).bindparams(sa.bindparam("channels", list(rules.CHANNELS), type_=sa.ARRAY(sa.String))), columns=2)
    return rows[:, 0].astype(np.int64), rows[:, 1].astype(np.int64)


def validate(session: Session, *, as_of: date, seed: int, fit_months: int = 3, validate_months: int = 2
             ) -> dict[str, Any]:
    """Score as of the end of the fit window and judge the rankings against the truth: the seeded population's
    known preferences when there are any, else each member's most used channel in the validation window."""
    split = rules.validation_split(as_of, fit_months=fit_months, validate_months=validate_months)
    result = scores.compute_scores(session, start=split.fit_start, end=split.fit_end, seed=seed)
    truth_ids, truth_channel = _seeded_truth(session)
    if len(truth_ids):
        kind = "seeded"
        known = np.isin(result.member_ids, truth_ids)
        truth = np.full(len(result.member_ids), -1, dtype=np.int64)
        truth[known] = truth_channel[np.searchsorted(truth_ids, result.member_ids[known])]
    else:
        kind = "observed"
        later = scores.read_usage(session, start=split.validate_start, end=split.validate_end)
        observed = rules.baseline_preferred(later.values[:, :, 2])
        truth = np.full(len(result.member_ids), -1, dtype=np.int64)
        seen = np.isin(result.member_ids, later.member_ids)
        truth[seen] = observed[np.searchsorted(later.member_ids, result.member_ids[seen])]
    rng = np.random.default_rng(seed)
    tiebreak = rng.random(len(result.member_ids))
    channels: dict[str, Any] = {}
    for c, name in enumerate(rules.CHANNELS):
        is_true = truth == c
        orders = {
            "model": rules.ranking(result.scores[:, c], tiebreak=tiebreak),
            "baseline": rules.ranking((result.baseline == c).astype(np.float64), tiebreak=tiebreak),
            "random": rng.permutation(len(result.member_ids)).astype(np.int64),
        }
        channels[name] = {
            "true_preferrers": int(is_true.sum()),
            "rankings": {
                method: {
                    "tops": [vars(rules.capture_at(order, is_true, top)) for top in TOPS],
                    "gains": [list(map(float, axis)) for axis in rules.gains_curve(order, is_true)],
                } for method, order in orders.items()},
        }
    return {"as_of": as_of.isoformat(), "truth": kind, "seed": seed,
            "split": {k: v.isoformat() for k, v in vars(split).items()},
            "members": int(len(result.member_ids)), "with_history": int(result.from_usage.sum()),
            "entropy_weights": dict(zip(rules.INDICATORS, map(float, result.weights), strict=True)),
            "channels": channels}


def store_report(session: Session, *, report: dict[str, Any], now: datetime) -> ScoreReport:
    row = ScoreReport(as_of=date.fromisoformat(report["as_of"]), truth=report["truth"], report=report, created_at=now)
    session.add(row)
    session.flush()
    return row


def lift_table(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per channel and method: captured share and lift at the top 10 % and 20 %."""
    rows = []
    for channel, data in report["channels"].items():
        for method, ranking in data["rankings"].items():
            row: dict[str, Any] = {"channel": channel, "method": method, "true_preferrers": data["true_preferrers"]}
            for top in ranking["tops"]:
                pct = int(round(top["top_share"] * 100))
                row[f"top{pct}_captured"] = top["captured"]
                row[f"top{pct}_lift"] = top["lift"]
            rows.append(row)
    return rows


def gains_png(report: dict[str, Any]) -> bytes:
    """The gains chart: per channel, the share of true preferrers reached against the share of members taken."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(12, 7.5), sharex=True, sharey=True)
    styles = {"model": ("tab:blue", "-"), "baseline": ("tab:orange", "--"), "random": ("grey", ":")}
    for ax, (channel, data) in zip(axes.flat, report["channels"].items(), strict=False):
        for method, ranking in data["rankings"].items():
            xs, ys = ranking["gains"]
            lift = ranking["tops"][0]["lift"]
            colour, dash = styles.get(method, ("black", "-"))
            ax.plot(xs, ys, color=colour, linestyle=dash, label=f"{method} (lift@10% {lift:.1f}×)")
        ax.axvline(0.1, color="lightgrey", linewidth=0.8)
        ax.axvline(0.2, color="lightgrey", linewidth=0.8)
        ax.set_title(f"{channel} ({data['true_preferrers']:,} true preferrers)", fontsize=10)
        ax.legend(fontsize=7, loc="lower right")
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("share of members, best score first")
    for ax in axes[:, 0]:
        ax.set_ylabel("share of true preferrers reached")
    split = report["split"]
    fig.suptitle(f"Channel preference gains — fit {split['fit_start']}…{split['fit_end']}, validated "
                 f"{split['validate_start']}…{split['validate_end']} ({report['truth']} truth, "
                 f"{report['members']:,} members)", fontsize=11)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=100)
    plt.close(fig)
    return out.getvalue()


def latest_gains_png(session: Session) -> bytes:
    """The gains chart of the latest stored validation."""
    row = session.exec(select(ScoreReport).order_by(col(ScoreReport.id).desc()).limit(1)).first()
    if row is None:
        raise NotFound("no validation has been run yet (loyalty scores report)", code="no_score_report")
    return gains_png(row.report)
