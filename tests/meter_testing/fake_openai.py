"""A tiny OpenAI-compatible server for tests: POST /v1/chat/completions, plain or streamed (SSE),
with usage (in the stream's last chunk when stream_options.include_usage). A model named "broken"
answers 400, like a provider refusing the request."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time

PROMPT_TOKENS, COMPLETION_TOKENS, CACHED_TOKENS = 120, 30, 20


@dataclasses.dataclass
class FakeOpenAI:
    base_url: str
    requests: list[dict]


def _completion(model: str) -> dict:
    return {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()), "model": model,  # any-date: informational
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello from the fake."},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS,
                  "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
                  "prompt_tokens_details": {"cached_tokens": CACHED_TOKENS}},
    }  # fmt: skip


def _chunks(model: str, include_usage: bool) -> list[dict]:
    base = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),  # any-date: informational
        "model": model,
    }
    out = [
        base | {"choices": [{"index": 0, "delta": {"role": "assistant", "content": word}, "finish_reason": None}]}
        for word in ("Hello ", "from ", "the ", "stream.")
    ]
    out.append(base | {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if include_usage:
        out.append(base | {"choices": [], "usage": _completion(model)["usage"]})
    return out


@contextlib.asynccontextmanager
async def fake_openai():
    fake = FakeOpenAI("", [])

    async def handle(reader, writer):
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
            body = json.loads(await reader.readexactly(int(headers.get("content-length", 0))) or b"{}")
            fake.requests.append(body)
            model = body.get("model", "")
            if model == "broken":
                answer = json.dumps({"error": {"message": "model broken", "type": "invalid_request_error"}}).encode()
                writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
                             + f"Content-Length: {len(answer)}\r\nConnection: close\r\n\r\n".encode() + answer)  # fmt: skip
            elif body.get("stream"):
                include = bool((body.get("stream_options") or {}).get("include_usage"))
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n")
                for chunk in _chunks(model, include):
                    writer.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    await writer.drain()
                writer.write(b"data: [DONE]\n\n")
            else:
                answer = json.dumps(_completion(model)).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             + f"Content-Length: {len(answer)}\r\nConnection: close\r\n\r\n".encode() + answer)  # fmt: skip
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    fake.base_url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"
    try:
        yield fake
    finally:
        server.close()
        await server.wait_closed()
