"""Delivers alerts to their rules' channels (Slack, Teams, Discord, email, PagerDuty, signed
webhooks): at least once, retried with exponential backoff, every attempt's outcome recorded in
alert_deliveries.

Hand-written senders rather than apprise: apprise 2.3 does report a result per service, but its
Slack, Discord and PagerDuty plugins post only to the services' own hosts (hooks.slack.com,
discord.com, events.pagerduty.com), so their native payloads could not be tested against local
receivers. Each sender here is one HTTP POST (stdlib urllib, as the legacy webhook) or one SMTP
session (stdlib smtplib), run in a thread so the event loop never blocks.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.message
import email.utils
import json
import logging
import smtplib
import ssl
import time
import urllib.error
import urllib.request

from meterd.domain import channels as ch
from meterd.domain.alert_records import DeliveryDue
from meterd.domain.channels import Channel, ChannelKind, SmtpTls
from meterd.service.alerts import signature
from meterd.service.delivery_rounds import run_delivery_rounds
from meterd.service.ports import DeliveryPort

log = logging.getLogger(__name__)

MAX_ERROR_BODY = 200  # of a receiver's error response, kept in last_error


class ChannelSender:
    """Every replica may run one: rows are leased with SKIP LOCKED and retried until max_attempts."""

    def __init__(
        self,
        store: DeliveryPort,
        *,
        timeout: float,
        max_attempts: int,
        retry_base: float,
        console_url: str = "",
        lease: float = 60.0,
        ssl_context: ssl.SSLContext | None = None,
        on_outcome=None,
    ) -> None:
        self.store = store
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.retry_base = retry_base
        self.console_url = console_url
        self.lease = dt.timedelta(seconds=max(lease, timeout * 2))
        self.ssl_context = ssl_context or ssl.create_default_context()
        self.on_outcome = on_outcome  # (kind, ok) -> None, e.g. a metrics counter
        self._wake = asyncio.Event()

    def wake(self, _alerts=None) -> None:
        self._wake.set()

    async def run(self, poll: float = 1.0) -> None:
        await run_delivery_rounds(self.send_due, self._wake, poll, "alert channel")

    async def send_due(self) -> int:
        rows = await self.store.claim(self.lease)
        await asyncio.gather(*(self._deliver(r) for r in rows))
        return len(rows)

    async def _deliver(self, due: DeliveryDue) -> None:
        alert = due.alert
        index, attempts = due.channel, due.attempts
        channel = due.channels[index] if index < len(due.channels) else None
        if channel is None or channel.kind.value != due.channel_kind:
            # The rule was deleted or its channels edited since the alert: nothing sensible to send.
            await self.store.done(alert.tenant_id, alert.id, index, target="", ok=False,
                                  error="the rule or this channel no longer exists", retry_in=None)  # fmt: skip
            return
        rendered = ch.render(alert, due.message_template, self.console_url)
        try:
            await asyncio.to_thread(self._send, channel, alert, rendered)
            error = ""
        except DeliveryError as exc:
            error = str(exc)
        except (OSError, smtplib.SMTPException, urllib.error.URLError, ssl.SSLError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        if self.on_outcome is not None:
            self.on_outcome(channel.kind.value, not error)
        if not error:
            await self.store.done(alert.tenant_id, alert.id, index, target=channel.target, ok=True, error="",
                                  retry_in=None)  # fmt: skip
            return
        retry_in = None
        if attempts < self.max_attempts:
            retry_in = dt.timedelta(seconds=min(self.retry_base * 2 ** (attempts - 1), 3600))
        log.warning("alert %d to %s %s failed (attempt %d): %s", alert.id, channel.kind.value, channel.target,
                    attempts, error)  # fmt: skip
        await self.store.done(alert.tenant_id, alert.id, index, target=channel.target, ok=False, error=error,
                              retry_in=retry_in)  # fmt: skip

    # ---- the senders (in a worker thread) ------------------------------------------------------------

    def _send(self, channel: Channel, alert, r: ch.Rendered) -> None:
        k = channel.kind
        if k is ChannelKind.EMAIL:
            return self._email(channel, r)
        headers = {"Content-Type": "application/json", "User-Agent": "meter-alerts/1"}
        if k is ChannelKind.SLACK:
            payload = ch.slack_payload(r)
        elif k is ChannelKind.TEAMS:
            payload = ch.teams_payload(r)
        elif k is ChannelKind.DISCORD:
            payload = ch.discord_payload(r)
        elif k is ChannelKind.PAGERDUTY:
            payload = ch.pagerduty_payload(r, channel.secret)
        else:  # the signed webhook: the alert as JSON (as the legacy webhook_url) plus the rendered text
            payload = {**alert.to_json(), "text": r.text, "title": r.title}
        body = json.dumps(payload, separators=(",", ":")).encode()
        if k is ChannelKind.WEBHOOK:
            stamp = str(int(time.time()))
            headers |= {
                "X-Meter-Alert-Id": str(alert.id),
                "X-Meter-Timestamp": stamp,
                "X-Meter-Signature": signature(channel.secret, stamp, body),
            }
        url = channel.url or (ch.DEFAULT_PAGERDUTY_URL if k is ChannelKind.PAGERDUTY else "")
        self._post(url, body, headers)

    def _post(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self._https(url)) as response:  # noqa: S310 - http(s) only, validated
                response.read(MAX_ERROR_BODY)
        except urllib.error.HTTPError as exc:
            detail = exc.read(MAX_ERROR_BODY).decode(errors="replace").strip()
            exc.close()
            raise DeliveryError(f"HTTP {exc.code}{': ' + detail if detail else ''}") from None

    def _https(self, url: str) -> ssl.SSLContext | None:
        return self.ssl_context if url.startswith("https:") else None

    def _email(self, c: Channel, r: ch.Rendered) -> None:
        subject, text = ch.email_parts(r)
        msg = email.message.EmailMessage()
        msg["Subject"], msg["From"], msg["To"] = subject, c.email_from, ", ".join(c.email_to)
        msg["Date"] = email.utils.formatdate(usegmt=True)
        msg["Message-ID"] = email.utils.make_msgid(idstring=f"meter-alert-{r.alert_id}")
        msg["X-Meter-Alert-Id"] = str(r.alert_id)
        msg.set_content(text)
        port = c.smtp_port or {SmtpTls.TLS: 465, SmtpTls.STARTTLS: 587, SmtpTls.NONE: 25}[c.smtp_tls]
        if c.smtp_tls is SmtpTls.TLS:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(c.smtp_host, port, timeout=self.timeout, context=self.ssl_context)
        else:
            smtp = smtplib.SMTP(c.smtp_host, port, timeout=self.timeout)
        with smtp:
            if c.smtp_tls is SmtpTls.STARTTLS:
                smtp.starttls(context=self.ssl_context)  # raises when the server does not offer it
            if c.smtp_username:
                smtp.login(c.smtp_username, c.secret)
            refused = smtp.send_message(msg)
        if refused:
            raise DeliveryError(f"recipients refused: {', '.join(sorted(refused))}")


class DeliveryError(Exception):
    """A receiver answered, but not with success (its status and the start of its answer)."""
