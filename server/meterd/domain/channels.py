"""Alert channels (Slack, Microsoft Teams, Discord, email, PagerDuty Events v2, the signed webhook):
validation, masking of their secrets, message templates and each service's native payload. No I/O.

Templates use `string.Template` (`${subject}`): placeholders only, no attribute access or code, so
a tenant's template cannot reach anything but the alert's own fields.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import string
from collections.abc import Iterable
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

MAX_CHANNELS = 8
MAX_URL = 2048
MAX_SECRET = 256
MAX_TEMPLATE = 2000
MAX_RECIPIENTS = 20
MAX_ADDRESS = 254  # RFC 5321 path limit
DEFAULT_PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"


class ChannelKind(StrEnum):
    WEBHOOK = "webhook"
    SLACK = "slack"
    TEAMS = "teams"
    DISCORD = "discord"
    EMAIL = "email"
    PAGERDUTY = "pagerduty"


class SmtpTls(StrEnum):
    STARTTLS = "starttls"  # plain connection upgraded with STARTTLS (port 587); the default
    TLS = "tls"  # implicit TLS from the first byte (port 465)
    NONE = "none"  # no encryption: only for a relay on localhost / a trusted network


@dataclasses.dataclass(frozen=True)
class Channel:
    kind: ChannelKind
    url: str = ""  # webhook/Slack/Teams/Discord: the target (a credential); PagerDuty: events endpoint
    secret: str = ""  # webhook: signing secret; PagerDuty: routing key; email: SMTP password
    email_to: tuple[str, ...] = ()
    email_from: str = ""
    smtp_host: str = ""
    smtp_port: int = 0
    smtp_tls: SmtpTls = SmtpTls.STARTTLS
    smtp_username: str = ""

    def to_json(self) -> dict[str, Any]:
        """The stored form (secrets included: the database is the one place that keeps them)."""
        out: dict[str, Any] = {"kind": self.kind.value}
        for name in ("url", "secret", "email_from", "smtp_host", "smtp_username"):
            if getattr(self, name):
                out[name] = getattr(self, name)
        if self.email_to:
            out["email_to"] = list(self.email_to)
        if self.smtp_port:
            out["smtp_port"] = self.smtp_port
        if self.kind is ChannelKind.EMAIL:
            out["smtp_tls"] = self.smtp_tls.value
        return out

    @classmethod
    def from_json(cls, j: dict[str, Any]) -> Channel:
        return cls(
            kind=ChannelKind(j["kind"]),
            url=j.get("url", ""),
            secret=j.get("secret", ""),
            email_to=tuple(j.get("email_to", ())),
            email_from=j.get("email_from", ""),
            smtp_host=j.get("smtp_host", ""),
            smtp_port=j.get("smtp_port", 0),
            smtp_tls=SmtpTls(j.get("smtp_tls", "starttls")),
            smtp_username=j.get("smtp_username", ""),
        )

    @property
    def target(self) -> str:
        """Where it goes, with nothing secret in it (for list RPCs, logs and delivery records)."""
        if self.kind is ChannelKind.EMAIL:
            return ", ".join(self.email_to)
        return mask_url(self.url or (DEFAULT_PAGERDUTY_URL if self.kind is ChannelKind.PAGERDUTY else ""))


def mask_url(url: str) -> str:
    """Scheme and host only: Slack, Teams and Discord webhook URLs carry their token in the path."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        return ""
    port = f":{parts.port}" if parts.port else ""
    return (
        f"{parts.scheme}://{parts.hostname}{port}/…"
        if parts.path not in ("", "/")
        else f"{parts.scheme}://{parts.hostname}{port}/"
    )


def _http_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and len(url) <= MAX_URL


def _address(a: str) -> bool:
    local, _, domain = a.partition("@")
    return bool(local) and "." in domain and len(a) <= MAX_ADDRESS and not any(c in a for c in " \r\n<>,;")


