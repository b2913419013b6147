"""Transport rules without a server: which listen addresses need TLS, which flag combinations are
refused; key expiry and certificate binding; last-use
times written once per interval, not per RPC; stream re-checks."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from meter.tls import TLS, resolve
from meterd.api.key_policy import rechecked
from meterd.config import Config
from meterd.domain.errors import Unauthenticated
from meterd.domain.keys import Principal
from meterd.service.key_usage import LastUsed
from meterd.tls import is_loopback, transport_problem


@pytest.mark.parametrize(
    ("listen", "loopback"),
    [
        ("127.0.0.1:50051", True),
        ("127.0.0.5:0", True),
        ("localhost:50051", True),
        ("[::1]:50051", True),
        ("unix:/run/meter.sock", True),
        ("0.0.0.0:50051", False),
        ("[::]:50051", False),
        (":50051", False),
        ("10.0.0.7:50051", False),
        ("meter.internal:50051", False),
    ],
)
def test_loopback_addresses(listen, loopback):
    assert is_loopback(listen) is loopback


def config(**flags) -> Config:
    return Config.load({k: str(v) for k, v in flags.items()}, environ={})


def test_plaintext_off_loopback_needs_insecure_and_the_error_names_the_flags():
    problem = transport_problem(config(listen="0.0.0.0:50051"))
    assert "--tls-cert" in problem and "--tls-key" in problem and "--insecure" in problem and "\n" not in problem
    assert transport_problem(config(listen="0.0.0.0:50051", insecure="true")) is None
    assert transport_problem(config(listen="0.0.0.0:50051", tls_cert="c.pem", tls_key="k.pem")) is None
    assert transport_problem(config()) is None  # loopback plaintext stays the default
    assert "go together" in transport_problem(config(tls_cert="c.pem"))
    assert "--tls-client-ca needs" in transport_problem(config(tls_client_ca="ca.pem"))
    assert "--metrics-tls needs" in transport_problem(config(metrics_tls="1"))
    assert Config.load({}, environ={"METER_INSECURE": "yes", "METER_LISTEN": "0.0.0.0:1"}).insecure is True


def test_a_bare_boolean_flag_means_true():
    from meterd.cli import build_parser

    args = build_parser().parse_args(["serve", "--insecure", "--listen", "0.0.0.0:0"])
    assert Config.load(vars(args), environ={}).insecure is True
    args = build_parser().parse_args(["serve", "--insecure", "false"])
    assert Config.load(vars(args), environ={}).insecure is False


def test_key_expiry_and_certificate_binding():
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    p = Principal("t", "k1", frozenset({"read"}), expires_at=now)
    p.check_expiry(now - dt.timedelta(seconds=1))
    with pytest.raises(Unauthenticated, match="expired"):
        p.check_expiry(now)
    Principal("t", "k2", frozenset({"read"})).check_binding([], [])  # unbound: any connection

    bound = Principal("t", "k3", frozenset({"read"}), bound_cert_subject="alice", bound_san="spiffe://x/alice")
    bound.check_binding(["alice"], ["alice.example", "spiffe://x/alice"])
    for cns, sans in ((["bob"], ["spiffe://x/alice"]), (["alice"], ["spiffe://x/bob"]), ([], [])):
        with pytest.raises(Unauthenticated, match="bound to a client certificate") as err:
            bound.check_binding(cns, sans)
        assert "spiffe://x/alice" not in str(err.value)


def test_last_use_is_one_statement_per_interval_not_one_write_per_rpc():
    class Store:
        def __init__(self):
            self.calls: list[dict] = []

        async def mark_used(self, used):
            self.calls.append(used)

    async def scenario():
        store = Store()
        last_used = LastUsed(store, interval=60)
        for _ in range(1000):
            last_used.touch("a")
        last_used.touch("b")
        await last_used.flush()
        await last_used.flush()  # nothing new: no statement
        return store.calls

    calls = asyncio.run(scenario())
    assert len(calls) == 1 and sorted(calls[0]) == ["a", "b"]


def test_last_use_times_survive_a_failed_write():
    class Down:
        async def mark_used(self, used):
            raise OSError("database down")

    async def scenario():
        last_used = LastUsed(Down(), interval=60)
        last_used.touch("a")
        await last_used.flush()
        return last_used._pending

    assert list(asyncio.run(scenario())) == ["a"]


def test_streams_are_rechecked_while_idle_and_end_with_the_recheck_error():
    async def scenario():
        checks = []
        closed = asyncio.Event()

        async def idle_stream():
            try:
                yield "first"
                await asyncio.sleep(3600)  # sleep-ok: an alert stream with nothing to say
                yield "never"
            finally:
                closed.set()

        async def recheck():
            checks.append(1)
            if len(checks) == 3:
                raise Unauthenticated("revoked")

        got = []
        with pytest.raises(Unauthenticated):
            async for item in rechecked(idle_stream(), recheck, 0.01):
                got.append(item)
        return got, len(checks), closed.is_set()

    got, checks, closed = asyncio.run(scenario())
    assert got == ["first"] and checks == 3 and closed  # the inner stream was closed, not leaked


def test_client_tls_options():
    with pytest.raises(ValueError, match="go together"):
        TLS(cert_file="c.pem")
    with pytest.raises(ValueError, match="not both"):
        resolve(TLS(), object())
    assert TLS(server_name="meter.internal").channel_options() == [("grpc.ssl_target_name_override", "meter.internal")]
    assert resolve(None, None) == (None, [])
