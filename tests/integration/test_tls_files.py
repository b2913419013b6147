"""The server's TLS files with real certificates (trustme): validated before use, re-read only when
they change, and a bad change is refused with a log line while the material in force stays."""

from __future__ import annotations

import logging

import pytest

from meter_testing.certs import Pki
from meterd.tls import CertReloader, TlsFiles, load


@pytest.fixture
def pki(tmp_path) -> Pki:
    return Pki(tmp_path)


def test_bad_tls_files_are_refused_with_a_reason(pki, tmp_path):
    good = pki.issue("srv")
    other = pki.issue("other")
    with pytest.raises(ValueError, match="cannot read"):
        load(TlsFiles(tmp_path / "missing.pem", good.key))
    with pytest.raises(ValueError, match="srv.pem"):
        load(TlsFiles(good.cert, other.key))  # the key of another certificate
    (tmp_path / "garbage.pem").write_text("not a certificate")
    with pytest.raises(ValueError):
        load(TlsFiles(tmp_path / "garbage.pem", good.key))
    with pytest.raises(ValueError):
        load(TlsFiles(good.cert, good.key, tmp_path / "garbage.pem"))
    assert load(TlsFiles(good.cert, good.key, pki.ca())).client_ca == pki.ca().read_bytes()


def test_reload_only_when_files_change_and_keeps_the_old_material_when_refused(pki, caplog):
    srv = pki.issue("srv")
    reloader = CertReloader(TlsFiles(srv.cert, srv.key))
    first = reloader.current
    assert reloader.fetch() is None  # nothing new for the next handshake
    assert reloader.reload() is False and reloader.refused == 0  # unchanged files are not re-read

    srv.cert.write_text("-----BEGIN CERTIFICATE-----\nhalf written")
    with caplog.at_level(logging.ERROR, logger="meterd.tls"):
        assert reloader.reload() is False
    assert reloader.refused == 1 and reloader.current is first and reloader.fetch() is None
    assert "stays in force" in caplog.text

    fresh = pki.issue("fresh")
    srv.cert.write_bytes(fresh.cert.read_bytes())
    srv.key.write_bytes(fresh.key.read_bytes())
    applied = []
    reloader.on_reload.append(applied.append)
    assert reloader.reload() is True and reloader.reloads == 1
    assert reloader.current.digest != first.digest and applied == [reloader.current]
    assert reloader.fetch() is not None and reloader.fetch() is None  # handed to gRPC once
    assert reloader.reload(force=True) is False  # SIGHUP with identical content: nothing to do
