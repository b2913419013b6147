"""How the guard describes a failed provider call, with the SDKs' real exception types (no I/O)."""

from __future__ import annotations

import importlib

import anthropic
import openai

from meter.guard import Call, error_code_of


def http():
    """The HTTP library the installed SDKs build their errors on (httpx, or its successor httpx2)."""
    for name in ("httpx2", "httpx"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise AssertionError("the OpenAI SDK needs httpx or httpx2")


def test_sdk_errors_become_short_codes_and_their_messages():
    httpx = http()
    request = httpx.Request("POST", "https://api.openai.com/v1/chat/completions")
    rate_limited = openai.RateLimitError(
        "Rate limit reached for gpt-4.1",
        response=httpx.Response(429, request=request),
        body={"code": "rate_limit_exceeded", "message": "Rate limit reached for gpt-4.1"},
    )
    overloaded = anthropic.InternalServerError(
        "Overloaded",
        response=httpx.Response(529, request=httpx.Request("POST", "https://api.anthropic.com/v1/messages")),
        body={"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
    )
    assert error_code_of(rate_limited) == "RateLimitError:rate_limit_exceeded"
    assert error_code_of(overloaded) == "InternalServerError:529"
    assert error_code_of(openai.APIConnectionError(request=request)) == "APIConnectionError"
    assert error_code_of(TimeoutError()) == "TimeoutError"

    call = Call("c-1", {}, {})
    fields = call._record_fields(rate_limited)
    assert (fields["error_code"], fields["error_message"]) == (
        "RateLimitError:rate_limit_exceeded",
        "Rate limit reached for gpt-4.1",
    )
    # A failed call is charged zero, not its reservation's estimate (an unset usage would be).
    assert fields["usage"] is not None and fields["usage"].ByteSize() == 0
    assert call._record_fields(None)["usage"] is None and "error_code" not in call._record_fields(None)
