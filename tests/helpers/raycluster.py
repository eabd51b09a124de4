"""A real two-node Ray cluster on this machine, for tests: ``ray start`` twice, 1 CPU per node.

Each node is one ``ray start --block`` process started in its own session, so that every process
of the node (raylet, GCS, agents, workers) shares one process group whose id is that process's
PID. Stopping sends SIGTERM to that PID (``--block`` then stops its node), waits, and kills what
is left of the group with SIGKILL: processes are only ever addressed by PID or PGID, never by name
(``ray stop`` kills every Ray process of the machine, other users' included).

Network: 127.0.0.1 is rewritten by Ray to the machine's address, so the nodes use 127.0.0.2
(loopback too on Linux). Every port is chosen here (free ports, and a worker port range per node)
so that two clusters, or another user's Ray, can run beside this one. Each node has its own temp
dir; the cluster uses token auth with a token of its own (``RAY_AUTH_TOKEN``), never the
user's ``~/.ray/auth_token``.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

IP = "127.0.0.2"
START_TIMEOUT = 90.0
STOP_TIMEOUT = 20.0
RAY_ENV = ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


def free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports free right now on 127.0.0.1."""
    sockets = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def group_members(pgid: int) -> list[int]:
    """PIDs of the live (not zombie) processes of process group ``pgid``."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry))
    return members


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any Ray address or auth setting of the user's, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in RAY_ENV}
    env.update(extra)
    return env


class Node:
    """One ``ray start --block`` process and the process group of its node."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        ray = str(Path(sys.executable).with_name("ray"))
        with open(log, "w") as out:
            self.proc = subprocess.Popen([ray, "start", "--block", *args], env=env, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def pgid(self) -> int:
        return self.proc.pid

    def raylet_pid(self) -> int | None:
        """PID of this node's raylet (a child of the ``ray start`` process), or None."""
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        except OSError:
            return None
        for pid in map(int, children):
            try:
                if Path(f"/proc/{pid}/exe").resolve().name == "raylet":
                    return pid
            except OSError:
                continue
        return None

    def stop(self) -> list[int]:
        """Stop the node; returns the PIDs that had to be killed with SIGKILL."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while group_members(self.pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = group_members(self.pgid)
        if left:
            os.killpg(self.pgid, signal.SIGKILL)
        try:
            self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
        return left


class TwoNodeCluster:
    """A head node and a worker node (1 CPU each by default) on 127.0.0.2, with token auth.

    Parameters
    ----------
    root : Path
        A folder for the nodes' logs (their temp dirs are short folders in /tmp, removed by
        :meth:`stop`).
    pythonpath : list of str
        Folders the cluster's workers import from (sedc's ``src``, the tests).
    head_env, worker_env : dict, optional
        Extra environment of one node's processes (its actors see it).
    cpus : int
        CPUs of each node.
    """

    def __init__(self, root: Path, pythonpath: list[str], head_env: dict[str, str] | None = None,
                 worker_env: dict[str, str] | None = None, cpus: int = 1) -> None:
        self.root, self.cpus = root, cpus
        root.mkdir(parents=True, exist_ok=True)
        # Ray's socket paths must fit in 107 bytes: the nodes' temp dirs live in a short folder.
        self.temp = Path(tempfile.mkdtemp(prefix="sedc-ray-", dir="/tmp"))
        self.token = secrets.token_hex(32)
        ports = free_ports(17)
        self.gcs_port, self.client_port = ports[0], ports[1]
        base = dict(clean_env(), RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=self.token, RAY_USAGE_STATS_ENABLED="0",
                    OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(pythonpath))
        workers = random.randrange(20000, 32000 - 400)
        self.nodes: list[Node] = []
        try:
            head = ["--head", f"--port={self.gcs_port}", f"--ray-client-server-port={self.client_port}",
                    "--include-dashboard=false", f"--dashboard-port={ports[2]}"]
            self._start(head, ports[3:10], workers, dict(base, **(head_env or {})), "head")
            self.wait_for_nodes(1)
            join = [f"--address={self.address}"]
            self._start(join, ports[10:17], workers + 200, dict(base, **(worker_env or {})), "worker")
            self.wait_for_nodes(2)
        except BaseException:
            self.stop()
            raise

    @property
    def address(self) -> str:
        """The GCS address (``HOST:PORT``)."""
        return f"{IP}:{self.gcs_port}"

    @property
    def client_address(self) -> str:
        """The Ray Client address (``ray://HOST:PORT``)."""
        return f"ray://127.0.0.1:{self.client_port}"

    @property
    def head(self) -> Node:
        return self.nodes[0]

    @property
    def worker(self) -> Node:
        return self.nodes[1]

    def _start(self, args: list[str], ports: list[int], worker_ports: int, env: dict[str, str], name: str) -> None:
        args = args + [
            f"--node-ip-address={IP}", f"--num-cpus={self.cpus}", "--num-gpus=0", "--disable-usage-stats",
            f"--temp-dir={self.temp / name}", f"--node-manager-port={ports[0]}",
            f"--object-manager-port={ports[1]}", f"--dashboard-agent-listen-port={ports[2]}",
            f"--dashboard-agent-grpc-port={ports[3]}", f"--runtime-env-agent-port={ports[4]}",
            f"--metrics-export-port={ports[5]}", f"--min-worker-port={worker_ports}",
            f"--max-worker-port={worker_ports + 199}", "--object-store-memory=100000000"]
        self.nodes.append(Node(args, env, self.root / f"{name}.log"))

    def wait_for_nodes(self, n: int) -> None:
        """Wait until the GCS lists ``n`` live nodes."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            for node in self.nodes:
                if node.proc.poll() is not None:
                    raise RuntimeError(f"ray start exited with {node.proc.returncode}:\n{node.log.read_text()[-3000:]}")
            if self.alive_nodes() >= n:
                return
            time.sleep(0.3)
        raise TimeoutError(f"the cluster did not reach {n} nodes in {START_TIMEOUT:g} s")

    def alive_nodes(self) -> int:
        """Live nodes as the GCS sees them (0 while it does not answer)."""
        import grpc
        from ray.core.generated import gcs_pb2, gcs_service_pb2, gcs_service_pb2_grpc

        with grpc.insecure_channel(self.address) as channel:
            stub = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel)
            try:
                reply = stub.GetAllNodeInfo(gcs_service_pb2.GetAllNodeInfoRequest(), timeout=5,
                                            metadata=[("authorization", f"Bearer {self.token}")])
            except grpc.RpcError:
                return 0
        alive = gcs_pb2.GcsNodeInfo.GcsNodeState.ALIVE
        return sum(info.state == alive for info in reply.node_info_list)

    def pgids(self) -> list[int]:
        return [node.pgid for node in self.nodes]

    def stop(self) -> list[int]:
        """Stop the worker node, then the head; returns PIDs that needed SIGKILL."""
        killed = []
        for node in reversed(self.nodes):
            killed += node.stop()
        shutil.rmtree(self.temp, ignore_errors=True)
        return killed
