"""The sample dashboard and alert rules in deploy/ only name metrics the service really exposes."""

import json
import re

import yaml

from domain import telemetry
from domain.settings import PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy"
DB_FAMILIES = {"loyalty_database_up", "loyalty_outbox_due", "loyalty_outbox_oldest_due_age_seconds",
               "loyalty_job_last_success_timestamp_seconds"}


def exposed_names() -> set[str]:
    names = set(DB_FAMILIES)
    for value in vars(telemetry).values():
        describe = getattr(value, "describe", None)
        if callable(describe) and hasattr(value, "_name"):
            for family in describe():
                names |= {s for s in (family.name, f"{family.name}_total", f"{family.name}_bucket",
                                      f"{family.name}_count", f"{family.name}_sum")}
    return names


def referenced(text: str) -> set[str]:
    return set(re.findall(r"\bloyalty_[a-z_]+", text))


def test_alert_rules_cover_stale_jobs_and_a_stuck_outbox_with_real_metrics():
    rules = yaml.safe_load((DEPLOY / "prometheus-alerts.yml").read_text())["groups"][0]["rules"]
    by_name = {rule["alert"]: rule for rule in rules}
    assert "26 * 3600" in by_name["LoyaltyJobNotSucceededIn26h"]["expr"]
    assert "> 600" in by_name["LoyaltyOutboxStuck"]["expr"]
    for rule in rules:
        assert referenced(rule["expr"]) <= exposed_names(), rule["alert"]


def test_every_dashboard_query_names_a_real_metric():
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert exprs and all(referenced(e) <= exposed_names() for e in exprs)
    assert referenced(" ".join(exprs)) >= {"loyalty_gate_decisions_total", "loyalty_outbox_due",
                                           "loyalty_wechat_api_errors_total", "loyalty_db_pool_connections_in_use"}
