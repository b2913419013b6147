"""domain/call_search.py: the search query's defaults and bounds, and page tokens that round-trip,
are bound to the request, and refuse any alteration."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest

from meterd.domain.call_search import (
    CallOrder,
    CallSearch,
    SearchCursor,
    decode_token,
    encode_token,
    search_scope,
    sort_key,
    validate_call_search,
)
from meterd.domain.errors import InvalidArgument
from meterd.domain.usage import usage_filter

AT = dt.datetime(2026, 3, 10, 11, 59, 59, 123456, tzinfo=dt.UTC)
COST = CallSearch(min_cost_nanos=100_000_000, order=CallOrder.COST)


def bad_token(token: str, scope: str, order: CallOrder = CallOrder.COST) -> None:
    with pytest.raises(InvalidArgument) as err:
        decode_token(token, scope, order)
    assert err.value.violations[0][0] == "page_token"


def edited(token: str, **changes) -> str:
    content = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    return base64.urlsafe_b64encode(json.dumps(content | changes).encode()).decode()


def test_tokens_round_trip_for_every_order():
    f = usage_filter(subject="s")
    for search, key in ((CallSearch(), None), (COST, 250_000_000), (CallSearch(order=CallOrder.LATENCY), 5_000_000)):
        scope = search_scope(f, search, None, AT)
        cursor = SearchCursor(key, AT, "call/ü-1")
        assert decode_token(encode_token(cursor, scope), scope, search.order) == cursor


def test_a_token_is_bound_to_the_range_filter_minimums_and_order():
    f = usage_filter(subject="s")
    scope = search_scope(f, COST, None, None)
    token = encode_token(SearchCursor(7, AT, "c"), scope)
    for other in (
        search_scope(usage_filter(subject="t"), COST, None, None),
        search_scope(f, CallSearch(min_cost_nanos=100_000_001, order=CallOrder.COST), None, None),
        search_scope(f, CallSearch(min_cost_nanos=100_000_000, order=CallOrder.LATENCY), None, None),
        search_scope(f, CallSearch(min_cost_nanos=100_000_000, order=CallOrder.COST, error_code="429"), None, None),
        search_scope(f, COST, AT, None),
        search_scope(f, COST, None, AT),
    ):
        assert other != scope
        bad_token(token, other)


def test_altered_tokens_are_refused():
    scope = search_scope(usage_filter(), COST, None, None)
    token = encode_token(SearchCursor(7, AT, "c"), scope)
    for bad in (
        edited(token, k=8),
        edited(token, t=0),
        edited(token, c="d"),
        edited(token, v=1),
        edited(token, k="7"),  # the right digest cannot cover a wrong type
        edited(token, h=None),
        token[:-2],
        "",
        "%%%",
        base64.urlsafe_b64encode(b"[]").decode(),
        base64.urlsafe_b64encode(b'{"v": 2}').decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ):
        bad_token(bad, scope)
    # A newest-first token has no key; a cost token must have one.
    newest = search_scope(usage_filter(), CallSearch(), None, None)
    bad_token(encode_token(SearchCursor(7, AT, "c"), newest), newest, CallOrder.NEWEST)
    bad_token(encode_token(SearchCursor(None, AT, "c"), scope), scope, CallOrder.COST)


def test_query_defaults_and_bounds():
    q = validate_call_search(
        start=None, end=None, filter=usage_filter(), search=CallSearch(), page_size=0, page_token=""
    )
    assert (q.page_size, q.after, q.start, q.end) == (50, None, None, None)
    big = validate_call_search(start=None, end=None, filter=usage_filter(), search=COST, page_size=5000, page_token="")
    assert big.page_size == 1000
    with pytest.raises(InvalidArgument) as err:
        validate_call_search(start=AT, end=AT, filter=usage_filter(), search=COST, page_size=-1, page_token="x")
    assert {f for f, _ in err.value.violations} == {"start", "page_size"}
    token = encode_token(SearchCursor(3, AT, "c"), search_scope(usage_filter(), COST, None, None))
    q = validate_call_search(start=None, end=None, filter=usage_filter(), search=COST, page_size=10, page_token=token)
    assert q.after == SearchCursor(3, AT, "c")


def test_sort_key_per_order():
    assert sort_key(CallSearch(), 5, 7) is None
    assert sort_key(COST, 5, 7) == 5
    assert sort_key(CallSearch(order=CallOrder.LATENCY), 5, 7) == 7
