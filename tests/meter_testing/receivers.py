"""Local fake receivers for alert channels: one HTTP server that answers each path with the
statuses given (then 200), records every request, and an SMTP server (aiosmtpd) with STARTTLS and
AUTH that keeps the messages it accepted."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email
import email.policy
import json
import socket
import ssl
from collections.abc import AsyncIterator


@dataclasses.dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


@dataclasses.dataclass
class HttpReceiver:
    base: str
    requests: list[Request]
    statuses: dict[str, list[int]]  # path -> statuses to answer in turn, then 200 (Discord's 204 etc. below)

    def at(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]


@contextlib.asynccontextmanager
async def http_receiver(statuses: dict[str, list[int]] | None = None, ok: dict[str, int] | None = None):
    """`ok` maps a path to its success status (e.g. Discord answers 204, PagerDuty 202)."""
    rec = HttpReceiver("", [], dict(statuses or {}))
    ok = ok or {}

    async def handle(reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        path = lines[0].split(" ")[1]
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        body = await reader.readexactly(int(headers.get("content-length", 0)))
        rec.requests.append(Request(path, headers, body))
        pending = rec.statuses.get(path) or []
        status = pending.pop(0) if pending else ok.get(path, 200)
        answer = b"" if status == 204 else (b"ok" if status < 300 else b"try later")
        writer.write(
            f"HTTP/1.1 {status} X\r\nContent-Length: {len(answer)}\r\nConnection: close\r\n\r\n".encode() + answer
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    rec.base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield rec
    finally:
        server.close()
        await server.wait_closed()


@dataclasses.dataclass
class SmtpReceiver:
    host: str
    port: int
    messages: list[tuple[str, list[str], email.message.EmailMessage]]  # (mail from, rcpt tos, message)
    logins: list[str]
    client_context: ssl.SSLContext  # trusts the receiver's test certificate


@contextlib.asynccontextmanager
async def smtp_receiver(username: str, password: str) -> AsyncIterator[SmtpReceiver]:
    """aiosmtpd on a free port requiring STARTTLS, then AUTH with the given credentials."""
    import trustme
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    rec = SmtpReceiver("127.0.0.1", 0, [], [], client_ctx)

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
            rec.messages.append((envelope.mail_from, list(envelope.rcpt_tos), msg))
            return "250 OK"

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = auth_data.login.decode() == username and auth_data.password.decode() == password
        if ok:
            rec.logins.append(username)
        return AuthResult(success=ok)

    with socket.socket() as probe:  # the controller's readiness check cannot connect to port 0
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=port,
        tls_context=server_ctx,
        require_starttls=True,
        auth_required=True,
        authenticator=authenticate,
    )
    controller.start()
    rec.port = port
    try:
        yield rec
    finally:
        controller.stop()
