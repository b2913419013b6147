"""The console's web application (Starlette + Jinja2): sign-in, the pages, CSV export, the alert feed.

Every page is a thin view over the `meter` client: `pages.py`, `limits_view.py` and `report.py`
gather the figures; this module handles sessions, forms and HTTP."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import logging
import re
import secrets
import time
from collections.abc import Callable

import grpc
import jinja2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from meter import TLS, MeterAuthError, MeterError
from meter.v1 import admin_pb2, common_pb2
from meterd.console import admin_views, fmt, limits_view, pages, report
from meterd.console.alert_feed import alert_events
from meterd.console.cache import TTL_SECONDS
from meterd.console.ranges import PRESETS, RangeError, parse_instant, resolve
from meterd.console.sessions import COOKIE, Session, Sessions, SignInError

log = logging.getLogger("meterd.console")
SIGNIN_CSRF = "meter_console_signin"
# Scripts, styles and data only from the console itself: no CDN, no inline script.
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


def template_environment() -> jinja2.Environment:
    """The templates, with fmt's filters; `meter report --format html` (people_cli) renders with it too."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("meterd.console", "templates"), autoescape=True)
    env.filters.update(
        usd=fmt.usd,
        usd_exact=fmt.usd_exact,
        number=fmt.number,
        percent=fmt.percent,
        utc=fmt.utc,
        iso=fmt.iso,
        latency=fmt.latency,
        enum=_enum_name,
        selector=_selector,
        url_host=fmt.url_host,
    )
    return env


def _enum_name(value: int, type_name: str) -> str:
    """`partition|enum('Partition')` → "per_subject" (the enum's prefix dropped)."""
    enum = getattr(common_pb2, type_name, None) or getattr(admin_pb2, type_name)
    name = enum.Name(value) if value in enum.values() else str(value)
    prefix = "_".join(re.findall("[A-Z][a-z]*", type_name)).upper() + "_"
    return name.removeprefix(prefix).lower()


def _selector(selector) -> str:
    parts = [f"{f.name}={v}" for f, v in selector.ListFields() if f.name != "labels"]
    parts += [f"{k}={v}" for k, v in sorted(selector.labels.items())]
    return " ".join(parts) or "everything"