_TYPES = {"kind": str, "url": str, "secret": str, "email_from": str, "smtp_host": str, "smtp_tls": str,
          "smtp_username": str, "smtp_port": int}  # fmt: skip


def _well_typed(c: Any, f: str, v: list[tuple[str, str]]) -> bool:
    """The CLI passes JSON: wrong types get a violation, not a crash."""
    if not isinstance(c, dict):
        v.append((f, "a channel object"))
        return False
    ok = True
    for name, value in c.items():
        want = _TYPES.get(name)
        if name == "email_to":
            if not isinstance(value, list | tuple) or not all(isinstance(a, str) for a in value):
                v.append((f"{f}.email_to", "a list of addresses"))
                ok = False
        elif want is None:
            v.append((f"{f}.{name}", "unknown field"))
            ok = False
        elif not isinstance(value, want) or isinstance(value, bool):
            v.append((f"{f}.{name}", f"must be a {'number' if want is int else 'string'}"))
            ok = False
    return ok


def validate_channels(raw: Iterable[dict[str, Any]], v: list[tuple[str, str]]) -> tuple[Channel, ...]:
    """Raw channel fields (dicts with the Channel field names, kind as a ChannelKind value or "") →
    channels; problems are appended to `v` as (field path, why)."""
    out = []
    raw = list(raw)
    if len(raw) > MAX_CHANNELS:
        v.append(("rule.channels", f"at most {MAX_CHANNELS} channels per rule"))
    for i, c in enumerate(raw[:MAX_CHANNELS]):
        f = f"rule.channels[{i}]"
        if not _well_typed(c, f, v):
            continue
        try:
            kind = ChannelKind(c.get("kind", ""))
        except ValueError:
            v.append((f"{f}.kind", "required: webhook, slack, teams, discord, email or pagerduty"))
            continue
        url, secret = c.get("url", ""), c.get("secret", "")
        if len(secret) > MAX_SECRET:
            v.append((f"{f}.secret", f"at most {MAX_SECRET} characters"))
        to = tuple(c.get("email_to", ()))
        tls = SmtpTls.STARTTLS
        if kind is ChannelKind.EMAIL:
            if not to or len(to) > MAX_RECIPIENTS or not all(_address(a) for a in to):
                v.append((f"{f}.email_to", f"1..{MAX_RECIPIENTS} addresses like ops@example.com"))
            if not _address(c.get("email_from", "")):
                v.append((f"{f}.email_from", "required: the sender address, like meter@example.com"))
            host = c.get("smtp_host", "")
            if not host or len(host) > 253 or any(ch in host for ch in " /:@"):
                v.append((f"{f}.smtp_host", "required: the SMTP server's host name"))
            if not 0 <= c.get("smtp_port", 0) <= 65535:
                v.append((f"{f}.smtp_port", "0 (the TLS mode's default: 587, 465 or 25) or 1..65535"))
            try:
                tls = SmtpTls(c.get("smtp_tls") or "starttls")
            except ValueError:
                v.append((f"{f}.smtp_tls", "starttls, tls or none"))
            if len(c.get("smtp_username", "")) > MAX_SECRET:
                v.append((f"{f}.smtp_username", f"at most {MAX_SECRET} characters"))
            if url:
                v.append((f"{f}.url", "not used by email channels; leave it unset"))
        else:
            for name in ("email_from", "smtp_host", "smtp_username"):
                if c.get(name):
                    v.append((f"{f}.{name}", f"not used by {kind.value} channels; leave it unset"))
            if to:
                v.append((f"{f}.email_to", f"not used by {kind.value} channels; leave it unset"))
            if kind is ChannelKind.PAGERDUTY:
                if url and not _http_url(url):
                    v.append((f"{f}.url", "empty (PagerDuty's events endpoint) or an http(s) URL"))
                if not 1 <= len(secret) <= MAX_SECRET:
                    v.append((f"{f}.secret", "required: the PagerDuty integration (routing) key"))
            elif not _http_url(url):
                v.append((f"{f}.url", f"required: an http:// or https:// URL (at most {MAX_URL} characters)"))
            if kind is ChannelKind.WEBHOOK and not secret:
                v.append((f"{f}.secret", "required for a webhook (it signs every delivery)"))
        out.append(
            Channel(
                kind=kind,
                url=url,
                secret=secret,
                email_to=to,
                email_from=c.get("email_from", ""),
                smtp_host=c.get("smtp_host", ""),
                smtp_port=c.get("smtp_port", 0),
                smtp_tls=tls,
                smtp_username=c.get("smtp_username", ""),
            )
        )
    return tuple(out)


