"""ListCalls search, the pure parts: minimums, the order, and keyset page tokens. No I/O here; the
SQL is in store/call_search.py. See docs/usage.md, "Searching calls".

Every order is total: (key DESC, occurred_at DESC, call_id ASC), where key is the cost or the
latency (none for newest first) and (occurred_at, call_id) is unique per tenant. A page token holds
the last call's sort values, so the next page starts strictly after it: rows that tie on cost or
latency are neither skipped nor repeated, and calls recorded meanwhile never shift a page.

Tokens are opaque (base64 of JSON) and checked: they carry a digest of their content and of the
request they belong to (range, filter, minimums, order), so an altered token, or one replayed with
other parameters, is INVALID_ARGUMENT rather than a silently different page. The digest is no
secret: a forged token could only page through the caller's own tenant's calls, which its key may
read anyway.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import hashlib
import json
from enum import StrEnum

from meterd.domain.errors import InvalidArgument
from meterd.domain.usage import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, UsageFilter

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_BAD_TOKEN = "not a page token from a previous ListCallsResponse with the same range, filter, minimums and order"
_TOKEN_VERSION = 2


class CallOrder(StrEnum):
    NEWEST = "newest"
    COST = "cost"  # dearest first
    LATENCY = "latency"  # slowest first; calls without a latency are left out


@dataclasses.dataclass(frozen=True)
class CallSearch:
    """Minimums (0: none) and the order. error_code matches calls.error_code exactly.

    Hook for a structured error dimension: when calls gain a normalised error class (issue 16
    item 2, migration 0012), add it here and in store.call_search._search_sql, next to error_code."""

    min_cost_nanos: int = 0
    min_latency_us: int = 0
    min_total_tokens: int = 0
    min_cached_read_tokens: int = 0
    error_code: str = ""
    order: CallOrder = CallOrder.NEWEST


@dataclasses.dataclass(frozen=True)
class SearchCursor:
    """The last call of a page: its sort key (cost or latency; None for newest first), time and id."""

    key: int | None
    occurred_at: dt.datetime
    call_id: str


@dataclasses.dataclass(frozen=True)
class CallSearchQuery:
    start: dt.datetime | None  # unset: no bound
    end: dt.datetime | None
    filter: UsageFilter
    search: CallSearch
    page_size: int
    after: SearchCursor | None

    @property
    def scope(self) -> str:
        return search_scope(self.filter, self.search, self.start, self.end)


def search_scope(f: UsageFilter, search: CallSearch, start: dt.datetime | None, end: dt.datetime | None) -> str:
    """What a page token is bound to."""
    content = [
        f.fingerprint(),
        dataclasses.asdict(search),
        start.isoformat() if start else None,
        end.isoformat() if end else None,
    ]
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


def _us(at: dt.datetime) -> int:
    delta = at - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _digest(body: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def encode_token(cursor: SearchCursor, scope: str) -> str:
    body: dict[str, object] = {"v": _TOKEN_VERSION, "k": cursor.key, "t": _us(cursor.occurred_at), "c": cursor.call_id}
    raw = json.dumps(body | {"h": _digest(body | {"s": scope})}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_token(token: str, scope: str, order: CallOrder) -> SearchCursor:
    """The cursor of a token made by encode_token for this scope; InvalidArgument otherwise."""
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if not isinstance(data, dict):
            raise ValueError("not an object")
        body = {name: data[name] for name in ("v", "k", "t", "c")}
        key, us, call_id = body["k"], body["t"], body["c"]
        valid = (
            body["v"] == _TOKEN_VERSION
            and type(us) is int
            and isinstance(call_id, str)
            and (key is None if order is CallOrder.NEWEST else type(key) is int)
            and data.get("h") == _digest(body | {"s": scope})
        )
        if not valid:
            raise ValueError("altered or from another request")
        occurred_at = _EPOCH + dt.timedelta(microseconds=us)
    except (binascii.Error, ValueError, TypeError, KeyError, OverflowError, UnicodeDecodeError):
        raise InvalidArgument([("page_token", _BAD_TOKEN)]) from None
    return SearchCursor(key, occurred_at, call_id)


def validate_call_search(
    *,
    start: dt.datetime | None,
    end: dt.datetime | None,
    filter: UsageFilter,
    search: CallSearch,
    page_size: int,
    page_token: str,
    violations: list[tuple[str, str]] | None = None,
) -> CallSearchQuery:
    """Page size 0 = 50, larger than 1,000 capped at 1,000; unset start/end leave the range open.
    The minimums' ranges are checked before (domain/bounds.py)."""
    violations = list(violations or [])
    if start is not None and end is not None and start >= end:
        violations.append(("start", f"must be before end ({start.isoformat()} >= {end.isoformat()})"))
    if page_size < 0:
        violations.append(("page_size", "must not be negative (0 means the default, 50)"))
    if violations:
        raise InvalidArgument(violations)
    scope = search_scope(filter, search, start, end)
    after = decode_token(page_token, scope, search.order) if page_token else None
    size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    return CallSearchQuery(start, end, filter, search, size, after)


def sort_key(search: CallSearch, cost_nanos: int, latency_us: int | None) -> int | None:
    """The value a call is ordered by under search.order (None for newest first)."""
    if search.order is CallOrder.COST:
        return cost_nanos
    if search.order is CallOrder.LATENCY:
        return latency_us
    return None
