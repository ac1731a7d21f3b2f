"""The client's encoding and signing against the vectors the Rust engine generates
(``tests/vectors/clients_v1.json``): byte for byte, for every vector."""

import json
from pathlib import Path

import pytest

from stemedb import AgentKey, Assertion, SignatureError, TrustChange, Vote, signing_message
from stemedb.encoding import content_hash, to_f32

VECTORS = Path(__file__).resolve().parents[3] / "tests" / "vectors" / "clients_v1.json"
DOC = json.loads(VECTORS.read_text())


def _ids(v):
    return f"{v['kind']}:{v['name']}"


def test_agents_derive_from_their_seeds():
    for agent in DOC["agents"]:
        assert AgentKey(agent["secret_key"]).agent == agent["agent"]


def _record(v):
    cls = {"assertion": Assertion, "vote": Vote, "trust": TrustChange}[v["kind"]]
    return cls.from_json(v["record"])


@pytest.mark.parametrize("v", DOC["vectors"], ids=_ids)
def test_canonical_body_hash_and_message(v):
    record = _record(v)
    body = record.canonical_body()
    assert body.hex() == v["canonical_body_hex"]
    assert content_hash(body).hex() == v["content_hash"] == record.content_hash()
    assert signing_message(v["kind"], content_hash(body)).hex() == v["signing_message_hex"]


@pytest.mark.parametrize("v", DOC["vectors"], ids=_ids)
def test_signatures_reproduce_and_verify(v):
    record = _record(v)
    keys = [AgentKey(seed) for seed in v["secret_keys"]]
    digest = bytes.fromhex(v["content_hash"])
    assert [k.sign(v["kind"], digest) for k in keys] == v["signatures"]
    record.verify()
    if v["kind"] == "assertion":
        fresh = Assertion.from_json({**v["record"], "signatures": []})
        for k in keys:
            fresh.sign(k)
        assert fresh.to_json() == Assertion.from_json(v["record"]).to_json()
    elif v["kind"] == "vote":
        r = v["record"]
        again = Vote.sign(keys[0], r["assertion"], r["weight"], r["timestamp_ms"])
        assert again.signature == r["signature"]
    else:
        r = v["record"]
        again = TrustChange.sign(keys[0], r["agent"], r["factor"], r["timestamp_ms"])
        assert again.signature == r["signature"]


@pytest.mark.parametrize("v", DOC["vectors"], ids=_ids)
def test_a_changed_body_no_longer_verifies(v):
    record = _record(v)
    if v["kind"] == "assertion":
        record.subject = record.subject + "!"
    elif v["kind"] == "vote":
        record.timestamp_ms += 1
    else:
        record.factor = 0.25 if record.factor != 0.25 else 0.5
    with pytest.raises(SignatureError):
        record.verify()


F32_FIELDS = ("confidence", "weight", "factor")


@pytest.mark.parametrize("v", DOC["vectors"], ids=_ids)
def test_json_form_carries_the_same_values(v):
    # What the client sends for a record is, field for field, the record the Rust code made:
    # the same text, integers and doubles, and numbers that round to the same single.
    sent = json.loads(json.dumps(_record(v).to_json()))
    assert sent.keys() == v["record"].keys()
    for name, value in v["record"].items():
        if name in F32_FIELDS:
            assert to_f32(sent[name], name) == to_f32(value, name)
        else:
            assert sent[name] == value, name