# ---- templates ----------------------------------------------------------------------------------

PLACEHOLDERS = frozenset(
    {
        "message", "severity", "kind", "rule_id", "alert_id", "tenant", "subject", "provider", "model", "limit_id",
        "metric", "observed", "threshold", "window", "created_at", "console_url", "console_link",
    }
)  # fmt: skip
DEFAULT_TEMPLATE = "[${severity}] ${message}${console_link}"


def validate_template(template: str, v: list[tuple[str, str]]) -> str:
    if len(template) > MAX_TEMPLATE:
        v.append(("rule.message_template", f"at most {MAX_TEMPLATE} characters"))
        return template
    try:
        names = {m.group("named") or m.group("braced") for m in string.Template.pattern.finditer(template)}
        if any(m.group("invalid") is not None for m in string.Template.pattern.finditer(template)):
            raise ValueError
    except ValueError:
        v.append(("rule.message_template", "invalid placeholder: write ${name}, and $$ for a dollar sign"))
        return template
    unknown = sorted(n for n in names if n and n not in PLACEHOLDERS)
    if unknown:
        v.append(("rule.message_template", f"unknown placeholder(s) {', '.join(unknown)}; known: {', '.join(sorted(PLACEHOLDERS))}"))  # fmt: skip
    return template


def usd(nanos: float) -> str:
    """Dollars for people: cents when a cent or more, else up to six decimals ($0.000125)."""
    if abs(nanos) >= 10_000_000 or nanos == 0:
        return f"${nanos / 1e9:,.2f}"
    return f"${nanos / 1e9:.6f}".rstrip("0")


def _figure(metric: str, value: float) -> str:
    if metric == "cost_nanos":
        return usd(value)
    if metric == "error_rate":
        return f"{value:.1%}"
    if metric == "latency_p95_seconds":
        return f"{value:.3f}s"
    return f"{value:g}"


@dataclasses.dataclass(frozen=True)
class Rendered:
    title: str  # one line: severity, rule, subject
    text: str  # the rule's template applied
    fields: tuple[tuple[str, str], ...]  # facts for cards and embeds (name, value), empty ones left out
    link: str  # the console, or ""
    severity: str
    alert_id: int
    tenant: str


def render(alert: Any, template: str, console_url: str) -> Rendered:
    """An alert (domain.alerts.Alert) → the text every channel sends. Threshold alerts' observed and
    threshold values are percents of the limit; cost values are nano-USD, shown in dollars."""
    percent = alert.kind.value == "limit_threshold"
    observed = f"{alert.observed:.0f}%" if percent else _figure(alert.metric, alert.observed)
    threshold = f"{alert.threshold:.0f}%" if percent else _figure(alert.metric, alert.threshold)
    if alert.kind.value == "report_digest":  # its figures are in its text; it crossed no threshold
        threshold = ""
    window = ""
    if alert.window_start:
        end = f" – {alert.window_end:%Y-%m-%d %H:%M}" if alert.window_end else ""
        window = f"{alert.window_start:%Y-%m-%d %H:%M}{end} UTC"
    values = {
        "message": alert.message,
        "severity": alert.severity.value.upper(),
        "kind": alert.kind.value,
        "rule_id": alert.rule_id,
        "alert_id": str(alert.id),
        "tenant": alert.tenant_id,
        "subject": alert.subject,
        "provider": alert.provider,
        "model": alert.model,
        "limit_id": alert.limit_id,
        "metric": alert.metric,
        "observed": observed,
        "threshold": threshold,
        "window": window,
        "created_at": alert.created_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "console_url": console_url,
        "console_link": f"\n{console_url}" if console_url else "",
    }
    text = string.Template(template or DEFAULT_TEMPLATE).safe_substitute(values)
    model = "/".join(p for p in (alert.provider, alert.model) if p)
    fields = tuple(
        (name, value)
        for name, value in (
            ("Subject", alert.subject),
            ("Limit", alert.limit_id),
            ("Model", model),
            ("Observed", observed),
            ("Threshold", threshold),
            ("Window", window),
            ("Rule", alert.rule_id),
        )
        if value
    )
    about = f" for {alert.subject}" if alert.subject else ""
    title = f"Meter {alert.severity.value.upper()}: {alert.kind.value.replace('_', ' ')}{about} (rule {alert.rule_id})"
    return Rendered(title, text, fields, console_url, alert.severity.value, alert.id, alert.tenant_id)


