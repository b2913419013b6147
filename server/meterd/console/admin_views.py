"""The console's admin pages (admin keys only): limits, prices, alert rules and keys, with forms to
create or replace a limit or an alert rule, add a tenant price version, create a key (its secret
shown once), delete a limit or rule and revoke a key. Every form is a POST carrying the session's CSRF token; Meter validates what is sent and its
INVALID_ARGUMENT message is shown as is."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from meter.v1 import admin_pb2
from meterd.console import admin_forms, limits_view
from meterd.console.limit_form import ACTIONS, METRIC_NAMES, PARTITIONS, WINDOW_NAMES, limit_from_form, text_field
from meterd.console.sessions import Session

PRICE_ROWS = 200
ROLE_NAMES = {
    "check": admin_pb2.ROLE_CHECK,
    "record": admin_pb2.ROLE_RECORD,
    "read": admin_pb2.ROLE_READ,
    "admin": admin_pb2.ROLE_ADMIN,
}


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

    async def prices(request: Request, session: Session, added=None, defaulted=()) -> Response:
        q = request.query_params
        at = console.clock() if q.get("history") != "1" else None
        listing = await session.client.price_listing(
            provider=q.get("provider", "")[:100], model=q.get("model", "")[:200], at=at
        )
        # The whole catalog is thousands of versions: a page of them, and the filters for the rest.
        return render(
            request, "admin_prices.html", session, listing=listing, shown=listing.prices[:PRICE_ROWS], q=q,
            added=added, defaulted=defaulted, rates=admin_forms.PRICE_RATES,
        )  # fmt: skip

    async def set_price(request: Request, session: Session) -> Response:
        form, refused = await csrf_form(request, session)
        if refused:
            return refused
        price, defaulted = admin_forms.price_from_form(form)
        added = await session.client.set_price(price)
        return await prices(request, session, added, defaulted)

    async def rules(request: Request, session: Session) -> Response:
        return render(
            request, "admin_rules.html", session, rules=await session.client.list_alert_rules(),
            kinds=admin_forms.ALERT_KINDS, severities=admin_forms.SEVERITIES, windows=WINDOW_NAMES,
        )  # fmt: skip

    async def set_rule(request: Request, session: Session) -> Response:
        form, refused = await csrf_form(request, session)
        if refused:
            return refused
        rule = admin_forms.rule_from_form(form)
        if form.get("drop_secrets") != "1":
            existing = {r.id: r for r in await session.client.list_alert_rules()}.get(rule.id)
            if problem := admin_forms.replaced_secrets(existing, rule):
                return render(request, "error.html", session, 409, message=problem)
        reply = await session.client.set_alert_rule(rule)
        return RedirectResponse(f"/admin/rules?done={reply.rule.id}", status_code=303)

    async def keys(request: Request, session: Session, created=None) -> Response:
        listing = await session.client.list_api_keys(include_revoked=request.query_params.get("revoked") == "1")
        return render(request, "admin_keys.html", session, keys=listing, roles=ROLE_NAMES, created=created)

    async def create_key(request: Request, session: Session) -> Response:
        form, refused = await csrf_form(request, session)
        if refused:
            return refused
        roles = [ROLE_NAMES[r] for r in form.getlist("role") if r in ROLE_NAMES]
        created = await session.client.create_api_key(text_field(form, "name"), roles)
        return await keys(request, session, created)  # the secret is shown in this answer only, never in a URL

    def action(act, back: str):
        async def view(request: Request, session: Session) -> Response:
            form, refused = await csrf_form(request, session)
            if refused:
                return refused
            target = text_field(form, "id")
            await act(session.client, target)
            return RedirectResponse(f"{back}?done={target}", status_code=303)

        return page(view, admin=True)

    return [
        Route("/admin/limits", page(limits, admin=True)),
        Route("/admin/limits/set", page(set_limit, admin=True), methods=["POST"]),
        Route("/admin/prices", page(prices, admin=True)),
        Route("/admin/prices/set", page(set_price, admin=True), methods=["POST"]),
        Route("/admin/rules", page(rules, admin=True)),
        Route("/admin/rules/set", page(set_rule, admin=True), methods=["POST"]),
        Route("/admin/keys", page(keys, admin=True)),
        Route("/admin/keys/create", page(create_key, admin=True), methods=["POST"]),
        Route("/admin/limits/delete", action(lambda c, i: c.delete_limit(i), "/admin/limits"), methods=["POST"]),
        Route("/admin/rules/delete", action(lambda c, i: c.delete_alert_rule(i), "/admin/rules"), methods=["POST"]),
        Route("/admin/keys/revoke", action(lambda c, i: c.revoke_api_key(i), "/admin/keys"), methods=["POST"]),
    ]
