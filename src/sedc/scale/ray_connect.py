"""Connecting to Ray within a bounded time, and naming the cause when it cannot be done.

``ray.init(address="HOST:PORT")`` on its own blocks for minutes when nothing answers (20 tries of
up to 40 s each in Ray 2.60) and reports a refused token as a bare "Failed to connect to Ray
cluster" after 20 s of warnings; Ray Client (``ray://``) reports both as "ray client connection
timeout". :func:`connect` first asks the address itself, in well under a second:

1. a TCP connection (``refused``, ``timeout``, ``unreachable``, ``unknown host``);
2. one gRPC call that every Ray server of that kind answers (the GCS for ``HOST:PORT``, the Ray
   Client server for ``ray://HOST:PORT``), without a token: ``OK``, or ``UNAUTHENTICATED`` (the
   cluster uses token auth: the call is repeated with the local token), ``UNIMPLEMENTED`` (the
   other kind of Ray port), anything else (not a Ray server);

then runs ``ray.init`` in a thread and waits for it at most what is left of the time limit.

Token authentication (Ray >= 2.52; ``ray start`` and a new local ``ray.init()`` turn it on when a
token exists): Ray sends the token only when ``RAY_AUTH_MODE=token``, and reads it from
``RAY_AUTH_TOKEN``, else the file ``RAY_AUTH_TOKEN_PATH``, else ``~/.ray/auth_token``. Ray does
this by itself for ``address="auto"`` but not for an explicit address; here, when the cluster
asks for a token, ``RAY_AUTH_MODE`` is unset and the local token is accepted, token mode is
turned on for this process (``RAY_AUTH_MODE=disabled`` keeps it off: the connection then fails
with the cause ``auth``).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ..base.errors import InputError, RayConnectError

DEFAULT_TIMEOUT = 30.0
TCP_TIMEOUT = 5.0
GCS_CALL = ("/ray.rpc.NodeInfoGcsService/GetClusterId", b"")  # GetClusterIdRequest {}
CLIENT_CALL = ("/ray.rpc.RayletDriver/ClusterInfo", b"\x08\x06")  # ClusterInfoRequest {type: PING}
LOCAL = ("local", None)


def connect(ray: Any, address: str | None, timeout: float = DEFAULT_TIMEOUT, **init_options: Any) -> Any:
    """``ray.init(address=address, **init_options)``, failing within about ``timeout`` seconds.

    Parameters
    ----------
    ray : module
        The ``ray`` module.
    address : str or None
        ``"local"`` starts a new local instance (not probed, no time limit); None uses
        ``RAY_ADDRESS`` when set, else starts a local instance; ``"auto"`` joins the cluster of
        ``RAY_ADDRESS`` or the one running on this machine; ``"HOST:PORT"`` (the GCS, 6379 by
        default) and ``"ray://HOST:PORT"`` (Ray Client, 10001 by default) join that cluster.
    timeout : float
        Seconds for the whole connection, probes included.
    **init_options
        Passed to ``ray.init``.

    Returns
    -------
    The context ``ray.init`` returns.

    Raises
    ------
    RayConnectError
        The address cannot be reached, is not a Ray server, refuses the token, or ``ray.init``
        fails or does not return within ``timeout``.
    """
    if not timeout > 0:
        raise InputError(f"timeout must be > 0 seconds; got {timeout!r}")
    target = resolve(address)
    if target in LOCAL:
        return ray.init(address=address, **init_options)
    deadline = time.monotonic() + timeout
    if target != "auto" and probe(target, timeout):
        enable_token_auth()
    return init_within(ray, address, deadline - time.monotonic(), init_options)


def resolve(address: str | None) -> str | None:
    """The address to probe: ``RAY_ADDRESS`` stands in for None and ``"auto"``, as in Ray."""
    env = os.environ.get("RAY_ADDRESS", "").strip()
    if address in (None, "auto") and env:
        return env
    if address == "auto":
        return _local_cluster() or "auto"
    return address


def _local_cluster() -> str | None:
    """The GCS address ``ray.init("auto")`` would pick on this machine, or None (Ray decides)."""
    try:
        from ray._private.services import canonicalize_bootstrap_address

        return canonicalize_bootstrap_address("auto")
    except Exception:  # noqa: BLE001 - a private helper: without it, Ray resolves "auto" itself
        return None


def split(address: str) -> tuple[str, int, bool]:
    """``(host, port, is_ray_client)`` of ``HOST:PORT`` or ``ray://HOST:PORT``."""
    client = address.startswith("ray://")
    rest = address[len("ray://"):] if client else address
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit():
        raise RayConnectError(address, "bad address", "expected auto, HOST:PORT or ray://HOST:PORT")
    return host.strip("[]"), int(port), client


def probe(address: str, timeout: float) -> bool:
    """Check that ``address`` is a Ray server that lets us in; True when it needs our token.

    Raises
    ------
    RayConnectError
        With the cause: nothing there, not Ray, the wrong kind of Ray port, or auth.
    """
    host, port, client = split(address)
    deadline = time.monotonic() + timeout
    tcp_check(address, host, port, min(TCP_TIMEOUT, timeout))
    code, detail = rpc(host, port, client, max(0.5, deadline - time.monotonic()), None)
    needs_token = code == "UNAUTHENTICATED"
    if needs_token:
        code, detail = authenticate(address, host, port, client, max(0.5, deadline - time.monotonic()))
    if code == "OK":
        return needs_token
    raise wrong_server(address, client, code, detail, timeout)


