"""The supervisor's pure parts: how many workers, and whether the port is free."""

from __future__ import annotations

import os
import socket

import pytest

from meterd.config import Config
from meterd.workers import ListenError, reserve_port, split_address, worker_count


def test_zero_workers_means_one_per_cpu_this_process_may_use():
    assert worker_count(Config.load({}, environ={})) == len(os.sched_getaffinity(0))
    assert worker_count(Config.load({"workers": "3"}, environ={})) == 3
    assert worker_count(Config.load({}, environ={"METER_WORKERS": "2"})) == 2


def test_negative_workers_are_refused():
    with pytest.raises(ValueError, match="workers"):
        Config.load({"workers": "-1"}, environ={})


def test_addresses_split_into_host_and_port():
    assert split_address("127.0.0.1:50051") == ("127.0.0.1", 50051)
    assert split_address("[::1]:0") == ("::1", 0)
    assert split_address(":9000") == ("0.0.0.0", 9000)


def test_port_zero_is_resolved_and_held_so_workers_can_share_it():
    holder, port = reserve_port("127.0.0.1:0", shared=False, flag="--listen", env="METER_LISTEN")
    with holder:
        assert port > 0
        worker = socket.socket()
        worker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        with worker:
            worker.bind(("127.0.0.1", port))  # a worker joins the held port
            worker.listen()
            # Anyone else (no SO_REUSEPORT) is kept out, and so is a second service without --reuse-port.
            with pytest.raises(ListenError, match="--listen or METER_LISTEN"):
                reserve_port(f"127.0.0.1:{port}", shared=False, flag="--listen", env="METER_LISTEN")
            other, same = reserve_port(f"127.0.0.1:{port}", shared=True, flag="--listen", env="METER_LISTEN")
            other.close()
            assert same == port


def test_a_busy_port_is_named_with_its_setting():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        address = f"127.0.0.1:{busy.getsockname()[1]}"
        with pytest.raises(ListenError) as caught:
            reserve_port(address, shared=False, flag="--listen", env="METER_LISTEN")
    assert str(caught.value).startswith(f"cannot listen on {address}")


def test_a_port_whose_last_server_just_stopped_is_free_again():
    """Its accepted connections linger in TIME_WAIT after the server closed them; a restart on the same
    port (as gRPC's own bind allows) must not be refused."""
    listener = socket.socket()
    for option in (socket.SO_REUSEADDR, socket.SO_REUSEPORT):  # as gRPC binds a worker's port
        listener.setsockopt(socket.SOL_SOCKET, option, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = listener.accept()
    accepted.close()  # the server side closes first: its end of the connection enters TIME_WAIT
    client.close()
    listener.close()
    holder, again = reserve_port(f"127.0.0.1:{port}", shared=False, flag="--listen", env="METER_LISTEN")
    holder.close()
    assert again == port
