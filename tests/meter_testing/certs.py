"""Real certificates made in the test run (trustme): CAs, a server certificate for localhost and
127.0.0.1, client certificates, written to PEM files as an operator would have them."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import grpc
import trustme


@dataclasses.dataclass(frozen=True)
class Pem:
    cert: Path  # chain, leaf first
    key: Path

    def pair(self) -> tuple[bytes, bytes]:
        return self.key.read_bytes(), self.cert.read_bytes()


class Pki:
    """Files under `root`: ca<N>.pem, and <name>.pem / <name>.key per issued certificate."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cas: dict[str, trustme.CA] = {}

    def ca(self, name: str = "ca") -> Path:
        if name not in self.cas:
            self.cas[name] = trustme.CA(organization_name=f"Meter test {name}")
            self.cas[name].cert_pem.write_to_path(str(self.root / f"{name}.pem"))
        return self.root / f"{name}.pem"

    def issue(self, name: str, *identities: str, ca: str = "ca", common_name: str | None = None) -> Pem:
        self.ca(ca)
        cert = self.cas[ca].issue_cert(*(identities or ("localhost", "127.0.0.1")), common_name=common_name)
        pem = Pem(self.root / f"{name}.pem", self.root / f"{name}.key")
        pem.cert.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
        pem.key.write_bytes(cert.private_key_pem.bytes())
        return pem


def mutual_tls(pki: Pki, name: str, *server_names: str) -> tuple[dict, Pem]:
    """(server settings for mutual TLS, a client certificate it accepts): the server's certificate is
    signed by pki.ca() for server_names, clients' by a CA of their own, <name>-clients."""
    server = pki.issue(f"{name}-server", *server_names)
    clients_ca = f"{name}-clients"
    client = pki.issue(f"{name}-client", f"{name}.client.example", common_name=f"{name}-client", ca=clients_ca)
    return {"tls_cert": server.cert, "tls_key": server.key, "tls_client_ca": pki.ca(clients_ca)}, client


def install(source: Pem, target: Pem) -> None:
    """Replace target's files with source's, each by an atomic rename (as cert-manager or certbot do)."""
    for src, dst in ((source.key, target.key), (source.cert, target.cert)):
        tmp = dst.with_name(dst.name + ".new")
        tmp.write_bytes(src.read_bytes())
        os.replace(tmp, dst)


def channel_credentials(ca: Path, client: Pem | None = None) -> grpc.ChannelCredentials:
    if client is None:
        return grpc.ssl_channel_credentials(ca.read_bytes())
    key, chain = client.pair()
    return grpc.ssl_channel_credentials(ca.read_bytes(), private_key=key, certificate_chain=chain)
