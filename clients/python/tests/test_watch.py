"""The watch iterator: it reports the winner, each change, and survives a node restart."""

from __future__ import annotations

import queue
import threading

import anyio

import stemedb
from stemedb import AgentKey, Client

#: How long to wait for one event (a debug build on a shared machine).
EVENT_DEADLINE_S = 30.0


def _feed(db: Client, subject: str, predicate: str) -> "queue.Queue":
    events: "queue.Queue" = queue.Queue()

    def run() -> None:
        try:
            for change in db.watch(subject, predicate, lens="consensus"):
                events.put(change)
        except Exception as e:  # handed to the test, which fails on it
            events.put(e)

    threading.Thread(target=run, daemon=True).start()
    return events


def _next(events: "queue.Queue") -> stemedb.WinnerChange:
    event = events.get(timeout=EVENT_DEADLINE_S)
    if isinstance(event, Exception):
        raise event
    return event


def test_watch_reports_changes_and_survives_a_restart(fresh_node):
    node = fresh_node
    alice, bob = AgentKey.generate(), AgentKey.generate()
    with Client(node.url, node.token) as admin:
        token = admin.create_key("watchers", ["read", "write"], [alice.agent, bob.agent]).token
    db = Client(node.url, token)
    a = db.claim(alice, "light/1", "colour", "green", 0.9)
    events = _feed(db, "light/1", "colour")
    first = _next(events)
    assert (first.event, first.new) == ("current", a.hash)

    b = db.claim(bob, "light/1", "colour", "red", 0.9)
    db.vote(bob, b.hash, 5.0)
    change = _next(events)
    while change.new != b.hash:
        change = _next(events)
    assert change.event == "winner" and change.offset > first.offset

    # The node goes down and comes back on the same port; the winner moves back to alice's
    # claim after the restart, and the iterator, reconnected, reports it.
    node.restart()
    db.vote(alice, a.hash, 50.0)
    resumed = _next(events)
    while resumed.new != a.hash:
        resumed = _next(events)
    assert resumed.event in ("winner", "resumed") and resumed.old == b.hash
    assert resumed.offset > change.offset
    db.close()


def test_watch_reports_a_change_made_while_it_was_down(fresh_node):
    node = fresh_node
    alice, bob = AgentKey.generate(), AgentKey.generate()
    with Client(node.url, node.token) as admin:
        token = admin.create_key("w", ["read", "write"], [alice.agent, bob.agent]).token
    db = Client(node.url, token)
    a = db.claim(alice, "light/2", "colour", "green", 0.9)
    events = _feed(db, "light/2", "colour")
    assert _next(events).new == a.hash
    node.stop()
    # The winner changes right after the node is back: the feed sees it as a change, or, if it
    # reconnects later, as the winner it finds on reconnecting (a "resumed" change).
    node.start()
    b = db.claim(bob, "light/2", "colour", "red", 0.9)
    db.vote(bob, b.hash, 9.0)
    change = _next(events)
    while change.new != b.hash:
        change = _next(events)
    assert change.old == a.hash and change.event in ("winner", "resumed")
    db.close()


def test_async_watch(fresh_node):
    node = fresh_node
    alice = AgentKey.generate()

    async def main():
        async with stemedb.AsyncClient(node.url, node.token) as admin:
            token = (await admin.create_key("aw", ["read", "write"], [alice.agent])).token
        async with stemedb.AsyncClient(node.url, token) as db:
            a = await db.claim(alice, "async/watch", "v", 1, 0.9)
            with anyio.fail_after(EVENT_DEADLINE_S):
                feed = db.watch("async/watch", "v", lens="consensus")
                first = await feed.__anext__()
                assert (first.event, first.new) == ("current", a.hash)
                b = await db.claim(alice, "async/watch", "v", 2, 0.9)
                await db.vote(alice, b.hash, 3.0)
                change = await feed.__anext__()
                while change.new != b.hash:
                    change = await feed.__anext__()
                assert change.old == a.hash
                await feed.aclose()

    anyio.run(main)


def _sse(event, data):
    from httpx_sse import ServerSentEvent

    return ServerSentEvent(event=event, data=data)


def test_reconnection_yields_the_change_missed_and_nothing_twice():
    from stemedb.watch import WatchState

    state = WatchState("http://x/v1/watch", {})
    first = state.on_event(_sse("current", '{"old":null,"new":"aa","offset":5}'))
    assert (first.event, first.new, first.offset) == ("current", "aa", 5)
    change = state.on_event(_sse("winner", '{"old":"aa","new":"bb","offset":9}'))
    assert (change.event, change.old, change.new) == ("winner", "aa", "bb")
    # Reconnected, and nothing changed: nothing to report.
    assert state.on_event(_sse("current", '{"old":null,"new":"bb","offset":12}')) is None
    # A replayed change at or before the last offset seen is not reported twice.
    assert state.on_event(_sse("winner", '{"old":"aa","new":"bb","offset":9}')) is None
    # Reconnected after the winner moved while the feed was down.
    resumed = state.on_event(_sse("current", '{"old":null,"new":"cc","offset":20}'))
    assert (resumed.event, resumed.old, resumed.new, resumed.offset) == ("resumed", "bb", "cc", 20)
    lagged = state.on_event(_sse("lagged", '{"missed":3}'))
    assert (lagged.event, lagged.missed) == ("lagged", 3)
    for event, data in [
        ("winner", "{not json"),
        ("winner", "null"),
        ("lagged", "[1]"),
        ("winner", '{"offset":"x"}'),
    ]:
        try:
            state.on_event(_sse(event, data))
        except stemedb.TransportError:
            pass
        else:
            raise AssertionError(f"a malformed {event} event ({data}) must raise")


def test_reconnection_gives_up_after_reconnect_max():
    from stemedb.watch import WatchState

    state = WatchState("http://x/v1/watch", {}, reconnect_max=2)
    error = stemedb.TransportError("down")
    assert state.backoff_s(error) <= 0.05
    assert state.backoff_s(error) <= 0.1
    try:
        state.backoff_s(error)
    except stemedb.TransportError:
        pass
    else:
        raise AssertionError("the third failure in a row must raise")
