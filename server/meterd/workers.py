"""`meter serve --workers N`: N server processes on one port, started and stopped as one service.

The parent (this module) owns what must exist once: the port (it checks the address is free, resolves
port 0, and keeps a bound, non-listening SO_REUSEPORT socket so the port stays the service's while a
worker restarts), the embedded PostgreSQL (started by `meter serve` before this runs; workers get its
URL) and the /metrics endpoint. Each worker (meterd/worker_main.py) is a whole MeterServer with its
own pool and batchers, listening with SO_REUSEPORT: the kernel spreads connections across them.

Signals: SIGTERM/SIGINT drain every worker (each turns health NOT_SERVING, then stops gracefully);
SIGHUP is forwarded (TLS reload). A worker that dies after it was SERVING is restarted, at most
RESTART_BUDGET times per RESTART_WINDOW seconds; a worker that dies before it ever served (a setting
or file it cannot use) or a crash loop stops the whole service with exit code 1, because restarting
cannot fix either and a service silently running on fewer workers would hide it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import selectors
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections import deque
from http.server import HTTPServer
from pathlib import Path
from types import FrameType

from meterd.config import Config
from meterd.tls import is_loopback

log = logging.getLogger("meter.workers")

RESTART_BUDGET = 5
RESTART_WINDOW = 60.0  # seconds
KILL_AFTER = 15.0  # seconds past the grace period before a worker that is still draining is killed


def available_cores() -> int:
    """The CPUs this process may run on (a container's or taskset's share, not the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def worker_count(config: Config) -> int:
    return config.workers or available_cores()


class ListenError(OSError):
    """Same wording as meterd.app.ListenError (the parent does not import grpc to say it)."""

    def __init__(self, address: str, flag: str, env: str, why: object) -> None:
        super().__init__(f"cannot listen on {address} ({why}): choose another address with {flag} or {env}")


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def reserve_port(address: str, *, shared: bool, flag: str, env: str) -> tuple[socket.socket, int]:
    """Check `address` is free (unless the operator shares it on purpose with --reuse-port) and return
    a bound, non-listening SO_REUSEPORT socket holding its port, and the port (port 0 resolved)."""
    try:
        host, port = split_address(address)
        family = _family(host)
        if not shared:
            # An exclusive bind fails if anyone listens there, another Meter with SO_REUSEPORT included.
            with socket.socket(family, socket.SOCK_STREAM) as probe:
                # SO_REUSEADDR, as gRPC's own bind: connections of a stopped server in TIME_WAIT do not
                # hold the port, a listening socket still does.
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind((host, port))
                port = probe.getsockname()[1]
        holder = socket.socket(family, socket.SOCK_STREAM)
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind((host, port))
        return holder, holder.getsockname()[1]
    except (OSError, ValueError) as exc:
        raise ListenError(address, flag, env, getattr(exc, "strerror", None) or exc) from None


def with_port(address: str, port: int) -> str:
    host, _, _ = address.rpartition(":")
    return f"{host}:{port}"


@dataclasses.dataclass
class Worker:
    index: int
    proc: subprocess.Popen[bytes]
    status: int  # read end of the worker's status pipe
    buffer: bytes = b""
    listening: bool = False
    ready: bool = False
    served_before: bool = False  # an earlier instance of this slot reached SERVING
    metrics_port: int = 0


class Supervisor:
    def __init__(self, config: Config, database_url: str, count: int, *, embedded: bool) -> None:
        self.config = config
        self.database_url = database_url
        self.count = count
        self.embedded = embedded
        self.workers: list[Worker] = []
        self.restarts: deque[float] = deque()
        self.restart_total = 0
        self.stopping = False
        self.stop_deadline = float("inf")
        self.announced = False
        self.exit_code = 0
        self.signals: list[int] = []  # received, handled by the loop (a handler only notes them)
        self.selector = selectors.DefaultSelector()
        self.listen = config.listen
        self.metrics_http: HTTPServer | None = None

    # ---- lifecycle --------------------------------------------------------------------------------

    def run(self) -> int:
        holder, port = reserve_port(
            self.config.listen, shared=self.config.reuse_port, flag="--listen", env="METER_LISTEN"
        )
        self.listen = with_port(self.config.listen, port)
        with contextlib.closing(holder):
            if self.config.metrics_listen:
                from meterd.worker_metrics import serve_worker_metrics

                try:
                    self.metrics_http = serve_worker_metrics(self.config, self)
                except (OSError, ValueError) as exc:
                    raise ListenError(
                        self.config.metrics_listen, "--metrics-listen", "METER_METRICS_LISTEN", exc
                    ) from None
            try:
                return self._supervise(port)
            finally:
                if self.metrics_http is not None:
                    self.metrics_http.shutdown()
                    self.metrics_http.server_close()

    def _supervise(self, port: int) -> int:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        old_wakeup = signal.set_wakeup_fd(wake_w)
        handlers = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        handlers[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes the selector
        self.selector.register(wake_r, selectors.EVENT_READ, None)
        try:
            self.workers = [self._spawn(i) for i in range(self.count)]
            while self.workers:
                for key, _ in self.selector.select(timeout=1.0):
                    if key.data is None:
                        with contextlib.suppress(BlockingIOError):
                            os.read(wake_r, 512)
                    else:
                        self._read_status(key.data)
                while self.signals:
                    self._handle_signal(self.signals.pop(0))
                self._reap()
        except BaseException:
            self._abandon()
            raise
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            signal.set_wakeup_fd(old_wakeup)
            self.selector.unregister(wake_r)
            os.close(wake_r)
            os.close(wake_w)
        log.info("all workers stopped")
        return self.exit_code

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.signals.append(signum)

    def _handle_signal(self, signum: int) -> None:
        if signum == signal.SIGHUP:
            log.info("SIGHUP: forwarded to %d workers", len(self.workers))
            self._signal_all(signal.SIGHUP)
            if self.metrics_http is not None and self.config.metrics_tls:
                try:  # new scrapes get the new certificate, as in a single process
                    tls_socket = self.metrics_http.socket
                    assert isinstance(tls_socket, ssl.SSLSocket)
                    tls_socket.context.load_cert_chain(self.config.tls_cert, self.config.tls_key)
                except (OSError, ValueError) as exc:
                    log.warning("SIGHUP: metrics certificate not reloaded, the old one stays: %s", exc)
        elif not self.stopping:
            self._stop_all(f"{signal.Signals(signum).name}: draining {len(self.workers)} workers")

    def _stop_all(self, why: str) -> None:
        self.stopping = True
        self.stop_deadline = time.monotonic() + self.config.grace_period + KILL_AFTER
        log.info("%s (grace %.0fs)", why, self.config.grace_period)
        self._signal_all(signal.SIGTERM)

    def _signal_all(self, sig: signal.Signals) -> None:
        for worker in self.workers:
            with contextlib.suppress(ProcessLookupError):
                worker.proc.send_signal(sig)

    # ---- workers ----------------------------------------------------------------------------------

    def _spawn(self, index: int, *, served_before: bool = False) -> Worker:
        status_r, status_w = os.pipe()
        os.set_blocking(status_r, False)
        flags = {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(self.config).items()}
        flags.update(
            listen=self.listen,
            database_url=self.database_url,
            reuse_port=True,
            workers=1,
            # Each worker's registry on a private loopback port; the parent serves them merged.
            metrics_listen="127.0.0.1:0" if self.config.metrics_listen else "",
            metrics_tls=False,
        )
        spec = {"config": flags, "index": index, "status_fd": status_w, "embedded": self.embedded}
        proc = subprocess.Popen(
            [sys.executable, "-m", "meterd.worker_main"],
            stdin=subprocess.PIPE,  # kept open: its end-of-file tells the worker the parent is gone
            pass_fds=(status_w,),
        )
        os.close(status_w)
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(spec).encode() + b"\n")
        proc.stdin.flush()
        worker = Worker(index, proc, status_r, served_before=served_before)
        self.selector.register(status_r, selectors.EVENT_READ, worker)
        log.info("worker %d started (pid %d)", index, proc.pid)
        return worker

    def _read_status(self, worker: Worker) -> None:
        try:
            chunk = os.read(worker.status, 4096)
        except BlockingIOError:
            return
        if not chunk:  # the worker closed it (exiting): reaped below
            self.selector.unregister(worker.status)
            os.close(worker.status)
            worker.status = -1
            return
        worker.buffer += chunk
        *lines, worker.buffer = worker.buffer.split(b"\n")
        for line in lines:
            message = json.loads(line)
            if message.get("listening"):
                worker.listening = True
                if not self.announced and all(w.listening for w in self.workers):
                    self._announce()
            if "metrics_port" in message:
                worker.metrics_port = int(message["metrics_port"])
            if message.get("ready"):
                worker.ready = True
                if all(w.ready for w in self.workers):
                    log.info("all %d workers SERVING", len(self.workers))

    def _announce(self) -> None:
        """Said once every worker accepts connections, in the words of a single process (tools wait for it)."""
        self.announced = True
        port = split_address(self.listen)[1]
        log.info("listening on %s (port %d) with %d workers", self.listen, port, self.count)
        if not self.config.tls_cert and not is_loopback(self.config.listen):
            log.warning("--insecure: plaintext on the non-loopback address %s; API keys cross the network in "
                        "clear", self.config.listen)  # fmt: skip

    def _reap(self) -> None:
        for worker in list(self.workers):
            code = worker.proc.poll()
            if code is None:
                continue
            self._forget(worker)
            if self.stopping:
                # Killed by our SIGTERM before its handlers were in place: it served nothing, a clean end.
                if code not in (0, -signal.SIGTERM, -signal.SIGINT):
                    log.warning("worker %d (pid %d) exited with code %s", worker.index, worker.proc.pid, code)
                    self.exit_code = 1
                continue
            if not (worker.ready or worker.served_before):
                self.exit_code = 1
                self._stop_all(f"worker {worker.index} exited with code {code} before it was serving: stopping")
                continue
            now = time.monotonic()
            self.restarts.append(now)
            while self.restarts and self.restarts[0] < now - RESTART_WINDOW:
                self.restarts.popleft()
            if len(self.restarts) > RESTART_BUDGET:
                self.exit_code = 1
                self._stop_all(f"workers died {len(self.restarts)} times in {RESTART_WINDOW:.0f}s: stopping")
                continue
            log.warning("worker %d (pid %d) died with code %s: restarting it", worker.index, worker.proc.pid, code)
            self.restart_total += 1
            self.workers.append(self._spawn(worker.index, served_before=True))
        if self.stopping and time.monotonic() > self.stop_deadline:
            for worker in self.workers:
                log.warning("worker %d (pid %d) still running: killing it", worker.index, worker.proc.pid)
                with contextlib.suppress(ProcessLookupError):
                    worker.proc.kill()
            self.exit_code = 1
            self.stop_deadline = float("inf")

    def _abandon(self) -> None:
        """The supervisor itself failed: stop the workers before the embedded database goes away."""
        self._signal_all(signal.SIGTERM)
        for worker in self.workers:
            try:
                worker.proc.wait(timeout=self.config.grace_period + KILL_AFTER)
            except subprocess.TimeoutExpired:
                worker.proc.kill()

    def _forget(self, worker: Worker) -> None:
        if worker.status >= 0:
            self.selector.unregister(worker.status)
            os.close(worker.status)
            worker.status = -1
        if worker.proc.stdin:
            with contextlib.suppress(OSError):
                worker.proc.stdin.close()
        self.workers.remove(worker)

    def metrics_ports(self) -> list[tuple[int, int, int]]:
        """(worker index, pid, metrics port) of each worker that has reported its port."""
        return [(w.index, w.proc.pid, w.metrics_port) for w in list(self.workers) if w.metrics_port]


def supervise(config: Config, database_url: str, count: int, *, embedded: bool) -> int:
    """Run `count` workers until SIGTERM/SIGINT; returns the exit code of the service."""
    if embedded and count * (config.pool_max + 6) > 100:
        log.warning(
            "%d workers may open up to %d connections; the embedded PostgreSQL allows 100: lower --workers "
            "or --pool-max, or use --database-url",
            count,
            count * (config.pool_max + 6),
        )
    return Supervisor(config, database_url, count, embedded=embedded).run()
