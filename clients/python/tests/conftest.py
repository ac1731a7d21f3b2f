"""A real ``stemedb serve`` for the tests: its own data directory and loopback port, the binary
from ``STEMEDB_BIN`` (default: the workspace's ``target/debug/stemedb``)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from stemedb import AgentKey

REPO = Path(__file__).resolve().parents[3]
#: How long a node may take to start (a debug build, a shared machine).
START_DEADLINE_S = 60.0


def _binary() -> str:
    path = os.environ.get("STEMEDB_BIN") or str(REPO / "target" / "debug" / "stemedb")
    if not os.access(path, os.X_OK):
        pytest.fail(f"no stemedb binary at {path}: build it (cargo build -p stemedb-cli) or set STEMEDB_BIN")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    """One node process; :meth:`restart` keeps its data directory and port."""

    def __init__(self, data_dir: Path, admin_key: AgentKey) -> None:
        self.data_dir = data_dir
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_key = admin_key
        self.config = data_dir.parent / "node.toml"
        self.config.write_text(f'[votes]\nadmins = ["{admin_key.agent}"]\n')
        self.proc: subprocess.Popen | None = None
        self.log = data_dir.parent / "node.log"
        self.token = ""

    def start(self) -> None:
        log = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [
                _binary(),
                "serve",
                "--config",
                str(self.config),
                "--data-dir",
                str(self.data_dir),
                "--bind",
                f"127.0.0.1:{self.port}",
            ],
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + START_DEADLINE_S
        token_file = self.data_dir / "api" / "admin.token"
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"stemedb serve exited with {self.proc.returncode}:\n{self.log.read_text()[-4000:]}"
                )
            try:
                if token_file.exists() and httpx.get(f"{self.url}/v1/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"stemedb serve not ready in {START_DEADLINE_S} s:\n{self.log.read_text()[-4000:]}"
                )
            time.sleep(0.05)
        self.token = token_file.read_text().strip()

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture(scope="session")
def node(tmp_path_factory):
    root = tmp_path_factory.mktemp("stemedb")
    n = Node(root / "data", AgentKey.generate())
    n.start()
    yield n
    n.stop()


@pytest.fixture
def fresh_node(tmp_path):
    n = Node(tmp_path / "data", AgentKey.generate())
    n.start()
    yield n
    n.stop()
