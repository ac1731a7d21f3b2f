"""`stemedb mcp` with the official Python MCP SDK (`mcp` on PyPI) as the client.

A real `stemedb serve` runs on a temporary data directory; the admin key makes two API keys,
each with its own custodial agent (alice and bob). Over stdio (one `stemedb mcp` process per
key) and over streamable HTTP (one server, a session per key, bound to its bearer token) the
same story is told: list the seven tools, two agents claim different values for the same
subject and predicate, votes, a resolution whose reasons name the winner, a subscription to
the winner resource that is notified when a vote flips the winner, a resolution as of an
earlier offset, the audit trail, and errors that come back as tool errors with the node's
problem text.

The binary is `$STEMEDB_BIN` (default `target/debug/stemedb`). Every wait polls a condition
under a deadline; nothing sleeps to synchronize.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

import anyio
import httpx2
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("STEMEDB_BIN", REPO / "target" / "debug" / "stemedb"))
# The bridge speaks the handshake-era protocol (up to 2025-11-25), whose resources/subscribe the
# SDK marks as removed in 2026-07-28; that is the subscription mechanism under test here.
LEGACY_SUBSCRIBE = "ignore:resources/subscribe is removed"
TOOLS = {"claim", "supersede", "vote", "resolve", "history", "as_of", "audit"}
START_DEADLINE_S = 60.0
NOTIFY_DEADLINE_S = 20.0
CALL_DEADLINE_S = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what: str, condition, deadline_s: float = START_DEADLINE_S, proc=None):
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: the process exited with {proc.returncode}")
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {deadline_s} s")


def http_json(method: str, url: str, token: str, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=CALL_DEADLINE_S) as answer:
        return json.loads(answer.read())


def ready(api: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api}/ready", timeout=2) as answer:
            return answer.status == 200
    except (urllib.error.URLError, OSError):
        return False


class Node:
    def __init__(self, api: str, admin: str):
        self.api = api
        self.admin = admin

    def new_key(self, label: str) -> tuple[str, str]:
        """A read+write key with a custodial agent of its own: (token, agent id)."""
        agent = http_json("POST", f"{self.api}/agents", self.admin)["agent"]
        created = http_json(
            "POST",
            f"{self.api}/keys",
            self.admin,
            {"label": label, "roles": ["read", "write"], "agents": [agent]},
        )
        return created["token"], agent


@pytest.fixture(scope="module")
def node():
    assert BIN.exists(), f"build the binary first (cargo build -p stemedb-cli): {BIN}"
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        api = f"http://127.0.0.1:{free_port()}/v1"
        log = open(Path(tmp) / "serve.log", "w")
        bind = api.removeprefix("http://").removesuffix("/v1")
        proc = subprocess.Popen(
            [str(BIN), "serve", "--data-dir", str(data), "--bind", bind],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            token_file = data / "api" / "admin.token"
            wait_until("admin token", lambda: token_file.exists() and token_file.read_text().strip(), proc=proc)
            wait_until("node ready", lambda: ready(api), proc=proc)
            yield Node(api, token_file.read_text().strip())
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            log.close()


@pytest.fixture(scope="module")
def keys(node):
    return {"alice": node.new_key("alice"), "bob": node.new_key("bob")}


@pytest.fixture
def anyio_backend():
    return "asyncio"


class Notifications:
    """The winner-resource updates a session receives."""

    def __init__(self):
        self.uris: list[str] = []
        self.arrived = anyio.Event()

    async def __call__(self, message) -> None:
        if getattr(message, "method", None) == "notifications/resources/updated":
            self.uris.append(str(message.params.uri))
            self.arrived.set()


@asynccontextmanager
async def stdio_session(node: Node, token: str, notes: Notifications) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(
        command=str(BIN),
        args=["mcp", "--api", node.api],
        env={"STEMEDB_TOKEN": token},
    )
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write, message_handler=notes) as session:
            await session.initialize()
            yield session


@pytest.fixture(scope="module")
def mcp_http(node):
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN), "mcp", "--api", node.api, "--http", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def accepts() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    try:
        wait_until("stemedb mcp --http listening", accepts, proc=proc)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@asynccontextmanager
async def http_session(url: str, token: str | None, notes: Notifications) -> AsyncIterator[ClientSession]:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    timeout = httpx2.Timeout(CALL_DEADLINE_S, read=300.0)
    async with httpx2.AsyncClient(headers=headers, timeout=timeout) as client:
        async with streamable_http_client(url, http_client=client) as (read, write):
            async with ClientSession(read, write, message_handler=notes) as session:
                await session.initialize()
                yield session


def answer_json(result) -> dict:
    """The node's JSON answer: the last text block of a successful tool result."""
    assert not result.is_error, result.content
    return json.loads(result.content[-1].text)


async def call(session: ClientSession, tool: str, **arguments):
    with anyio.fail_after(CALL_DEADLINE_S):
        return await session.call_tool(tool, arguments)


