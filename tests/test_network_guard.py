"""The conftest guard itself: a test that reaches past loopback must fail."""
import socket

import pytest

from conftest import NetworkAccessError


def test_outside_address_is_refused():
    with socket.socket() as s, pytest.raises(NetworkAccessError):
        s.connect(("192.0.2.1", 443))  # TEST-NET-1: never routed


def test_name_resolution_is_refused():
    with pytest.raises(NetworkAccessError):
        socket.getaddrinfo("management.azure.com", 443)


def test_loopback_is_allowed():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.socket() as client:
            client.connect(server.getsockname())
