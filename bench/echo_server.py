"""The transport ceiling: a bare grpc.aio server that returns each request's bytes, with the same
event loop (uvloop) and options as Meter. Prints its port, serves until terminated."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable

import grpc


async def echo(request: bytes, context) -> bytes:
    return request


def add_echo(server: grpc.aio.Server) -> None:
    handler = grpc.unary_unary_rpc_method_handler(echo)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("bench.Echo", {"Echo": handler}),))


async def serve(add_handlers: Callable[[grpc.aio.Server], None]) -> None:
    """Serve what add_handlers adds on 127.0.0.1 (the port printed), until SIGTERM."""
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    add_handlers(server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(0)


def run(add_handlers: Callable[[grpc.aio.Server], None]) -> None:
    try:
        import uvloop

        uvloop.run(serve(add_handlers))
    except ImportError:
        asyncio.run(serve(add_handlers))
    sys.exit(0)


if __name__ == "__main__":
    run(add_echo)