def tcp_check(address: str, host: str, port: int, timeout: float) -> None:
    """Open and close a TCP connection to ``host:port``; RayConnectError names why it failed."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except ConnectionRefusedError:
        raise RayConnectError(address, "refused", "nothing listens on that port") from None
    except socket.gaierror as err:
        raise RayConnectError(address, "unknown host", str(err)) from None
    except (socket.timeout, TimeoutError):
        raise RayConnectError(address, "timeout", f"no TCP answer within {timeout:g} s") from None
    except OSError as err:
        raise RayConnectError(address, "unreachable", err.strerror or str(err)) from None


def rpc(host: str, port: int, client: bool, timeout: float, token: str | None) -> tuple[str, str]:
    """One unary gRPC call to a Ray server; returns its status name (``"OK"``, ...) and details."""
    import grpc

    method, request = CLIENT_CALL if client else GCS_CALL
    metadata = [("authorization", f"Bearer {token}")] if token else []
    with grpc.insecure_channel(f"{host}:{port}") as channel:
        call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        try:
            call(request, timeout=timeout, metadata=metadata)
        except grpc.RpcError as err:
            return err.code().name, (err.details() or "").strip()
    return "OK", ""


def authenticate(address: str, host: str, port: int, client: bool, timeout: float) -> tuple[str, str]:
    """Repeat the call with the local token (the cluster asked for one)."""
    mode = os.environ.get("RAY_AUTH_MODE", "").strip().lower()
    if mode not in ("", "token"):
        raise RayConnectError(address, "auth", f"the cluster needs a token, but RAY_AUTH_MODE={mode}: "
                                               "set RAY_AUTH_MODE=token")
    token, source = find_token()
    if token is None:
        raise RayConnectError(address, "auth", "the cluster needs a token and there is none here: set "
                                               f"RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or write it to {source}")
    code, detail = rpc(host, port, client, timeout, token)
    if code == "UNAUTHENTICATED":
        raise RayConnectError(address, "auth", f"the cluster rejected the token from {source}")
    return code, detail


def find_token() -> tuple[str | None, str]:
    """The token Ray would send and where it comes from (Ray's order of precedence)."""
    token = os.environ.get("RAY_AUTH_TOKEN", "").strip()
    if token:
        return token, "RAY_AUTH_TOKEN"
    path = os.environ.get("RAY_AUTH_TOKEN_PATH", "").strip()
    source = Path(path) if path else Path.home() / ".ray" / "auth_token"
    try:
        return (source.read_text(encoding="utf-8").strip() or None), str(source)
    except OSError:
        return None, str(source)


def wrong_server(address: str, client: bool, code: str, detail: str, timeout: float) -> RayConnectError:
    """The error for a port that answers, but not as the Ray server its address form expects."""
    if code == "DEADLINE_EXCEEDED":
        return RayConnectError(address, "timeout", f"no answer within {timeout:g} s")
    kind = "Ray Client server" if client else "Ray GCS"
    if code == "UNIMPLEMENTED":
        other = ("HOST:PORT with the GCS port (6379 by default)" if client
                 else "ray://HOST:PORT with the Ray Client port (10001 by default)")
        return RayConnectError(address, f"not a {kind}", f"that port is another Ray service; use {other}")
    return RayConnectError(address, f"not a {kind}", f"gRPC {code}: {detail.splitlines()[0][:160] if detail else ''}")


def enable_token_auth() -> None:
    """Send the token from now on (``RAY_AUTH_MODE=token``, re-read by an imported Ray)."""
    os.environ["RAY_AUTH_MODE"] = "token"
    if "ray._raylet" in sys.modules:
        sys.modules["ray._raylet"].Config.initialize("")  # Ray caches its config at import


class _NotMainThread(logging.Filter):
    """Drops Ray's "SIGTERM handler is not set" warning: ray.init runs in a thread on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "SIGTERM handler is not set" not in record.getMessage()


def init_within(ray: Any, address: str | None, timeout: float, init_options: dict) -> Any:
    """``ray.init`` in a daemon thread, waited for at most ``timeout`` seconds.

    A ``ray.init`` that blocks inside Ray's C++ code cannot be interrupted; the thread is left
    behind (a daemon: it does not keep the process alive).
    """
    box: dict[str, Any] = {}

    def init() -> None:
        try:
            box["context"] = ray.init(address=address, **init_options)
        except BaseException as err:  # noqa: BLE001 - handed to the caller's thread
            box["error"] = err

    quiet = _NotMainThread()
    worker_log = logging.getLogger("ray._private.worker")
    worker_log.addFilter(quiet)
    thread = threading.Thread(target=init, name="sedc-ray-init", daemon=True)
    try:
        thread.start()
        thread.join(max(0.5, timeout))
    finally:
        worker_log.removeFilter(quiet)
    shown = address or "auto"
    if thread.is_alive():
        raise RayConnectError(shown, "timeout", f"ray.init did not return within {max(0.5, timeout):.0f} s")
    if "error" in box:
        raise classify(shown, box["error"]) from box["error"]
    return box["context"]


def classify(address: str, err: BaseException) -> RayConnectError:
    """A ``ray.init`` failure as a RayConnectError with its cause."""
    text = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
    if type(err).__name__ == "AuthenticationError" or "InvalidAuthToken" in text:
        return RayConnectError(address, "auth", text)
    if "Could not find any running Ray instance" in text:
        return RayConnectError(address, "no cluster found", "no Ray cluster runs on this machine and "
                                                            "RAY_ADDRESS is not set")
    return RayConnectError(address, "error", f"{type(err).__name__}: {text}")
