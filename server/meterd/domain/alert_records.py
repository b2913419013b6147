"""What the alert store hands the alert services: stored rules and leased deliveries (no I/O)."""

from __future__ import annotations

import dataclasses
import datetime as dt

from meterd.domain.alerts import Alert, AlertRule
from meterd.domain.channels import Channel


@dataclasses.dataclass(frozen=True)
class StoredRule:
    rule: AlertRule
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class TenantRule:
    """An enabled rule of some tenant, as the periodic evaluator reads them all."""

    tenant_id: str
    rule: AlertRule


@dataclasses.dataclass(frozen=True)
class WebhookDue:
    """An alert_webhooks delivery leased to this replica (url "": the rule was deleted or lost it)."""

    alert: Alert
    attempts: int
    url: str
    secret: str


@dataclasses.dataclass(frozen=True)
class DeliveryDue:
    """A channel delivery leased to this replica, with the rule's channels and template as they are
    now (none: the rule was deleted meanwhile)."""

    alert: Alert
    channel: int  # index into the rule's channels when the alert was raised
    channel_kind: str
    attempts: int
    channels: tuple[Channel, ...]
    message_template: str


@dataclasses.dataclass(frozen=True, order=True)
class DenialKey:
    """One per-minute denial counter (quota_denials)."""

    tenant_id: str
    minute: dt.datetime
    subject: str
    provider: str
    model: str
    operation: str
