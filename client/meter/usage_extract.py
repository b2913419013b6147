"""Usage figures from provider SDK responses, converted to Meter's non-overlapping counters.

Meter's `Usage` never double-counts: `input_tokens` is *uncached* input only, `cached_read_tokens`
and `cache_write_tokens` are separate, `output_tokens` includes reasoning tokens and
`reasoning_tokens` is informational. Providers report differently, so each helper converts at the edge:

| provider | reports | Meter gets |
| --- | --- | --- |
| OpenAI Chat Completions | `prompt_tokens` *including* `prompt_tokens_details.cached_tokens` (and `.cache_write_tokens` where reported); `completion_tokens` including `completion_tokens_details.reasoning_tokens` | input = prompt - cached - cache_write, cached_read = cached, cache_write, output = completion, reasoning |
| OpenAI Responses | `input_tokens` including `input_tokens_details.cached_tokens` (and `.cache_write_tokens`); `output_tokens` including `output_tokens_details.reasoning_tokens` | same conversion |
| Anthropic Messages | `input_tokens` *excluding* `cache_creation_input_tokens` and `cache_read_input_tokens`; `output_tokens` including `output_tokens_details.thinking_tokens` where reported | input as is, cache_write = creation, cached_read = read, output, reasoning = thinking |
| Google Gemini | `prompt_token_count` including `cached_content_token_count`; `candidates_token_count` *excluding* `thoughts_token_count`; `tool_use_prompt_token_count` separate | input = prompt - cached + tool-use prompt, cached_read = cached, output = candidates + thoughts, reasoning = thoughts |

The helpers take the SDKs' real response objects (or their `usage` / `usage_metadata` part), or plain
dicts of the same shape (e.g. `response.model_dump()` or JSON from a REST call). They never import an
SDK: fields are read by attribute or key, and missing or None fields count as 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meter.v1 import common_pb2


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _int(obj: Any, *path: str) -> int:
    for name in path:
        obj = _get(obj, name)
    if obj is None:
        return 0
    return int(obj)


def _has(obj: Any, name: str) -> bool:
    return _get(obj, name) is not None


def _usage_part(response: Any, name: str, marker: str) -> Any:
    """The usage object of a response, or the argument itself when it already is one."""
    if _has(response, marker):
        return response
    usage = _get(response, name)
    if usage is None:
        raise ValueError(f"no {name} in {type(response).__name__} (for streams, read the final chunk's usage)")
    return usage


def _usage(input_tokens: int, output_tokens: int, cached_read: int, cache_write: int, reasoning: int):
    return common_pb2.Usage(
        input_tokens=max(input_tokens, 0),
        output_tokens=output_tokens,
        cached_read_tokens=cached_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=reasoning,
    )


def openai_usage(response: Any) -> common_pb2.Usage:
    """From an OpenAI ChatCompletion, a stream's final ChatCompletionChunk (sent with
    `stream_options={"include_usage": True}`), a Responses API `Response`, an embeddings response,
    or their `usage` object."""
    usage = response if (_has(response, "prompt_tokens") or _has(response, "input_tokens")) else None
    if usage is None:
        usage = _get(response, "usage")
        if usage is None:
            raise ValueError(
                f"no usage in {type(response).__name__}; streams report it only with "
                'stream_options={"include_usage": True}, on the final chunk'
            )
    if _has(usage, "input_tokens"):  # Responses API
        prompt, details = _int(usage, "input_tokens"), _get(usage, "input_tokens_details")
        output = _int(usage, "output_tokens")
        reasoning = _int(usage, "output_tokens_details", "reasoning_tokens")
    else:  # Chat Completions (and embeddings, which have no completion)
        prompt, details = _int(usage, "prompt_tokens"), _get(usage, "prompt_tokens_details")
        output = _int(usage, "completion_tokens")
        reasoning = _int(usage, "completion_tokens_details", "reasoning_tokens")
    cached, written = _int(details, "cached_tokens"), _int(details, "cache_write_tokens")
    return _usage(prompt - cached - written, output, cached, written, reasoning)


def anthropic_usage(response: Any) -> common_pb2.Usage:
    """From an Anthropic `Message` (or a stream's final message) or its `usage` object."""
    usage = _usage_part(response, "usage", "input_tokens")
    return _usage(
        _int(usage, "input_tokens"),
        _int(usage, "output_tokens"),
        _int(usage, "cache_read_input_tokens"),
        _int(usage, "cache_creation_input_tokens"),
        _int(usage, "output_tokens_details", "thinking_tokens"),  # inside output_tokens
    )


def gemini_usage(response: Any) -> common_pb2.Usage:
    """From a Google Gen AI SDK `GenerateContentResponse` (or the last streamed one) or its
    `usage_metadata`."""
    meta = _usage_part(response, "usage_metadata", "prompt_token_count")
    prompt, cached = _int(meta, "prompt_token_count"), _int(meta, "cached_content_token_count")
    thoughts = _int(meta, "thoughts_token_count")
    return _usage(
        prompt - cached + _int(meta, "tool_use_prompt_token_count"),
        _int(meta, "candidates_token_count") + thoughts,
        cached,
        0,
        thoughts,
    )


def _present(obj: Any, name: str) -> bool:
    """The field exists (even when None): SDK models declare every field of their type."""
    if obj is None:
        return False
    return name in obj if isinstance(obj, Mapping) else hasattr(obj, name)


def detect_usage(response: Any) -> common_pb2.Usage:
    """Pick the conversion from the response's shape (OpenAI, Anthropic or Gemini)."""
    if _present(response, "usage_metadata") or _present(response, "prompt_token_count"):
        return gemini_usage(response)
    usage = _get(response, "usage") if _has(response, "usage") else response
    if _present(usage, "prompt_tokens") or _present(usage, "input_tokens_details"):
        return openai_usage(usage)
    if _present(usage, "input_tokens"):
        # Anthropic's shape; a bare {input_tokens, output_tokens} means the same in both.
        return anthropic_usage(usage)
    raise ValueError(f"cannot tell which provider produced {type(response).__name__}: no known usage fields")
