"""TLS for the client: `MeterClient(target, key, tls=TLS(ca_file="ca.pem"))`, with a client
certificate for mutual TLS (`cert_file=`, `key_file=`), or `tls=True` for the system's trusted CAs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import grpc


@dataclasses.dataclass(frozen=True)
class TLS:
    """ca_file: CA bundle (PEM) the server's certificate must chain to; None: the system's roots.
    cert_file, key_file: this client's certificate chain and key (PEM), for a server with
    --tls-client-ca. server_name: the name to verify the certificate against when it is not the
    target's host (e.g. dialling an IP address)."""

    ca_file: str | Path | None = None
    cert_file: str | Path | None = None
    key_file: str | Path | None = None
    server_name: str | None = None

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("TLS: cert_file and key_file go together")

    def credentials(self) -> grpc.ChannelCredentials:
        def read(path):
            return Path(path).read_bytes() if path is not None else None

        return grpc.ssl_channel_credentials(
            root_certificates=read(self.ca_file),
            private_key=read(self.key_file),
            certificate_chain=read(self.cert_file),
        )

    def channel_options(self) -> list[tuple[str, str]]:
        return [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []


def resolve(
    tls: TLS | bool | None, credentials: grpc.ChannelCredentials | None
) -> tuple[grpc.ChannelCredentials | None, list[tuple[str, str]]]:
    """(credentials or None for plaintext, extra channel options) from the clients' tls=/credentials=."""
    if tls and credentials is not None:
        raise ValueError("pass tls= or credentials=, not both")
    if tls is True:
        tls = TLS()
    if isinstance(tls, TLS):
        return tls.credentials(), tls.channel_options()
    return credentials, []
