"""The console's admin pages (admin keys only): limits, prices, alert rules and keys, with forms to
create or replace a limit, create a key (its secret shown once), delete a limit or rule and revoke
a key. Every form is a POST carrying the session's CSRF token; Meter validates what is sent and its
INVALID_ARGUMENT message is shown as is."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from meter.v1 import admin_pb2, common_pb2
from meterd.console import limits_view
from meterd.console.ranges import RangeError
from meterd.console.sessions import Session

ROLE_NAMES = {
    "check": admin_pb2.ROLE_CHECK,
    "record": admin_pb2.ROLE_RECORD,
    "read": admin_pb2.ROLE_READ,
    "admin": admin_pb2.ROLE_ADMIN,
}
METRIC_NAMES = {name: value for value, name in limits_view.METRICS.items()}
WINDOW_NAMES = {str(kind): value for value, kind in limits_view._KINDS.items()}
PARTITIONS = {
    "shared": common_pb2.PARTITION_SHARED,
    "per_subject": common_pb2.PARTITION_PER_SUBJECT,
    "per_api_key": common_pb2.PARTITION_PER_API_KEY,
}
ACTIONS = {
    "deny": common_pb2.LIMIT_ACTION_DENY,
    "warn": common_pb2.LIMIT_ACTION_WARN,
    "shadow": common_pb2.LIMIT_ACTION_SHADOW,
}


def _text(form, name: str, size: int = 200) -> str:
    return str(form.get(name, "")).strip()[:size]


def _choice(form, name: str, choices: dict) -> int:
    value = _text(form, name)
    if value not in choices:
        raise RangeError(f"{name} is one of {', '.join(choices)}")
    return choices[value]


def limit_from_form(form) -> admin_pb2.Limit:
    """A Limit from the form; a cost maximum is typed in dollars and converted exactly to nanos."""
    metric = _choice(form, "metric", METRIC_NAMES)
    raw_max = _text(form, "max", 40).replace(",", "").lstrip("$")
    try:
        amount = Decimal(raw_max)
    except InvalidOperation:
        raise RangeError(f"max must be a number, got {raw_max!r}") from None
    if metric == common_pb2.METRIC_COST_NANOS:
        amount = amount.scaleb(9)
    if amount != amount.to_integral_value():
        raise RangeError("max must be whole (a cost: at most 9 decimals of a dollar)")
    window = common_pb2.Window(kind=_choice(form, "window", WINDOW_NAMES))
    seconds = _text(form, "seconds", 12)
    if seconds:
        if not seconds.isdigit():
            raise RangeError("window seconds must be a whole number")
        window.duration.seconds = int(seconds)
    thresholds = [t.strip() for t in _text(form, "thresholds").split(",") if t.strip()]
    if not all(t.isdigit() for t in thresholds):
        raise RangeError("alert thresholds are whole percents, e.g. 80,100")
    return admin_pb2.Limit(
        id=_text(form, "id"),
        description=_text(form, "description", 500),
        selector=common_pb2.Selector(
            subject=_text(form, "subject"),
            subject_prefix=_text(form, "subject_prefix"),
            provider=_text(form, "provider"),
            model=_text(form, "model"),
            operation=_text(form, "operation"),
        ),
        metric=metric,
        window=window,
        max=int(amount),
        partition=_choice(form, "partition", PARTITIONS),
        action=_choice(form, "action", ACTIONS),
        alert_thresholds_percent=[int(t) for t in thresholds],
    )


def routes(console) -> list[Route]:
    render, page = console.render, console.page

    async def csrf_form(request: Request, session: Session):
        form = await request.form()
        if not session.csrf_ok(str(form.get("csrf", ""))):
            return None, render(request, "error.html", session, 403, message="The form's CSRF token is wrong.")
        return form, None

    async def limits(request: Request, session: Session) -> Response:
        listing = await session.client.list_limits()
        return render(
            request, "admin_limits.html", session, limits=listing, view=limits_view, metrics=METRIC_NAMES,
            windows=WINDOW_NAMES, partitions=PARTITIONS, actions=ACTIONS,
        )  # fmt: skip

    async def set_limit(request: Request, session: Session) -> Response:
        form, refused = await csrf_form(request, session)
        if refused:
            return refused
        reply = await session.client.set_limit(limit_from_form(form))
        return RedirectResponse(f"/admin/limits?done={reply.limit.id}", status_code=303)

    async def prices(request: Request, session: Session) -> Response:
        q = request.query_params
        at = console.clock() if q.get("history") != "1" else None
        listing = await session.client.list_prices(
            provider=q.get("provider", "")[:100], model=q.get("model", "")[:200], at=at
        )
        return render(request, "admin_prices.html", session, prices=listing, q=q)

    async def rules(request: Request, session: Session) -> Response:
        return render(request, "admin_rules.html", session, rules=await session.client.list_alert_rules())

    async def keys(request: Request, session: Session, created=None) -> Response:
        listing = await session.client.list_api_keys(include_revoked=request.query_params.get("revoked") == "1")
        return render(request, "admin_keys.html", session, keys=listing, roles=ROLE_NAMES, created=created)

    async def create_key(request: Request, session: Session) -> Response:
        form, refused = await csrf_form(request, session)
        if refused:
            return refused
        roles = [ROLE_NAMES[r] for r in form.getlist("role") if r in ROLE_NAMES]
        created = await session.client.create_api_key(_text(form, "name"), roles)
        return await keys(request, session, created)  # the secret is shown in this answer only, never in a URL

    def action(act, back: str):
        async def view(request: Request, session: Session) -> Response:
            form, refused = await csrf_form(request, session)
            if refused:
                return refused
            target = _text(form, "id")
            await act(session.client, target)
            return RedirectResponse(f"{back}?done={target}", status_code=303)

        return page(view, admin=True)

    return [
        Route("/admin/limits", page(limits, admin=True)),
        Route("/admin/limits/set", page(set_limit, admin=True), methods=["POST"]),
        Route("/admin/prices", page(prices, admin=True)),
        Route("/admin/rules", page(rules, admin=True)),
        Route("/admin/keys", page(keys, admin=True)),
        Route("/admin/keys/create", page(create_key, admin=True), methods=["POST"]),
        Route("/admin/limits/delete", action(lambda c, i: c.delete_limit(i), "/admin/limits"), methods=["POST"]),
        Route("/admin/rules/delete", action(lambda c, i: c.delete_alert_rule(i), "/admin/rules"), methods=["POST"]),
        Route("/admin/keys/revoke", action(lambda c, i: c.revoke_api_key(i), "/admin/keys"), methods=["POST"]),
    ]
