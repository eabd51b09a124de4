"""sedc.scale.ray_connect: every cause of a failed connection is named, quickly, without Ray.

A fake GCS (a gRPC server answering the one call the probe makes, with token auth) stands in
for a cluster; the real two-node cluster is in ``test_ray_cluster.py``.
"""

from __future__ import annotations

import http.server
import socket
import threading
import time
from concurrent import futures

import pytest

from sedc.scale.ray_connect import GCS_CALL, RayConnectError, classify, find_token, probe, split

grpc = pytest.importorskip("grpc")
TOKEN = "t" * 64


class FakeGcs(grpc.GenericRpcHandler):
    """Answers GetClusterId like a GCS with token auth (``token=None``: auth disabled)."""

    def __init__(self, token: str | None) -> None:
        self.token = token

    def service(self, details):  # noqa: ANN001 - grpc's interface
        if details.method != GCS_CALL[0]:
            return None  # UNIMPLEMENTED, like a Ray server of the other kind

        def get_cluster_id(request: bytes, context) -> bytes:  # noqa: ANN001
            metadata = dict(context.invocation_metadata())
            if self.token and metadata.get("authorization") != f"Bearer {self.token}":
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "InvalidAuthToken: missing or incorrect")
            return b""

        return grpc.unary_unary_rpc_method_handler(get_cluster_id)


@pytest.fixture(params=[TOKEN, None], ids=["token-auth", "no-auth"])
def gcs(request):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers([FakeGcs(request.param)])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", request.param
    server.stop(0)


@pytest.fixture()
def no_user_auth(monkeypatch: pytest.MonkeyPatch, tmp_path):
    """No token nor mode of the user's: HOME is empty."""
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return monkeypatch


def cause(address: str, timeout: float = 5.0) -> str:
    with pytest.raises(RayConnectError) as caught:
        probe(address, timeout)
    assert caught.value.address == address and str(caught.value).startswith(f"cannot connect to Ray at {address}: ")
    return caught.value.cause


def test_the_local_token_is_used_when_the_cluster_asks_for_one(gcs, no_user_auth) -> None:
    address, token = gcs
    if token is None:
        assert probe(address, 5) is False  # no auth: no token needed, none sent
        return
    assert cause(address) == "auth"  # none here
    no_user_auth.setenv("RAY_AUTH_TOKEN", "x" * 64)
    with pytest.raises(RayConnectError, match="rejected the token from RAY_AUTH_TOKEN"):
        probe(address, 5)
    no_user_auth.setenv("RAY_AUTH_TOKEN", token)
    assert probe(address, 5) is True  # the caller turns token mode on
    no_user_auth.setenv("RAY_AUTH_MODE", "disabled")
    with pytest.raises(RayConnectError, match="RAY_AUTH_MODE=disabled"):
        probe(address, 5)


def test_a_gcs_port_given_as_ray_client_names_the_other_form(gcs, no_user_auth) -> None:
    address, token = gcs
    no_user_auth.setenv("RAY_AUTH_TOKEN", TOKEN)
    with pytest.raises(RayConnectError, match="GCS port"):
        probe(f"ray://{address}", 5)


def test_token_sources_in_rays_order(no_user_auth, tmp_path) -> None:
    assert find_token() == (None, str(tmp_path / ".ray" / "auth_token"))
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("home\n")
    assert find_token() == ("home", str(tmp_path / ".ray" / "auth_token"))
    (tmp_path / "file").write_text("file")
    no_user_auth.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "file"))
    assert find_token() == ("file", str(tmp_path / "file"))
    no_user_auth.setenv("RAY_AUTH_TOKEN", "env")
    assert find_token() == ("env", "RAY_AUTH_TOKEN")


def test_nothing_listening_is_refused() -> None:
    with socket.socket() as s:  # a port that was free a moment ago
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert cause(f"127.0.0.1:{port}") == "refused"
    assert cause(f"ray://127.0.0.1:{port}") == "refused"


def test_a_web_server_is_not_ray() -> None:
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert cause(f"127.0.0.1:{server.server_port}") == "not a Ray GCS"
    finally:
        server.shutdown()


def test_a_server_that_never_answers_times_out_in_time() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        started = time.monotonic()
        assert cause(f"127.0.0.1:{silent.getsockname()[1]}", timeout=1.0) == "timeout"
        assert time.monotonic() - started < 5


def test_bad_addresses_and_init_failures() -> None:
    with pytest.raises(RayConnectError, match="bad address"):
        split("head-node")
    assert split("ray://[::1]:10001") == ("::1", 10001, True)
    assert cause("no-such-host.invalid:6379") == "unknown host"
    assert classify("auto", ConnectionError("Could not find any running Ray instance. Please")).cause == \
        "no cluster found"
    assert classify("h:1", RuntimeError("boom\nmore")).detail == "RuntimeError: boom"
