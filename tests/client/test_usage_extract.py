"""SDK responses → Meter's non-overlapping usage counters (no I/O)."""

from __future__ import annotations

import pytest

from meter import anthropic_usage, detect_usage, gemini_usage, openai_usage
from meter.v1 import common_pb2

from .sdk_responses import anthropic_message, gemini_response, openai_chat, openai_responses_usage


def counts(usage: common_pb2.Usage) -> tuple[int, int, int, int, int]:
    return (
        usage.input_tokens,
        usage.output_tokens,
        usage.cached_read_tokens,
        usage.cache_write_tokens,
        usage.reasoning_tokens,
    )


def test_openai_chat_prompt_tokens_include_cached_ones():
    response = openai_chat(prompt=1000, completion=300, cached=600, reasoning=120)
    # prompt_tokens 1000 includes the 600 cached: Meter gets 400 uncached + 600 cached-read.
    assert counts(openai_usage(response)) == (400, 300, 600, 0, 120)
    assert counts(openai_usage(response.usage)) == (400, 300, 600, 0, 120)
    assert counts(openai_usage(response.model_dump())) == (400, 300, 600, 0, 120)
    assert counts(detect_usage(response)) == (400, 300, 600, 0, 120)


def test_openai_chat_without_details_and_an_embeddings_shaped_usage():
    assert counts(openai_usage({"usage": {"prompt_tokens": 50, "completion_tokens": 7}})) == (50, 7, 0, 0, 0)
    assert counts(openai_usage({"usage": {"prompt_tokens": 12, "total_tokens": 12}})) == (12, 0, 0, 0, 0)
    usage = {"prompt_tokens": 100, "completion_tokens": 0, "prompt_tokens_details": None}
    assert counts(openai_usage(usage)) == (100, 0, 0, 0, 0)


def test_openai_responses_api_input_tokens_include_cached_and_written_ones():
    usage = openai_responses_usage(input_tokens=2000, output=500, cached=1500, reasoning=200, written=100)
    assert counts(openai_usage(usage)) == (400, 500, 1500, 100, 200)
    assert counts(openai_usage({"usage": usage.model_dump()})) == (400, 500, 1500, 100, 200)
    assert counts(detect_usage({"usage": usage.model_dump()})) == (400, 500, 1500, 100, 200)


def test_anthropic_input_tokens_exclude_both_cache_kinds():
    message = anthropic_message(input_tokens=30, output=250, cache_write=2000, cache_read=5000)
    assert counts(anthropic_usage(message)) == (30, 250, 5000, 2000, 0)
    assert counts(anthropic_usage(message.model_dump())) == (30, 250, 5000, 2000, 0)
    assert counts(detect_usage(message)) == (30, 250, 5000, 2000, 0)
    # Thinking tokens, where the API reports them, are inside output_tokens.
    with_thinking = {
        "usage": {"input_tokens": 5, "output_tokens": 90, "output_tokens_details": {"thinking_tokens": 60}}
    }
    assert counts(anthropic_usage(with_thinking)) == (5, 90, 0, 0, 60)
    assert counts(detect_usage(with_thinking)) == (5, 90, 0, 0, 60)


def test_gemini_prompt_includes_cached_and_thoughts_are_output():
    response = gemini_response(prompt=1000, candidates=200, cached=700, thoughts=300, tool_prompt=50)
    # uncached input 300 + tool-use prompt 50; output = candidates 200 + thoughts 300.
    assert counts(gemini_usage(response)) == (350, 500, 700, 0, 300)
    assert counts(gemini_usage(response.usage_metadata)) == (350, 500, 700, 0, 300)
    assert counts(gemini_usage(response.model_dump())) == (350, 500, 700, 0, 300)
    assert counts(detect_usage(response)) == (350, 500, 700, 0, 300)
    assert counts(gemini_usage(gemini_response(prompt=10, candidates=4))) == (10, 4, 0, 0, 0)


def test_total_tokens_are_preserved_by_every_conversion():
    chat = openai_chat(prompt=1000, completion=300, cached=600, reasoning=120)
    gemini = gemini_response(prompt=1000, candidates=200, cached=700, thoughts=300)
    for usage, total in ((openai_usage(chat), 1300), (gemini_usage(gemini), 1500)):
        assert usage.input_tokens + usage.cached_read_tokens + usage.cache_write_tokens + usage.output_tokens == total


def test_a_response_without_usage_is_an_error_not_zero():
    with pytest.raises(ValueError, match="include_usage"):
        openai_usage({"id": "chunk", "usage": None})
    with pytest.raises(ValueError):
        anthropic_usage({"content": []})
    with pytest.raises(ValueError, match="cannot tell"):
        detect_usage({"text": "hello"})
