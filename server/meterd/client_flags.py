"""The TLS flags of every command that dials a Meter server (`meter alerts tail`, `meter console`,
`meter usage`...), in one place so they read the same everywhere."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from meter.tls import TLS


def add_tls_client_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("TLS (a server started with --tls-cert)")
    group.add_argument("--tls", action="store_true", help="TLS with the system's trusted CAs (implied by --tls-ca)")
    group.add_argument("--tls-ca", type=Path, help="CA bundle (PEM) to verify the server's certificate with")
    group.add_argument("--tls-cert", type=Path, help="client certificate chain (PEM), for mutual TLS")
    group.add_argument("--tls-key", type=Path, help="private key of --tls-cert (PEM)")
    group.add_argument("--tls-server-name", help="name to verify the server's certificate against (default: the host)")


def tls_from_args(args: argparse.Namespace) -> TLS | None:
    """The TLS settings the flags ask for; None: plaintext. Bad combinations end the command."""
    if not (args.tls or args.tls_ca or args.tls_cert or args.tls_key or args.tls_server_name):
        return None
    if bool(args.tls_cert) != bool(args.tls_key):
        sys.exit("meter: --tls-cert and --tls-key go together")
    for path in (args.tls_ca, args.tls_cert, args.tls_key):
        if path is not None and not Path(path).is_file():
            sys.exit(f"meter: cannot read {path}")
    return TLS(ca_file=args.tls_ca, cert_file=args.tls_cert, key_file=args.tls_key, server_name=args.tls_server_name)
