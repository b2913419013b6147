"""Transport security of the server: TLS and mutual TLS from PEM files, re-read without a restart.

gRPC asks `CertReloader.fetch` before every new connection's handshake; it hands over a new
certificate configuration once after the files changed and were validated, else None (keep the
current one). Existing connections keep the keys they were made with, so nothing is dropped. A
change that does not validate (half-written file, key not matching the certificate...) is refused
with a log line and the credentials in force stay.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import ipaddress
import logging
import os
import ssl
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import grpc

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TlsFiles:
    cert: Path  # certificate chain, leaf first (PEM)
    key: Path  # unencrypted private key (PEM)
    client_ca: Path | None = None  # CA bundle client certificates must chain to: mutual TLS

    def paths(self) -> tuple[Path, ...]:
        return (self.cert, self.key) + ((self.client_ca,) if self.client_ca else ())


@dataclasses.dataclass(frozen=True)
class Material:
    cert_chain: bytes
    key: bytes
    client_ca: bytes | None

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        for part in (self.cert_chain, self.key, self.client_ca or b""):
            h.update(hashlib.sha256(part).digest())
        return h.hexdigest()[:12]

    def server_configuration(self):
        return grpc.ssl_server_certificate_configuration(
            [(self.key, self.cert_chain)], root_certificates=self.client_ca
        )


def _no_password() -> bytes:
    raise ValueError("the private key is encrypted; Meter needs an unencrypted PEM key (protect the file instead)")


def with_files(material: Material, action: Callable[[str, str, str | None], object]):
    """Run action(cert_path, key_path, ca_path) on private copies of the material: what is validated or
    loaded is exactly what was read, even if the files change again meanwhile."""
    with tempfile.TemporaryDirectory(prefix="meter-tls-") as tmp:

        def private_copy(name: str, data: bytes) -> str:
            path = os.path.join(tmp, name)
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
                f.write(data)
            return path

        ca = None if material.client_ca is None else private_copy("ca.pem", material.client_ca)
        return action(private_copy("cert.pem", material.cert_chain), private_copy("key.pem", material.key), ca)


def _validate(cert: str, key: str, ca: str | None) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key, password=_no_password)  # PEM syntax, and the key matches the certificate
    if ca is not None:
        ctx.load_verify_locations(cafile=ca)


def load(files: TlsFiles) -> Material:
    """Read and validate the files; raises ValueError with a one-line reason."""
    try:
        material = Material(
            files.cert.read_bytes(), files.key.read_bytes(), files.client_ca.read_bytes() if files.client_ca else None
        )
    except OSError as exc:
        raise ValueError(f"cannot read {exc.filename}: {exc.strerror}") from None
    try:
        with_files(material, _validate)
    except (ssl.SSLError, ValueError) as exc:
        raise ValueError(
            f"{files.cert} / {files.key}{' / ' + str(files.client_ca) if files.client_ca else ''}: {exc}"
        ) from None
    return material


def _stat(path: Path) -> tuple | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class CertReloader:
    """The server's TLS material: loaded at start (a bad file is then fatal), re-read by `reload()`
    (from `watch()` polling the files' mtimes, or SIGHUP) and handed to gRPC through `fetch`."""

    def __init__(self, files: TlsFiles) -> None:
        self.files = files
        self.current = load(files)
        self._stats = [_stat(p) for p in files.paths()]
        self._pending = None
        self._lock = threading.Lock()  # fetch runs in gRPC's threads, reload in the event loop's
        self.reloads = 0  # changes put in force
        self.refused = 0  # changes refused (the files did not validate)
        self.on_reload: list[Callable[[Material], None]] = []
        log.info("TLS certificate %s loaded (%s)%s", files.cert, self.current.digest,
                 ", client certificates required (mutual TLS)" if files.client_ca else "")  # fmt: skip

    @property
    def mutual(self) -> bool:
        return self.files.client_ca is not None

    def credentials(self) -> grpc.ServerCredentials:
        # require_client_authentication=True: without it a client with no certificate is let in.
        return grpc.dynamic_ssl_server_credentials(
            self.current.server_configuration(), self.fetch, require_client_authentication=self.mutual
        )

    def fetch(self):
        """Called by gRPC (from its own threads) before each new handshake: must never block."""
        with self._lock:
            pending, self._pending = self._pending, None
        return pending

    def reload(self, force: bool = False) -> bool:
        """Re-read the files if they changed (or always, with force); True when new material is in force
        for new connections."""
        stats = [_stat(p) for p in self.files.paths()]
        if stats == self._stats and not force:
            return False
        self._stats = stats
        try:
            material = load(self.files)
        except ValueError as exc:
            self.refused += 1
            log.error("TLS files changed but were refused (%s); the current certificate %s stays in force",
                      exc, self.current.digest)  # fmt: skip
            return False
        if material.digest == self.current.digest:
            if force:
                log.info("TLS files re-read: unchanged (%s)", material.digest)
            return False
        configuration = material.server_configuration()
        with self._lock:
            self._pending = configuration
        previous, self.current = self.current, material
        self.reloads += 1
        log.info("TLS certificate reloaded: %s -> %s (new connections use it; open ones keep theirs)",
                 previous.digest, material.digest)  # fmt: skip
        for callback in self.on_reload:
            try:
                callback(material)
            except Exception:  # noqa: BLE001 - one listener (metrics) must not stop the others
                log.exception("applying the reloaded TLS certificate failed")
        return True

    async def watch(self, interval: float) -> None:
        while True:
            await asyncio.sleep(max(interval, 0.05))  # a stat of two or three files per round
            self.reload()


def is_loopback(listen: str) -> bool:
    if listen.startswith("unix:"):
        return True
    host = listen.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name or an empty host (every interface)


def transport_problem(config) -> str | None:
    """Why the configured transport may not start, in one line naming the flags; None when it may."""
    if bool(config.tls_cert) != bool(config.tls_key):
        return "--tls-cert and --tls-key go together (the certificate chain and its private key, PEM)"
    if (config.tls_client_ca or config.metrics_tls) and not config.tls_cert:
        flag = "--tls-client-ca" if config.tls_client_ca else "--metrics-tls"
        return f"{flag} needs --tls-cert FILE --tls-key FILE"
    if not config.tls_cert and not config.insecure and not is_loopback(config.listen):
        return (
            f"refusing plaintext on the non-loopback address {config.listen}: API keys would cross the network "
            "in clear; pass --tls-cert FILE --tls-key FILE (and --tls-client-ca FILE for mutual TLS), "
            "or --insecure to allow plaintext anyway"
        )
    return None


def server_tls(config) -> CertReloader | None:
    if not config.tls_cert:
        return None
    client_ca = Path(config.tls_client_ca) if config.tls_client_ca else None
    return CertReloader(TlsFiles(Path(config.tls_cert), Path(config.tls_key), client_ca))


def reload_metrics_context(http_server) -> Callable[[Material], None]:
    """A reload listener for prometheus_client's HTTPS server: new scrapes get the new certificate
    (its socket's SSLContext is shared by every later handshake)."""

    def apply(material: Material) -> None:
        with_files(material, lambda cert, key, _ca: http_server.socket.context.load_cert_chain(cert, key))

    return apply
