"""What a list RPC may show of a rule's legacy webhook, and how a rule sent back keeps it.

ListAlertRules never returns webhook_url (it may carry a token) or webhook_secret: it returns the
masked target instead. A client that reads a rule, edits another field and sends it back would
otherwise erase the webhook (or have it refused for lack of a secret); sending the target back is
the explicit "keep what is stored" marker, and it must name the webhook actually stored, so a stale
copy cannot silently keep a URL that was replaced meanwhile.
"""

from __future__ import annotations

import dataclasses

from meterd.domain.alerts import AlertRule
from meterd.domain.channels import mask_url
from meterd.domain.errors import InvalidArgument


def webhook_target(rule: AlertRule) -> str:
    return mask_url(rule.webhook_url) if rule.webhook_url else ""


def keep_webhook(rule: AlertRule, target: str, stored: AlertRule | None) -> AlertRule:
    """`rule` as sent, with the stored webhook URL (and secret, unless a new one is sent) when the
    request left webhook_url empty and sent webhook_target back; a webhook_url sent wins."""
    if not target or rule.webhook_url:
        return rule
    if stored is None or not stored.webhook_url or webhook_target(stored) != target:
        raise InvalidArgument(
            [
                (
                    "rule.webhook_target",
                    "output only: it keeps the stored webhook only when it names it; "
                    "set webhook_url to replace the webhook, or leave both empty to remove it",
                )
            ]
        )
    return dataclasses.replace(
        rule, webhook_url=stored.webhook_url, webhook_secret=rule.webhook_secret or stored.webhook_secret
    )