# ---- native payloads ------------------------------------------------------------------------------

_COLOURS = {"critical": 0xD32F2F, "warning": 0xF9A825, "info": 0x1976D2}


def slack_payload(r: Rendered) -> dict[str, Any]:
    """Slack incoming webhook: `text` is the notification fallback, `blocks` the message."""
    facts = "\n".join(f"*{name}:* {value}" for name, value in r.fields)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": r.title[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": r.text[:3000]}},
    ]
    if facts:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": facts[:3000]}})
    if r.link:
        blocks.append(
            {"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Open console"}, "url": r.link}]}
        )  # fmt: skip
    return {"text": f"{r.title}: {r.text}"[:3000], "blocks": blocks}


def teams_payload(r: Rendered) -> dict[str, Any]:
    """Microsoft Teams (Workflows "post to a channel when a webhook request is received", and the
    older incoming webhooks): a message with one Adaptive Card attachment."""
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": r.title, "weight": "Bolder", "size": "Medium", "wrap": True,
         "color": "Attention" if r.severity == "critical" else "Warning" if r.severity == "warning" else "Default"},
        {"type": "TextBlock", "text": r.text, "wrap": True},
    ]  # fmt: skip
    if r.fields:
        body.append({"type": "FactSet", "facts": [{"title": n, "value": v} for n, v in r.fields]})
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    if r.link:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open console", "url": r.link}]
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
        ],
    }


def discord_payload(r: Rendered) -> dict[str, Any]:
    """Discord webhook: `content` plus one embed (limits: 2000 / 256 / 4096 / 25 fields)."""
    embed: dict[str, Any] = {
        "title": r.title[:256],
        "description": r.text[:4096],
        "color": _COLOURS.get(r.severity, 0x757575),
        "fields": [{"name": n[:256], "value": v[:1024], "inline": True} for n, v in r.fields[:25]],
    }
    if r.link:
        embed["url"] = r.link
    return {"content": r.title[:2000], "embeds": [embed], "allowed_mentions": {"parse": []}}


def pagerduty_payload(r: Rendered, routing_key: str) -> dict[str, Any]:
    """PagerDuty Events API v2 trigger. The dedup key is the alert's: a retried delivery updates the
    same incident instead of opening a second one."""
    out: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": f"meter/{r.tenant}/{r.alert_id}",
        "payload": {
            "summary": f"{r.title}: {r.text}"[:1024],
            "source": "meter",
            "severity": r.severity if r.severity in ("critical", "warning", "info") else "error",
            "component": r.tenant,
            "custom_details": dict(r.fields),
        },
    }
    if r.link:
        out["links"] = [{"href": r.link, "text": "Meter console"}]
    return out


def email_parts(r: Rendered) -> tuple[str, str]:
    """(subject, plain-text body)."""
    facts = "\n".join(f"{name}: {value}" for name, value in r.fields)
    return r.title, f"{r.text}\n\n{facts}\n"
