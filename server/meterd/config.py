"""Every setting of the server in one place: name, type, default and meaning.

Each setting is read from a command-line flag (``--pool-max``), else from the environment
(``METER_POOL_MAX``), else its default. ``meter serve --help`` and the README table are produced
from ``SETTINGS`` so they never drift from the code.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


@dataclasses.dataclass(frozen=True)
class Setting:
    name: str  # attribute name; flag is --name-with-dashes, env var METER_NAME
    parse: Callable[[str], Any]
    default: Any
    help: str

    @property
    def env(self) -> str:
        return "METER_" + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def parse_seconds(text: str) -> float:
    """Accept "2", "2s", "500ms", "5m", "1h", "30d"."""
    text = text.strip().lower()
    for suffix, factor in (("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


def _bool(text: str) -> bool:
    if text.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if text.strip().lower() in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {text!r}")


SETTINGS: tuple[Setting, ...] = (
    Setting("listen", str, "127.0.0.1:50051", "gRPC listen address (host:port; port 0 picks a free one)."),
    Setting(
        "database_url",
        str,
        "",
        "PostgreSQL URL. Empty: start the embedded PostgreSQL under data_dir.",
    ),
    Setting("data_dir", Path, Path(".meter"), "Where the embedded PostgreSQL keeps its data."),
    Setting("pool_min", int, 2, "Database connections kept open."),
    Setting("pool_max", int, 10, "Database connections at most."),
    Setting(
        "pool_timeout",
        parse_seconds,
        2.0,
        "Seconds an RPC waits for a database connection before it fails with UNAVAILABLE.",
    ),
    Setting(
        "pool_max_waiting",
        int,
        1000,
        "RPCs allowed to queue for a connection; beyond that they fail at once with UNAVAILABLE.",
    ),
    Setting(
        "statement_timeout",
        parse_seconds,
        10.0,
        "Seconds a single SQL statement may run before PostgreSQL cancels it.",
    ),
    Setting("log_level", str, "INFO", "DEBUG, INFO, WARNING or ERROR."),
    Setting(
        "grace_period",
        parse_seconds,
        10.0,
        "Seconds in-flight RPCs get to finish on SIGTERM/SIGINT before they are cancelled.",
    ),
    Setting(
        "health_interval",
        parse_seconds,
        2.0,
        "Seconds between database health probes (health turns NOT_SERVING while the database is down).",
    ),
    Setting(
        "key_cache_ttl",
        parse_seconds,
        5.0,
        "Seconds a verified API key is trusted without a database look-up (revocation delay bound).",
    ),
    Setting(
        "metrics_listen",
        str,
        "",
        "host:port for Prometheus metrics over HTTP (e.g. 127.0.0.1:9464). Empty: off.",
    ),
    Setting("uvloop", _bool, True, "Use uvloop when it is installed (about 30% more RPCs per CPU)."),
    Setting(
        "backfill_horizon",
        parse_seconds,
        30 * 86400.0,
        "How far in the past RecordCall.occurred_at may be (seconds; default 30 days).",
    ),
    Setting(
        "max_reservation_ttl",
        parse_seconds,
        3600.0,
        "Longest reservation TTL a caller may ask for (seconds); longer requests are cut to it.",
    ),
    Setting(
        "sweep_interval",
        parse_seconds,
        1.0,
        "Seconds between sweeps that release expired reservations (the most a leaked one outlives its TTL).",
    ),
    Setting(
        "reuse_port",
        _bool,
        False,
        "Let several server processes listen on the same port (SO_REUSEPORT); the kernel spreads connections.",
    ),
    Setting(
        "workers",
        int,
        0,
        "Server processes sharing --listen (SO_REUSEPORT), each with its own connection pool and batchers, run "
        "as one service (docs/operations.md#workers). 0: one per CPU available to Meter; 1: a single process.",
    ),
    Setting(
        "batch_workers",
        int,
        1,
        "Group-commit transactions in flight per process for checks and for records; each carries every "
        "request queued meanwhile (1 gives the largest batches; add processes with --workers to scale).",
    ),
    Setting(
        "batch_timeout",
        parse_seconds,
        5.0,
        "Seconds a group-commit transaction may take, and a request may wait queued for one, before its "
        "requests fail with UNAVAILABLE (the connection is discarded).",
    ),
    Setting(
        "tenant_max_in_flight",
        int,
        8,
        "RPCs one tenant may have in progress per server process while another tenant is active (streams "
        "excepted); more wait, in order and without touching the database, so one tenant's flood only queues "
        "behind itself. A tenant alone may use the whole server. 0: off.",
    ),
    Setting(
        "tenant_max_rate",
        float,
        300.0,
        "RPCs one tenant may start per second per server process while another tenant is active (a burst of "
        "a tenth of a second's worth); more wait like those over tenant_max_in_flight. Bounds the event loop's "
        "time one tenant takes, which the in-flight bound alone does not. A tenant alone is not capped. 0: off.",
    ),
    Setting(
        "tenant_max_wait",
        parse_seconds,
        2.0,
        "Seconds an RPC of a tenant over tenant_max_in_flight may wait for a slot (at most 64 x that many "
        "wait) before it gets RESOURCE_EXHAUSTED with RetryInfo.",
    ),
    Setting(
        "unknown_key_ttl",
        parse_seconds,
        30.0,
        "Seconds an API key the database did not know is refused from memory, without another look-up.",
    ),
    Setting(
        "peer_auth_failures",
        int,
        20,
        "Failed authentications one client host may make per 10 s; beyond that its keys not already "
        "verified are refused with RESOURCE_EXHAUSTED after about 1 s (no database look-up). 0: off.",
    ),
    Setting(
        "reconnect_timeout",
        parse_seconds,
        2.0,
        "Seconds one reconnect attempt of the pool lasts (its backoff grows within it) before a fresh attempt "
        "starts: the most the pool lags behind a database that came back.",
    ),
    Setting(
        "tcp_user_timeout",
        parse_seconds,
        10.0,
        "Seconds a database socket may leave data unacknowledged (TCP keepalives probe idle ones) before the "
        "connection is dropped: bounds a hung network, where statement_timeout cannot help.",
    ),
    Setting(
        "max_future_skew",
        parse_seconds,
        300.0,
        "How far in the future RecordCall.occurred_at may be (seconds), for clock skew.",
    ),
    Setting(
        "alert_heartbeat",
        parse_seconds,
        15.0,
        "Default seconds between StreamAlerts heartbeats (a request may ask for 1 s .. 5 min).",
    ),
    Setting(
        "alert_stream_buffer",
        int,
        1000,
        "Alerts a StreamAlerts stream may fall behind before it is ended with RESOURCE_EXHAUSTED (resume with since_id).",
    ),
    Setting(
        "alert_poll_interval",
        parse_seconds,
        1.0,
        "Seconds between reads of new alerts when no NOTIFY came (a safety net; NOTIFY wakes the reader at once).",
    ),
    Setting(
        "alert_eval_interval",
        parse_seconds,
        10.0,
        "Seconds between rounds of the periodic alert rules (window cost, error rate, latency, denials...).",
    ),
    Setting("webhook_timeout", parse_seconds, 5.0, "Seconds an alert webhook POST may take."),
    Setting("webhook_max_attempts", int, 8, "Attempts per alert webhook before it is given up (marked failed)."),
    Setting(
        "webhook_retry_base",
        parse_seconds,
        1.0,
        "Seconds before the first webhook retry; each further retry waits twice as long (at most 1 h).",
    ),
    # Transport security (meterd/tls.py, docs/operations.md#tls).
    Setting("tls_cert", str, "", "Server certificate chain, leaf first (PEM). With --tls-key: serve TLS only."),
    Setting("tls_key", str, "", "Private key of --tls-cert (unencrypted PEM)."),
    Setting(
        "tls_client_ca",
        str,
        "",
        "CA bundle (PEM) client certificates must chain to: mutual TLS, a client without one is refused.",
    ),
    Setting(
        "tls_reload_interval",
        parse_seconds,
        10.0,
        "Seconds between checks of the TLS files for changes (also re-read on SIGHUP); new connections get the new ones.",
    ),
    Setting(
        "insecure",
        _bool,
        False,
        "Allow plaintext on a non-loopback --listen address (logged as a warning); without it Meter refuses to start.",
    ),
    Setting("metrics_tls", _bool, False, "Serve --metrics-listen over HTTPS with the --tls-cert certificate."),
    Setting(
        "key_last_used_interval",
        parse_seconds,
        60.0,
        "Seconds between writes of API keys' last-use times (ListApiKeys); each key costs one row update at most per interval.",
    ),
    Setting(
        "alert_console_url",
        str,
        "",
        "Web console URL linked from alert messages (Slack, Teams, email...). Empty: no link.",
    ),
    Setting(
        "metrics_tenant_labels",
        int,
        0,
        "Also export per-tenant business series (meter_tenant_*), the tenant label taking at most this many values "
        '(the rest folded into tenant="other"; at least 2). 0: off, provider and model labels only.',
    ),
    Setting(
        "otel_endpoint",
        str,
        "",
        "OTLP/gRPC collector for OpenTelemetry traces (e.g. http://127.0.0.1:4317; needs pip install 'meter[otel]'). "
        "Empty: tracing off and OpenTelemetry not even imported.",
    ),
    Setting("otel_service_name", str, "meter", "service.name of the spans this server exports."),
    Setting(
        "otel_sample_ratio",
        float,
        1.0,
        "Fraction of the traces started here that are kept (0..1); a client's sampled traceparent is always followed.",
    ),
)


@dataclasses.dataclass(frozen=True)
class Config:
    listen: str
    database_url: str
    data_dir: Path
    pool_min: int
    pool_max: int
    pool_timeout: float
    pool_max_waiting: int
    statement_timeout: float
    log_level: str
    grace_period: float
    health_interval: float
    key_cache_ttl: float
    metrics_listen: str
    uvloop: bool
    backfill_horizon: float
    max_reservation_ttl: float
    sweep_interval: float
    reuse_port: bool
    workers: int
    batch_workers: int
    batch_timeout: float
    tenant_max_in_flight: int
    tenant_max_rate: float
    tenant_max_wait: float
    unknown_key_ttl: float
    peer_auth_failures: int
    reconnect_timeout: float
    tcp_user_timeout: float
    max_future_skew: float
    alert_heartbeat: float
    alert_stream_buffer: int
    alert_poll_interval: float
    alert_eval_interval: float
    webhook_timeout: float
    webhook_max_attempts: int
    webhook_retry_base: float
    tls_cert: str
    tls_key: str
    tls_client_ca: str
    tls_reload_interval: float
    insecure: bool
    metrics_tls: bool
    key_last_used_interval: float
    alert_console_url: str
    metrics_tenant_labels: int
    otel_endpoint: str
    otel_service_name: str
    otel_sample_ratio: float

    @classmethod
    def load(cls, flags: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Config:
        """Flags (values that are not None) win over METER_* variables, which win over defaults."""
        flags = flags or {}
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for s in SETTINGS:
            if flags.get(s.name) is not None:
                raw = flags[s.name]
                values[s.name] = s.parse(raw) if isinstance(raw, str) else raw
            elif s.env in environ:
                try:
                    values[s.name] = s.parse(environ[s.env])
                except ValueError as exc:
                    raise ValueError(f"{s.env}={environ[s.env]!r}: {exc}") from None
            else:
                values[s.name] = s.default
        config = cls(**values)
        if config.metrics_tenant_labels and config.metrics_tenant_labels < 2:
            raise ValueError(f"metrics_tenant_labels ({config.metrics_tenant_labels}) is 0 (off) or at least 2")
        if not 0.0 <= config.otel_sample_ratio <= 1.0:
            raise ValueError(f"otel_sample_ratio ({config.otel_sample_ratio}) is between 0 and 1")
        if config.pool_min > config.pool_max:
            raise ValueError(f"pool_min ({config.pool_min}) is larger than pool_max ({config.pool_max})")
        if config.workers < 0:
            raise ValueError(f"workers ({config.workers}) must be 0 (one per CPU) or more")
        return config


def add_flags(parser: argparse.ArgumentParser, names: tuple[str, ...] | None = None) -> None:
    """Add one flag per setting (or per named setting); unset flags stay None so env vars apply."""
    for s in SETTINGS:
        if names is None or s.name in names:
            # A boolean flag alone means true (`--insecure`); `--insecure false` still works.
            extra: dict[str, Any] = {"nargs": "?", "const": "true"} if s.parse is _bool else {}
            parser.add_argument(
                s.flag,
                dest=s.name,
                default=None,
                **extra,
                # argparse %-formats help: a literal % (e.g. "30% more") must be doubled.
                help=f"{s.help} [env {s.env}, default {s.default}]".replace("%", "%%"),
            )


def markdown_table() -> str:
    rows = ["| flag | environment | default | meaning |", "| --- | --- | --- | --- |"]
    for s in SETTINGS:
        default = s.default if s.default != "" else "(empty)"
        rows.append(f"| `{s.flag}` | `{s.env}` | `{default}` | {s.help} |")
    return "\n".join(rows)
