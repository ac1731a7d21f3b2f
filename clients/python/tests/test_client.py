"""The client against a real node: every endpoint, records signed here, and errors mapped from
problem+json to exceptions."""

from __future__ import annotations

import pytest

import stemedb
from stemedb import AgentKey, Assertion, Client, Vote, obj


@pytest.fixture(scope="module")
def env(node):
    admin = Client(node.url, node.token)
    alice, bob = AgentKey.generate(), AgentKey.generate()
    created = admin.create_key("agents", ["read", "write"], [alice.agent, bob.agent])
    agents = Client(node.url, created.token)
    yield admin, agents, alice, bob, created
    admin.close()
    agents.close()


def test_agents_sign_for_themselves_and_disagree(env):
    admin, db, alice, bob, _ = env
    a = db.claim(alice, "city/paris", "population", 2102650, 0.9)
    b = db.claim(bob, "city/paris", "population", 2133111, 0.8)
    assert a.indexed and not a.duplicate and b.offset > a.offset
    db.vote(alice, a.hash, 1.0)
    db.vote(bob, b.hash, 3.0)
    resolution = db.resolve("city/paris", "population", lens="consensus")
    assert resolution.winner == b.hash
    assert [s.hash for s in resolution.ranked][0] == b.hash and len(resolution.ranked) == 2
    assert all(s.reason for s in resolution.ranked)
    assert resolution.ranked[0].votes.count == 1 and resolution.ranked[0].votes.weight == pytest.approx(3.0)
    # The stored record is the one signed here, and verifies offline.
    stored = db.get_assertion(a.hash)
    assert stored.hash == a.hash and stored.offset == a.offset
    stored.assertion.verify()
    assert stored.assertion.signatures[0]["agent"] == alice.agent
    assert stored.assertion.content_hash() == a.hash
    # A resend is a duplicate, answered with the stored offset.
    again = db.submit_assertion(stored.assertion)
    assert again.duplicate and again.offset == a.offset
    votes = db.votes(b.hash)
    assert votes.totals.count == 1 and votes.votes[0].vote.voter == bob.agent
    votes.votes[0].vote.verify()


def test_listing_pages_and_history(env):
    _, db, alice, _, _ = env
    first = db.claim(alice, "doc/1", "title", "Draft", 0.5)
    second = db.supersede(alice, first.hash, "doc/1", "title", "Final", 0.7)
    page = db.list_assertions("doc/1", "title", history=True, limit=1)
    assert len(page.assertions) == 1 and page.next
    rest = db.list_assertions("doc/1", "title", history=True, limit=10, after=page.next)
    seen = {a.hash for a in page.assertions + rest.assertions}
    assert seen == {first.hash, second.hash}
    current = db.list_assertions("doc/1", "title")
    assert [a.hash for a in current.assertions] == [second.hash]
    assert current.assertions[0].assertion.parent == first.hash


def test_resolution_audit_and_as_of(env):
    _, db, alice, bob, _ = env
    a = db.claim(alice, "bridge/9", "open", True, 0.9)
    before = db.resolve("bridge/9", "open", lens="recency", audit=True)
    assert before.winner == a.hash and before.audit_id is not None
    b = db.claim(bob, "bridge/9", "open", False, 0.9)
    now = db.resolve("bridge/9", "open", lens="recency")
    assert now.winner == b.hash
    past = db.resolve("bridge/9", "open", lens="recency", as_of_offset=a.offset)
    assert past.winner == a.hash
    record = db.audit(before.audit_id)
    assert record.winner == a.hash and record.subject == "bridge/9" and record.lens == "recency"
    listed = db.audit_list("bridge/9", "open", limit=5)
    assert before.audit_id in [r.id for r in listed.records]


def test_batches_answer_item_by_item(env):
    _, db, alice, bob, _ = env
    good = Assertion("batch/1", "colour", obj("red"), 0.5).sign(alice)
    tampered = Assertion("batch/1", "colour", obj("blue"), 0.5).sign(bob)
    tampered.subject = "batch/2"
    receipt = db.submit_assertions([good, tampered])
    assert (receipt.accepted, receipt.refused) == (1, 1)
    assert receipt.items[0].receipt.hash == good.content_hash()
    assert receipt.items[1].receipt is None and receipt.items[1].error["status"] in (400, 422)
    votes = db.submit_votes(
        [Vote.sign(alice, good.content_hash(), 1.0), Vote.sign(bob, good.content_hash(), 2.0)]
    )
    assert votes.accepted == 2 and votes.refused == 0
    assert db.votes(good.content_hash()).totals.count == 2