class Console:
    def __init__(
        self,
        target: str,
        *,
        secure_cookie: bool = True,
        clock: Callable[[], dt.datetime] | None = None,
        cache_ttl: float = TTL_SECONDS,
        tls: TLS | None = None,
    ):
        self.cache_ttl = cache_ttl
        self.tls = tls  # None: plaintext to Meter
        self.target = target
        self.secure_cookie = secure_cookie
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.channel: grpc.aio.Channel | None = None
        self.sessions: Sessions | None = None
        self.templates = Jinja2Templates(env=template_environment())

    # -- plumbing -----------------------------------------------------------------------------------

    async def startup(self) -> None:
        if self.tls is None:
            self.channel = grpc.aio.insecure_channel(self.target)
        else:
            self.channel = grpc.aio.secure_channel(
                self.target, self.tls.credentials(), options=self.tls.channel_options()
            )
        self.sessions = Sessions(self.target, self.channel, cache_ttl=self.cache_ttl)

    def _sessions(self) -> Sessions:
        if self.sessions is None:
            raise RuntimeError("the console serves requests only after startup()")
        return self.sessions

    async def shutdown(self) -> None:
        if self.channel is not None:
            await self.channel.close()

    def render(self, request: Request, name: str, session: Session | None, status: int = 200, **context) -> Response:
        context.update(session=session, nav=request.url.path, presets=PRESETS)
        response = self.templates.TemplateResponse(request, name, context, status_code=status)
        response.headers.update(SECURITY_HEADERS)
        return response

    def _cookie(self, response: Response, name: str, value: str, max_age: int | None = None) -> None:
        response.set_cookie(
            name, value, max_age=max_age, httponly=True, secure=self.secure_cookie, samesite="strict", path="/"
        )

    def page(self, view, *, admin: bool = False):
        """Wraps a view: a session or a redirect to sign-in; admin pages 403 for other keys; a key that
        stopped working (revoked) ends the session; Meter's errors become a readable page."""

        async def endpoint(request: Request) -> Response:
            started = time.perf_counter()
            session = self._sessions().get(request.cookies.get(COOKIE))
            if session is None:
                return RedirectResponse("/signin", status_code=303)
            if admin and not session.is_admin:
                return self.render(request, "error.html", session, 403, message="This page needs an admin key.")
            try:
                response = await view(request, session)
            except MeterAuthError as err:
                if err.code == grpc.StatusCode.UNAUTHENTICATED:
                    self._sessions().drop(session.id)
                    return RedirectResponse("/signin?expired=1", status_code=303)
                response = self.render(request, "error.html", session, 403, message=str(err)[:300])
            except (MeterError, RangeError) as err:
                status = 400 if isinstance(err, RangeError) or err.code == grpc.StatusCode.INVALID_ARGUMENT else 502
                response = self.render(request, "error.html", session, status, message=str(err)[:300])
            except Exception:
                log.exception("console page %s failed", request.url.path)
                response = self.render(
                    request, "error.html", session, 500, message="The console failed on this page (see its log)."
                )
            response.headers["server-timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
            return response

        return endpoint

    def now(self) -> dt.datetime:
        """The clock rounded up to the minute: reloads within a minute ask the same (cached) questions."""
        now = self.clock()
        whole = now.replace(second=0, microsecond=0)
        return whole if whole == now else whole + dt.timedelta(minutes=1)

    def range_of(self, request: Request):
        q = request.query_params
        return resolve(q.get("range", "7d"), self.now(), q.get("start", ""), q.get("end", ""))

    # -- sign-in ------------------------------------------------------------------------------------

    async def signin_form(self, request: Request, error: str = "", status: int = 200) -> Response:
        token = secrets.token_urlsafe(32)
        if request.query_params.get("expired"):
            error = error or "Your key no longer works (revoked?); sign in again."
        response = self.render(request, "signin.html", None, status, csrf=token, error=error)
        self._cookie(response, SIGNIN_CSRF, token, max_age=3600)
        return response

    async def signin(self, request: Request) -> Response:
        form = await request.form()
        expected = request.cookies.get(SIGNIN_CSRF, "")
        if not expected or not secrets.compare_digest(expected, str(form.get("csrf", ""))):
            return await self.signin_form(request, "The form expired; please try again.", 400)
        try:
            session = await self._sessions().sign_in(
                str(form.get("api_key", "")), lambda c: c.usage(start=self.clock() - dt.timedelta(hours=1))
            )
        except SignInError as err:
            return await self.signin_form(request, str(err), 401)
        response = RedirectResponse("/", status_code=303)
        self._cookie(response, COOKIE, session.id)
        response.delete_cookie(SIGNIN_CSRF, path="/")
        return response

    async def signout(self, request: Request) -> Response:
        session = self._sessions().get(request.cookies.get(COOKIE))
        form = await request.form()
        if session is not None:
            if not session.csrf_ok(str(form.get("csrf", ""))):
                return PlainTextResponse("bad CSRF token", status_code=403)
            self._sessions().drop(session.id)
        response = RedirectResponse("/signin", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    # -- pages --------------------------------------------------------------------------------------

    async def overview(self, request: Request, session: Session) -> Response:
        rng = self.range_of(request)
        stack = "provider" if request.query_params.get("stack") == "provider" else "model"
        label_key = request.query_params.get("label_key", "").strip()[:100]
        data = await pages.overview(session.client, rng, stack)
        return self.render(request, "overview.html", session, rng=rng, stack=stack, label_key=label_key, **data)

    async def export(self, request: Request, session: Session) -> Response:
        """A CSV of one overview table (models, providers, users, labels) for the same range."""
        rng = self.range_of(request)
        name = request.query_params.get("table", "models")
        label_key = request.query_params.get("label_key", "").strip()[:100]
        if name not in pages.TABLES or (name == "labels" and not label_key):
            return PlainTextResponse(
                "table is one of models, providers, users, labels (with label_key)", status_code=400
            )
        rows = await pages.table_rows(session.client, rng, name, label_key, limit=200)
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow([name.rstrip("s"), "cost_usd", "calls", "tokens", "error_rate", "latency_p95_s"])
        for row in rows:
            p95 = fmt.seconds(row["p95"])
            writer.writerow(
                [
                    row["name"],
                    f"{fmt.dollars(row['cost_nanos']):f}",
                    row["calls"],
                    row["tokens"],
                    f"{row['error_rate']:.6f}",
                    "" if p95 is None else f"{p95:.6f}",
                ]
            )
        filename = f"meter-{name}-{rng.start:%Y%m%d}-{rng.end:%Y%m%d}.csv"
        return Response(
            out.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": f'attachment; filename="{filename}"', **SECURITY_HEADERS},
        )

    async def fragment(self, request: Request, session: Session) -> Response:
        """A deferred table (top users, top label values) as HTML, fetched by the page's script."""
        q = request.query_params
        name = q.get("table", "")
        label_key = q.get("label_key", "").strip()[:100]
        if name not in pages.SLOW_TABLES or (name == "labels" and not label_key):
            return PlainTextResponse("table is users or labels (with label_key)", status_code=400)
        rows = await pages.table_rows(session.client, self.range_of(request), name, label_key)
        title, what = ("Top users", "Subject") if name == "users" else (f"Top {label_key} values", label_key)
        return self.render(
            request, "_table_fragment.html", session, id=f"top-{name}", title=title, what=what, rows=rows,
            export=str(request.query_params),
        )  # fmt: skip

    async def limits(self, request: Request, session: Session) -> Response:
        if not session.is_admin:
            return self.render(request, "limits.html", session, uses=None)
        now = self.now()
        uses = await limits_view.limits_with_use(session.client, now)
        return self.render(request, "limits.html", session, uses=uses, now=now)

    async def alerts(self, request: Request, session: Session) -> Response:
        return self.render(request, "alerts.html", session)

    async def alert_stream(self, request: Request, session: Session) -> Response:
        last = request.headers.get("last-event-id") or request.query_params.get("since", "")
        since = int(last) if last.isdigit() else None
        return StreamingResponse(
            alert_events(session.client, since),
            media_type="text/event-stream",
            headers={"cache-control": "no-store", "x-accel-buffering": "no"},
        )

    async def calls(self, request: Request, session: Session) -> Response:
        q = request.query_params
        filters = pages.call_filters(q)
        start = parse_instant(q["start"]) if q.get("start") else None
        end = parse_instant(q["end"]) if q.get("end") else None
        size = min(max(int(q.get("page_size", "50")) if q.get("page_size", "").isdigit() else 50, 1), 500)
        response = await session.client.list_calls(
            start=start, end=end, page_size=size, page_token=q.get("page_token", "")[:500], **filters
        )
        rows = [pages.call_row(call) for call in response.calls]
        next_query = dict(q) | {"page_token": response.next_page_token} if response.next_page_token else None
        return self.render(request, "calls.html", session, rows=rows, q=q, next_query=next_query)

    async def call_detail(self, request: Request, session: Session) -> Response:
        q = request.query_params
        if not q.get("id") or not q.get("at"):
            raise RangeError("a call is found by its id and occurred_at (follow a link from the list)")
        call = await pages.find_call(session.client, q["id"][:200], parse_instant(q["at"]), q.get("subject", "")[:200])
        if call is None:
            return self.render(request, "error.html", session, 404, message="No such call in that instant.")
        return self.render(request, "call.html", session, row=pages.call_row(call))

    async def report_page(self, request: Request, session: Session) -> Response:
        period = request.query_params.get("period", "day")
        kind = request.query_params.get("format", "html")
        data = await report.build(session.client, period, self.now(), with_users=kind != "html")
        if kind == "markdown":
            return PlainTextResponse(report.markdown(data), headers=SECURITY_HEADERS)
        if kind == "csv":
            return Response(
                report.csv_text(data),
                media_type="text/csv; charset=utf-8",
                headers={
                    "content-disposition": f'attachment; filename="meter-report-{period}.csv"',
                    **SECURITY_HEADERS,
                },
            )
        return self.render(
            request, "report_page.html", session, report=data, period=period, summary=report.summary(data)
        )

    # -- the application ----------------------------------------------------------------------------

    def app(self) -> Starlette:
        page = self.page
        routes = [
            Route("/signin", self.signin_form, methods=["GET"]),
            Route("/signin", self.signin, methods=["POST"]),
            Route("/signout", self.signout, methods=["POST"]),
            Route("/", page(self.overview)),
            Route("/export.csv", page(self.export)),
            Route("/fragments/table", page(self.fragment)),
            Route("/limits", page(self.limits)),
            Route("/alerts", page(self.alerts)),
            Route("/alerts/stream", page(self.alert_stream)),
            Route("/calls", page(self.calls)),
            Route("/calls/detail", page(self.call_detail)),
            Route("/report", page(self.report_page)),
            *admin_views.routes(self),
            Mount("/static", app=StaticFiles(packages=[("meterd.console", "static")]), name="static"),
        ]

        @contextlib.asynccontextmanager
        async def lifespan(_app):
            await self.startup()
            try:
                yield
            finally:
                await self.shutdown()

        return Starlette(routes=routes, lifespan=lifespan, max_body_size=64 * 1024)


def create_app(target: str, **options) -> Starlette:
    return Console(target, **options).app()
