"""The transport ceiling: a bare grpc.aio server that returns each request's bytes, with the same
event loop (uvloop) and options as Meter. Prints its port, serves until terminated."""

from __future__ import annotations

import asyncio
import signal
import sys

import grpc


async def echo(request: bytes, context) -> bytes:
    return request


async def main() -> None:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    handler = grpc.unary_unary_rpc_method_handler(echo)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("bench.Echo", {"Echo": handler}),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(0)


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())
    sys.exit(0)
