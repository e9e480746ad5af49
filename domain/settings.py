"""The only reader of environment variables.

Every business default from DOMAIN.md lives here as configuration, not in code paths, so an operator
can change a number without a release. Variables are prefixed ``LOYALTY_`` except the two URLs that
every PostgreSQL tool already knows by name.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _secrets_dir() -> str | None:
    """Secrets may also come as files named like their variable (``/run/secrets/database_url``,
    ``/run/secrets/loyalty_metrics_token``: Docker and Kubernetes secrets); an environment variable wins."""
    path = os.environ.get("LOYALTY_SECRETS_DIR", "/run/secrets")
    return path if os.path.isdir(path) else None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOYALTY_", extra="ignore", secrets_dir=_secrets_dir())

    # --- database -----------------------------------------------------------------------------
    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    """A PostgreSQL URL. Unset: an embedded PostgreSQL is started under ``data_dir``."""
    data_dir: Path = PROJECT_ROOT / ".var"
    """Project-local folder for the embedded database's files; survives restarts."""
    db_pool_size: int = 10
    db_max_overflow: int = 10
    db_statement_timeout_ms: int = 30_000

    # --- service ------------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 0
    """API worker processes; 0 (the default): one per CPU core the process may use (``worker_count``)."""
    access_log: bool = False
    """uvicorn's access line for every request. Off by default: about 50 µs of CPU a line with the JSON formatter
    (a few percent of a hot request, a tenth of ``/healthz``; docs/hot-paths.md). Errors are logged and every
    request is counted in ``/metrics`` either way."""
    log_level: str = "info"
    log_format: str = "auto"
    """``json`` (one JSON object a line: app, uvicorn and jobs alike), ``console`` (for a person at a terminal),
    or ``auto``: console when stderr is a terminal, else JSON."""
    metrics_token: str = ""
    """Bearer token Prometheus sends to ``/metrics`` (API and jobs process). Empty: ``/metrics`` is refused."""
    jobs_http_host: str = "127.0.0.1"
    jobs_http_port: int = 9108
    """The jobs process's own listener: ``/metrics`` and ``/healthz`` (0 turns it off)."""
    shutdown_grace_seconds: float = 8.0
    """After SIGTERM, how long a running job may take to finish its current chunk before it is abandoned."""
    default_timezone: str = "Asia/Shanghai"
    default_country: str = "CN"
    """Region used to read phone numbers written without a country code."""

    # --- points, tiers, rebates (DOMAIN.md defaults) ----------------------------------------------
    tier_thresholds_yuan: dict[str, int] = {"D": 0, "C": 1_000, "B": 5_000, "A": 20_000}
    """Qualifying spend over the rolling window that a tier needs."""
    tier_multipliers: dict[str, str] = {"D": "1.0", "C": "1.2", "B": "1.5", "A": "2.0"}
    """Points per yuan by tier, as decimal strings so no float rounding creeps into money."""
    tier_window_months: int = 12
    tier_downgrade_grace_days: int = 30
    points_return_window_days: int = 7
    """Points stay pending this long after the order (the return window)."""
    points_expiry_months: int = 12
    """Available points expire this long after they became available, oldest first."""
    points_expiring_soon_days: int = 30
    rebate_brackets_yuan: list[list[int]] = [[1_000, 300], [5_000, 500]]
    """The default quarterly rebate: [minimum qualifying spend in yuan, rate in basis points] — 3% from
    1,000 yuan, 5% from 5,000 (the highest bracket reached applies)."""
    program_timezone: str = "Asia/Shanghai"
    """The calendar periods (quarters) of rebate programs are counted in this zone."""
    event_future_minutes: int = 5
    """An order, refund or usage fact may say it happened at most this far after the server's clock (drift)."""
    event_backdating_days: int = 30
    """Orders and refunds older than this are refused on the systems' routes; the operators' import takes them
    (``POST /v1/admin/orders``), and their points are dated by the order like any other."""

    # --- contact policy (DOMAIN.md, Contact policy) ---------------------------------------------
    quiet_hours_start: str = "21:00"
    quiet_hours_end: str = "09:00"
    """No marketing or care touch between these member-local times; such a touch is deferred, not dropped."""
    onboarding_days: int = 30
    complaint_cooldown_days: int = 90
    max_deferral_days: int = 7
    """A touch that caps would push further out than this is rejected instead of deferred."""
    contact_caps: list[dict[str, Any]] = [
        {"name": "marketing_calls", "purposes": ["marketing"], "channels": ["phone"], "limit": 1, "window_days": 30},
        {"name": "marketing_messages", "purposes": ["marketing"], "channels": ["sms", "wechat", "email", "app"],
         "limit": 4, "window_days": 7},
    ]
    tier_cap_overrides: dict[str, dict[str, int]] = {}
    """Per-tier limits by cap name, e.g. ``{"A": {"marketing_calls": 2}}``."""
    campaign_send_workers: int = Field(default=0, ge=0)
    """Connections the campaign send takes its batches through at once (SKIP LOCKED shares the audience between
    them as between two runs); 0, the default: one per CPU core the process may use, at most 4 (the work is the
    database's: more connections than its cores only queue there; ``campaign_send_worker_count``). Each holds
    ``campaign_send_batch`` contact locks while its batch is open: workers × batch must stay well inside
    PostgreSQL's lock table (``max_locks_per_transaction`` × ``max_connections``, 6,400 by default)."""
    campaign_send_batch: int = Field(default=1000, ge=1, le=5000)
    """Audience members a campaign-send batch takes through the gate in one transaction (one statement)."""
    channel_order: list[str] = ["wechat", "app", "email", "sms"]
    """Message channels a journey or campaign step on ``preferred`` may choose, in the order used when the
    member has no usable preferred channel and no scores: the cheaper electronic channels first. A phone
    call is never chosen for a message step; name ``phone`` in the step to call."""

    # --- delivery --------------------------------------------------------------------------------
    webhook_urls: dict[str, str] = {}
    """Channel → URL of an HTTP gateway (SMS, email, app push). A channel without one uses the dev recorder."""
    webhook_timeout_seconds: float = 5.0
    delivery_max_attempts: int = 5
    delivery_backoff_seconds: int = 30
    delivery_lease_seconds: int = 120
    """How long a claimed touch is owned by one dispatcher before another may take it over."""

    welcome_window_days: int = 7
    """Only members who joined within this many days of being enrolled get the welcome journey."""
    webhook_event_timeout_seconds: float = 5.0
    webhook_event_window_hours: int = 24
    """How far back the deliver-webhooks job looks for events to queue (it runs every 30 s; a day covers a
    long outage of the jobs process)."""
    webhook_event_lease_seconds: int = 60
    webhook_event_max_attempts: int = 10
    webhook_event_backoff_seconds: int = 30
    webhook_event_backoff_cap_seconds: int = 3600
    webhook_event_max_batches: int = 100
    webhook_secret_overlap_hours: int = 24
    """After a secret rotation, deliveries are also signed with the old secret this long."""

    dormancy_days: int = 180
    """No purchase for this long makes a member dormant and starts the reactivation journey."""
    care_greeting_time: str = "10:00"
    care_holidays: dict[str, str] = {}
    """Date (YYYY-MM-DD) → holiday name for greetings, e.g. ``{"2027-02-06": "Spring Festival"}``."""
    # --- WeChat official account -----------------------------------------------------------------
    wechat_app_id: str = ""
    wechat_app_secret: str = ""
    """Without an app id and secret the WeChat adapter runs in local mode: it records what it would send."""
    wechat_token: str = "loyalty-dev-token"
    """The callback token configured in the official account's console (signs every callback)."""
    wechat_encoding_aes_key: str = ""
    """Set: the callback takes only AES (safe-mode) messages, whose body is signed; plaintext ones are refused."""
    wechat_previous_encoding_aes_key: str = ""
    """After rotating the EncodingAESKey, the old one stays valid here until removed."""
    wechat_api_base_url: str = "https://api.weixin.qq.com/cgi-bin/"
    wechat_timeout_seconds: float = 5.0
    wechat_oauth_api_base_url: str = "https://api.weixin.qq.com/"
    wechat_oauth_state_minutes: int = 10
    wechat_templates: dict[str, str] = {}
    """Message name → WeChat template id, for service notices (points earned, tier change …)."""
    wechat_subscription_templates: dict[str, str] = {}
    """Message name → subscription-message template id. A service notice goes as a subscription message
    when the follower holds an unused grant for that template, else as a template message."""
    wechat_bind_code_minutes: int = 10
    wechat_bind_code_resend_seconds: int = 60
    wechat_bind_codes_per_state: int = 5
    wechat_bind_code_attempts: int = 5
    """Phone binding: an SMS code lives 10 minutes, is resent at most once a minute and five times per
    binding, and five wrong answers end it."""
    wechat_bind_codes_per_phone_hour: int = 5
    wechat_bind_codes_per_openid_hour: int = 10
    wechat_bind_wrong_codes_per_phone_hour: int = 5
    """Across bindings: codes sent to one phone, codes asked for by one WeChat user (the client), and wrong
    answers for one phone, in the last hour — so new bindings or resends buy neither SMS floods nor guesses."""
    member_home_url: str = ""
    """Where the member's pages continue after signing in (the H5 app's home); the WeChat binding page links to
    it when set."""
    member_sms_code_minutes: int = 5
    member_sms_resend_seconds: int = 60
    member_sms_codes_per_phone_hour: int = 5
    member_sms_codes_per_client_hour: int = 20
    member_sms_wrong_codes_per_phone_hour: int = 5
    """Member sign-in by phone + SMS code (``POST /v1/me/sessions/sms-code``, ``…/sms``): a code lives 5
    minutes and only the newest one counts; a phone gets a code at most once a minute and five an hour; one
    client address asks for at most twenty an hour; five wrong codes for a phone in an hour, over every
    resend, close sign-in for that phone until the hour has passed."""
    wechat_binding_retention_hours: int = 24
    wechat_callback_retention_hours: int = 48
    """``prune-wechat`` deletes binding attempts (with their code digests) and callback dedupe keys older than
    these; WeChat retries a callback within a minute, and the SMS limits look back one hour."""
    wechat_unionid_batch: int = 100
    """Openids per call to WeChat's ``user/info/batchget`` (WeChat's own maximum is 100)."""
    wechat_unionid_recheck_days: int = 7
    """A follower WeChat gave no unionid is asked again after this long (the account may have joined the
    open platform since)."""
    wechat_menu: dict[str, Any] = {"button": [
        {"name": "My account", "sub_button": [
            {"type": "click", "name": "My points", "key": "MY_POINTS"},
            {"type": "click", "name": "My tier", "key": "MY_TIER"},
            {"type": "click", "name": "My coupons", "key": "MY_COUPONS"},
            {"type": "click", "name": "My adviser", "key": "MY_REP"}]},
        {"type": "view", "name": "Bind phone", "url": "http://127.0.0.1:8000/wechat/oauth/start"}]}
    """The official account's menu as WeChat's menu/create JSON."""
    wechat_max_clock_skew_seconds: int = 300
    wechat_max_body_bytes: int = 65_536
    """WeChat's callbacks are a few kilobytes; a bigger body is refused (413) before it is parsed."""
    wechat_public_base_url: str = "http://127.0.0.1:8000"
    """Where members' browsers reach this service (for the phone-binding link in replies)."""
    wechat_welcome_text: str = "Welcome! Tap My points, My tier or My coupons in the menu, or bind your phone."
    wechat_keyword_replies: dict[str, str] = {"points": "Tap My points in the menu to see your balance."}
    wechat_default_reply: str = "Thanks for your message. An agent will read it soon."

    # --- group customers (DOMAIN.md, Members → Group customers) -------------------------------------
    account_service_roles: list[str] = ["key_contact", "leader"]
    """Roles in an organisation whose holders are served at the account's service level."""
    account_service_relations: list[str] = ["spouse", "child", "parent"]
    """Relatives of those holders (what they are to the holder) who are served at it too."""
    revenue_class_service_tier: dict[str, str] = {"key": "A", "large": "B", "medium": "C", "small": "D"}
    """An account's service level unless set on the account."""
    revenue_class_visits_per_year: dict[str, int] = {"key": 24, "large": 12, "medium": 4, "small": 1}
    """The visit plan unless set on the account."""
    account_care_roles: list[str] = ["key_contact", "leader"]
    """People whose organisation's important dates (founding anniversary) start the care journeys."""
    key_accounts_per_manager: int = 10
    account_complaint_response_hours: int = 48

    access_log_durable_commit: bool = False
    """True: a CRM read's commit waits until its access-log entry is on disk (about half the lookup
    throughput here). False: a PostgreSQL crash may lose the last fraction of a second of read records."""

    # --- who may call (staff and member sessions) ---------------------------------------------------
    token_keys: dict[str, str] = {}
    """Signing keys of session tokens, key id → secret (at least 32 characters), as JSON. Every key listed
    verifies; ``token_signing_kid`` signs. To rotate: add the new key, sign with it, drop the old one once
    the tokens it signed have expired — nobody is logged out. Unset: a random key kept in
    ``data_dir/token-keys.json`` (one machine; set this for several hosts)."""
    token_signing_kid: str = ""
    """The key id that signs new tokens; empty: the last one in ``token_keys``."""
    staff_token_minutes: int = 30
    """Life of a staff access token; the console refreshes it while the session lives."""
    staff_session_hours: int = 12
    """Longest a staff login lasts (a shift) before the password is asked again."""
    member_token_minutes: int = 15
    """Life of a member access token (it lives on a phone); the app refreshes it with the refresh token."""
    member_session_days: int = 30
    """Longest a member stays signed in without proving who they are again."""
    staff_login_max_failures: int = 5
    staff_login_lock_minutes: int = 15
    """After this many wrong passwords in a row, an account refuses logins for this long (429)."""
    staff_password_min_length: int = 10

    # --- privacy (docs/operations.md, Privacy) ----------------------------------------------------
    retention_access_log_days: int = 1_095
    """Access-log entries (who read whose data) are deleted after this many days."""
    retention_touch_content_days: int = 730
    """A touch's personalised variables and provider errors are scrubbed after this many days (the row stays:
    caps and campaign reports count it); its delivery attempts are deleted."""
    retention_closed_member_days: int = 1_095
    """A closed member's personal data is erased this long after closing (0: only on request)."""

    job_chunk_members: int = 50_000
    """Members per transaction in set-based jobs: small enough to keep locks short, large enough to be fast."""

    # --- request edge (api/edge.py, api/serving.py; docs/edge.md) -----------------------------------
    max_body_bytes: int = 1_048_576
    """A request body over this many bytes is refused with 413 before anything reads or parses it."""
    body_timeout_seconds: float = 30.0
    """A request body must arrive in full within this long (408 otherwise)."""
    header_timeout_seconds: float = 10.0
    """A connection's request headers must arrive within this long, or the connection is closed."""
    keep_alive_seconds: int = 5
    limit_concurrency: int = 1_000
    """Open connections plus running requests per worker; above it uvicorn answers 503 at once (0: no cap)."""
    cors_origins: list[str] = []
    """Browser origins allowed to call the API (``["https://m.example.com"]``); none by default."""
    trusted_proxies: str = "127.0.0.1"
    """Addresses (or networks, comma-separated; ``*`` for any) of the reverse proxies whose ``X-Forwarded-For`` and
    ``X-Forwarded-Proto`` are believed: a request through one counts as coming from the address the proxy names,
    so the per-address rate limit and the SMS codes' per-client limit apply to each person, not to the proxy. Any
    other peer's forwarded headers are ignored (a client could name any address). Empty: believe none."""
    rate_limit_per_ip: float = 50.0
    rate_limit_per_ip_burst: int = 100
    """Requests per second (and burst) from one client address, over all workers; 0 turns the limit off."""
    rate_limit_per_key: float = 100.0
    rate_limit_per_key_burst: int = 200
    """Requests per second (and burst) with one bearer credential, over all workers; 0 turns it off."""
    lock_timeout_ms: int = 1_000
    """How long a request waits for a row lock (a member's) before answering 429 ``member_busy``."""

    # --- channel preference, lifecycle and churn (DOMAIN.md, Channel preference; Lifecycle) -------------
    score_window_months: int = 6
    """Channel-preference scores read the member's usage over this many months."""
    score_seed: int = 42
    score_statement_timeout_ms: int = 900_000
    """Scoring reads and writes every member in a few statements: they may run for minutes, not 30 s."""
    lifecycle_policy: dict[str, Any] = {}
    """Overrides of ``domain.lifecycle.rules.LifecyclePolicy``'s defaults (stage thresholds, churn weights),
    e.g. ``{"idle_days": 45, "at_risk_threshold": 0.6}``."""
    """Seed of the preference model's training sample: the same data and seed give the same model."""

    # --- scheduler ----------------------------------------------------------------------------
    scheduler_timezone: str = "Asia/Shanghai"

    def worker_count(self) -> int:
        """``workers``, or one per CPU core this process may run on when it is 0."""
        return self.workers or _cores()

    def campaign_send_worker_count(self) -> int:
        """``campaign_send_workers``, or one per CPU core this process may run on (at most 4) when it is 0."""
        return self.campaign_send_workers or min(_cores(), 4)


def _cores() -> int:
    return len(os.sched_getaffinity(0)) or 1


@lru_cache
def get_settings() -> Settings:
    return Settings()