async def story(alice: ClientSession, bob: ClientSession, alice_notes: Notifications, keys) -> None:
    listed = await alice.list_tools()
    assert {tool.name for tool in listed.tools} == TOOLS
    assert all(tool.input_schema.get("properties") for tool in listed.tools)

    subject, predicate = f"city:{uuid.uuid4().hex[:8]}", "population"
    a = answer_json(await call(alice, "claim", subject=subject, predicate=predicate,
                               object={"integer": 2102650}, confidence=0.9))
    b = answer_json(await call(bob, "claim", subject=subject, predicate=predicate,
                               object={"integer": 2133111}, confidence=0.8))
    assert a["hash"] != b["hash"]
    history = answer_json(await call(alice, "history", subject=subject, predicate=predicate))
    signers = {json.dumps(s["assertion"].get("signatures", s["assertion"])) for s in history["assertions"]}
    assert len(history["assertions"]) == 2 and len(signers) == 2
    assert keys["alice"][1] in json.dumps(history) and keys["bob"][1] in json.dumps(history)

    vote_a = answer_json(await call(alice, "vote", assertion=a["hash"], weight=2.0))
    resolved = await call(bob, "resolve", subject=subject, predicate=predicate)
    resolution = answer_json(resolved)
    assert resolution["winner"] == a["hash"]
    assert resolution["ranked"][0]["hash"] == a["hash"] and resolution["ranked"][0]["reason"]
    summary = resolved.content[0].text
    assert summary.startswith(f"winner {a['hash']}")
    assert f"1. {a['hash']} score" in summary

    uri = f"stemedb://winner/{subject.replace(':', '%3A')}/{predicate}"
    read = await alice.read_resource(uri)
    assert a["hash"] in read.contents[0].text
    with anyio.fail_after(CALL_DEADLINE_S):
        await alice.subscribe_resource(uri)
    answer_json(await call(bob, "vote", assertion=b["hash"], weight=10.0))
    with anyio.fail_after(NOTIFY_DEADLINE_S):
        await alice_notes.arrived.wait()
    assert alice_notes.uris[0] == uri
    now = answer_json(await call(alice, "resolve", subject=subject, predicate=predicate))
    assert now["winner"] == b["hash"]

    then = answer_json(await call(alice, "as_of", subject=subject, predicate=predicate,
                                  offset=vote_a["offset"]))
    assert then["winner"] == a["hash"]
    audit = answer_json(await call(alice, "audit", subject=subject, predicate=predicate))
    assert audit["records"] and audit["records"][0]["subject"] == subject
    one = answer_json(await call(alice, "audit", id=now["audit_id"]))
    assert one["winner"] == b["hash"]

    unknown = await call(alice, "vote", assertion="00" * 32, weight=1.0)
    assert unknown.is_error
    text = unknown.content[0].text
    assert "HTTP 4" in text and "urn:stemedb:problem:" in text, text
    malformed = await call(alice, "claim", subject=subject, predicate=predicate,
                           object={"integer": 1}, confidence=7.0)
    assert malformed.is_error and "HTTP 422" in malformed.content[0].text, malformed.content


@pytest.mark.anyio
@pytest.mark.filterwarnings(LEGACY_SUBSCRIBE)
async def test_stdio_sessions_disagree_vote_resolve_and_notify(node, keys):
    alice_notes, bob_notes = Notifications(), Notifications()
    async with stdio_session(node, keys["alice"][0], alice_notes) as alice:
        async with stdio_session(node, keys["bob"][0], bob_notes) as bob:
            await story(alice, bob, alice_notes, keys)


@pytest.mark.anyio
@pytest.mark.filterwarnings(LEGACY_SUBSCRIBE)
async def test_http_sessions_disagree_vote_resolve_and_notify(node, keys, mcp_http):
    alice_notes, bob_notes = Notifications(), Notifications()
    async with http_session(mcp_http, keys["alice"][0], alice_notes) as alice:
        async with http_session(mcp_http, keys["bob"][0], bob_notes) as bob:
            await story(alice, bob, alice_notes, keys)


@pytest.mark.anyio
async def test_http_session_without_key_gets_tool_errors(mcp_http):
    async with http_session(mcp_http, None, Notifications()) as session:
        result = await call(session, "resolve", subject="city:x", predicate="population")
        assert result.is_error
        assert "no StemeDB API key" in result.content[0].text


@pytest.mark.anyio
async def test_unreachable_node_gives_tool_errors_not_a_crash():
    closed = Node(f"http://127.0.0.1:{free_port()}/v1", admin="")
    async with stdio_session(closed, "sdb_0_0", Notifications()) as session:
        for _ in range(2):
            result = await call(session, "resolve", subject="city:x", predicate="population")
            assert result.is_error
            assert "cannot reach the node" in result.content[0].text, result.content


@pytest.mark.anyio
@pytest.mark.filterwarnings(LEGACY_SUBSCRIBE)
@pytest.mark.filterwarnings("ignore:resources/unsubscribe is removed")
async def test_subscriptions_are_bounded_per_session_and_unsubscribe_frees_one(node):
    from mcp.shared.exceptions import MCPError

    token, _ = node.new_key("subscriber")
    uris = [f"stemedb://winner/bounded%3A{i}/p" for i in range(17)]
    async with stdio_session(node, token, Notifications()) as session:
        for uri in uris[:16]:
            with anyio.fail_after(CALL_DEADLINE_S):
                await session.subscribe_resource(uri)
        with pytest.raises(MCPError) as refused, anyio.fail_after(CALL_DEADLINE_S):
            await session.subscribe_resource(uris[16])
        assert "16" in str(refused.value)
        # Subscribing again to a followed resource changes nothing (and is not refused).
        with anyio.fail_after(CALL_DEADLINE_S):
            await session.subscribe_resource(uris[0])
            await session.unsubscribe_resource(uris[0])
            await session.subscribe_resource(uris[16])
        with pytest.raises(MCPError), anyio.fail_after(CALL_DEADLINE_S):
            await session.subscribe_resource(uris[0])
