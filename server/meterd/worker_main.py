"""One worker of `meter serve --workers N` (`python -m meterd.worker_main`, started by meterd/workers.py).

It reads its settings as one JSON line on stdin and keeps stdin open: end-of-file means the parent is
gone (even SIGKILLed), and the worker drains and exits rather than linger as an orphan holding the port.
It reports to the parent on a pipe, one JSON object a line: its metrics port, then `ready` when SERVING.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import os
import signal
import sys
from typing import IO, Any

from meterd import heap
from meterd.config import Config

log = logging.getLogger("meter.worker")


def _report(status: IO[str], **message: Any) -> None:
    status.write(json.dumps(message) + "\n")
    status.flush()


def _watch_parent(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    fd = sys.stdin.fileno()

    def on_readable() -> None:
        if not os.read(fd, 4096):  # end-of-file: the parent's end of the pipe is closed
            loop.remove_reader(fd)
            if not stop.is_set():
                log.warning("the supervisor is gone: stopping")
            stop.set()

    loop.add_reader(fd, on_readable)


async def serve_worker(config: Config, index: int, status: IO[str], *, embedded: bool) -> None:
    from meterd.app import MeterServer
    from meterd.store.keys import KeyStore

    server = MeterServer(config, config.database_url)
    await server.start()
    metrics = server.metrics_http
    _report(status, listening=True, **({"metrics_port": metrics.server_port} if metrics is not None else {}))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tls = server.tls

    def on_hup() -> None:
        # Without TLS, SIGHUP has nothing to reload; it must not kill the worker (its default action).
        log.info("SIGHUP: %s", "re-reading the TLS files" if tls else "no TLS files to reload")
        if tls:
            tls.reload(force=True)

    loop.add_signal_handler(signal.SIGHUP, on_hup)
    _watch_parent(loop, stop)
    ready = asyncio.create_task(server.ready.wait())
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait([ready, stopped], return_when=asyncio.FIRST_COMPLETED)
    if ready.done():
        heap.settle()
        _report(status, ready=True, pid=os.getpid())
        if index == 0 and embedded and await KeyStore(server.db).count() == 0:
            print(
                "\nNo API keys yet. Create the first admin key (in another terminal):\n"
                f"    .venv/bin/meter keys create --tenant default --role admin --data-dir {config.data_dir}\n",
                flush=True,
            )
    await stopped
    ready.cancel()
    log.info("shutting down (grace %.0fs)", config.grace_period)
    await server.stop()


def main() -> None:
    # Until the event loop's handlers are in place: a forwarded SIGHUP must not kill (its default
    # action) a worker that is still starting.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    spec = json.loads(sys.stdin.buffer.readline())
    index = int(spec["index"])
    try:
        config = Config.load(spec["config"], environ={})
    except ValueError as exc:
        sys.exit(f"meter: worker {index}: {exc}")
    logging.basicConfig(
        level=config.log_level.upper(),
        format=f"%(asctime)s %(levelname)s worker-{index}[{os.getpid()}] %(name)s: %(message)s",
        stream=sys.stderr,
    )
    status = os.fdopen(int(spec["status_fd"]), "w")
    from meterd.app import ListenError

    try:
        coro = serve_worker(config, index, status, embedded=bool(spec["embedded"]))
        if config.uvloop and importlib.util.find_spec("uvloop") is not None:
            import uvloop

            uvloop.run(coro)
        else:
            asyncio.run(coro)
    except (ListenError, ValueError) as exc:
        sys.exit(f"meter: worker {index}: {exc}")
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