def test_trust_changes_by_an_administrator(node, env):
    admin_client, _, alice, _, _ = env
    key = admin_client.create_key("trust-admin", ["read", "write", "admin"], [node.admin_key.agent])
    with Client(node.url, key.token) as db:
        receipt = db.set_trust(node.admin_key, alice.agent, 0.5)
        assert receipt.hash and not receipt.duplicate
        # A trust change signed by an agent who is not an administrator is refused.
        outsider = AgentKey.generate()
        other = admin_client.create_key("outsider", ["read", "write", "admin"], [outsider.agent])
        with Client(node.url, other.token) as odb, pytest.raises(stemedb.ProblemError) as refused:
            odb.set_trust(outsider, alice.agent, 2.0)
        assert refused.value.status in (403, 422)


def test_custodial_writes_and_keys(node, env):
    admin, _, _, _, _ = env
    agent = admin.create_agent()
    created = admin.create_key("custodial", ["read", "write"], [agent])
    assert created.key.agents == [agent] and created.token.startswith("sdb_")
    assert created.key.id in [k.id for k in admin.list_keys()]
    with Client(node.url, created.token) as db:
        a = db.custodial_claim("city/rome", "founded", -753, 0.6)
        db.custodial_vote(a.hash, 2.0)
        stored = db.get_assertion(a.hash)
        assert stored.assertion.signatures[0]["agent"] == agent and stored.assertion.object == {
            "integer": -753
        }
        stored.assertion.verify()
        revoked = admin.revoke_key(created.key.id)
        assert revoked.revoked
        with pytest.raises(stemedb.Unauthorized):
            db.resolve("city/rome", "founded")


def test_verifiable_log_endpoints(env):
    _, db, alice, _, _ = env
    receipt = db.claim(alice, "log/1", "entry", 1, 0.5)
    checkpoint = db.checkpoint()
    assert checkpoint == db.log_checkpoint()
    size = int(checkpoint.splitlines()[1])
    assert size > 0 and db.checkpoint_key()
    proof = db.inclusion_proof_of(receipt.hash)
    assert proof["offset"] == receipt.offset
    by_index = db.inclusion_proof(proof["index"], proof["size"])
    assert by_index["leaf_hash"] == proof["leaf_hash"]
    consistency = db.consistency_proof(1, proof["size"])
    assert consistency["new_root"] == proof["root"]
    width = size if size < 256 else size % 256 or 256
    tile = db.log_tile(f"0/000.p/{width}" if size < 256 else "0/000")
    assert len(tile) == 32 * min(size, 256)


def test_operations_endpoints(node, env):
    admin, _, _, _, _ = env
    assert admin.health()["status"]
    ready = admin.ready()
    assert ready.ready and ready.cursor <= ready.durable_end
    assert admin.openapi()["openapi"].startswith("3.1")
    assert "stemedb_" in admin.metrics()


def test_errors_map_to_exceptions(node, env):
    _, db, alice, bob, _ = env
    with Client(node.url) as anonymous, pytest.raises(stemedb.Unauthorized) as e:
        anonymous.resolve("a", "b")
    assert e.value.type.startswith("urn:stemedb:problem:") and e.value.detail
    with pytest.raises(stemedb.NotFound):
        db.get_assertion("00" * 32)
    tampered = Assertion("x", "y", obj(1), 0.5).sign(alice)
    tampered.confidence = 0.25
    with pytest.raises(stemedb.Unprocessable) as e:
        db.submit_assertion(tampered)
    assert "signature" in e.value.detail.lower()
    stranger = AgentKey.generate()
    with pytest.raises(stemedb.Forbidden):
        db.claim(stranger, "x", "y", 1, 0.5)
    with pytest.raises(stemedb.ProblemError) as e:
        db.vote(alice, "11" * 32, 1.0)
    assert e.value.status in (409, 422) and e.value.kind == "rejected"
    with pytest.raises(stemedb.BadRequest):
        db.get_assertion("not-a-hash")
    with pytest.raises(stemedb.EncodingError):
        Assertion("x", "y", obj(1), float("nan"))
    with pytest.raises(stemedb.TransportError):
        Client("http://127.0.0.1:9", "t", timeout_s=2).health()


def test_async_client(node, env):
    import anyio

    _, _, alice, bob, created = env

    async def main():
        async with stemedb.AsyncClient(node.url, created.token) as db:
            a = await db.claim(alice, "async/1", "state", "on", 0.9)
            b = await db.claim(bob, "async/1", "state", "off", 0.9)
            await db.vote(bob, b.hash, 5.0)
            resolution = await db.resolve("async/1", "state", lens="consensus")
            assert resolution.winner == b.hash
            stored = await db.get_assertion(a.hash)
            stored.assertion.verify()
            with pytest.raises(stemedb.NotFound):
                await db.get_assertion("00" * 32)

    anyio.run(main)
