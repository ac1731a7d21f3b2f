"""Signed records: :class:`Assertion`, :class:`Vote` and :class:`TrustChange`.

Each is built, signed with an :class:`~stemedb.keys.AgentKey` and turned into the JSON form the
node takes (:meth:`to_json`); records read back from a node (:meth:`from_json`) can be checked
offline with :meth:`verify`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

from . import encoding
from .errors import EncodingError, SignatureError
from .keys import AgentKey, verify


def now_ms() -> int:
    """The current time in milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000


def obj(value: Any) -> Dict[str, Any]:
    """The object form of a Python value: str → text, bool → bool, int → integer, float → float.

    A reference to another subject is :func:`ref`; a mapping already in object form is kept.
    """
    if isinstance(value, Mapping):
        encoding.encode_object(value)
        return dict(value)
    if isinstance(value, bool):
        return {"bool": value}
    if isinstance(value, int):
        return {"integer": value}
    if isinstance(value, float):
        return {"float": value}
    if isinstance(value, str):
        return {"text": value}
    raise EncodingError(f"no object kind for a {type(value).__name__}", "object")


def ref(subject: str) -> Dict[str, Any]:
    """An object that refers to another subject."""
    return {"ref": subject}


@dataclass
class Assertion:
    """A claim "subject · predicate · object, with confidence", signed by one or more agents."""

    subject: str
    predicate: str
    object: Dict[str, Any]
    confidence: float
    timestamp_ms: int = field(default_factory=now_ms)
    lifecycle: str = "active"
    parent: Optional[str] = None
    #: ``[{"agent": hex, "signature": hex}, ...]``
    signatures: List[Dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.object = obj(self.object)
        # Hold the confidence as the single a node will hold, so the JSON sent is that value.
        self.confidence = encoding.to_f32(self.confidence, "confidence")

    def canonical_body(self) -> bytes:
        """The canonical bytes of the unsigned body."""
        return encoding.assertion_body(
            self.subject,
            self.predicate,
            self.object,
            self.confidence,
            self.timestamp_ms,
            self.lifecycle,
            self.parent,
        )

    def content_hash(self) -> str:
        """The content address, as hex."""
        return encoding.content_hash(self.canonical_body()).hex()

    def sign(self, key: AgentKey) -> "Assertion":
        """Adds ``key``'s signature (co-signing keeps the others; re-signing replaces its own)."""
        signature = key.sign("assertion", encoding.content_hash(self.canonical_body()))
        self.signatures = [s for s in self.signatures if s["agent"] != key.agent]
        self.signatures.append({"agent": key.agent, "signature": signature})
        return self

    def verify(self) -> None:
        """Raises :class:`SignatureError` unless every signature verifies (and there is one)."""
        if not self.signatures:
            raise SignatureError("the assertion has no signature")
        digest = encoding.content_hash(self.canonical_body())
        for s in self.signatures:
            if not verify(s["agent"], "assertion", digest, s["signature"]):
                raise SignatureError(f"the signature of {s['agent']} does not verify")

    def to_json(self) -> Dict[str, Any]:
        """The JSON form the node takes."""
        return {
            "subject": self.subject,
            "predicate": self.predicate,
            "object": dict(self.object),
            "confidence": self.confidence,
            "timestamp_ms": self.timestamp_ms,
            "lifecycle": self.lifecycle,
            "parent": self.parent,
            "signatures": [dict(s) for s in self.signatures],
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> "Assertion":
        """Reads the JSON form (as the node answers it)."""
        return cls(
            subject=doc["subject"],
            predicate=doc["predicate"],
            object=dict(doc["object"]),
            confidence=doc["confidence"],
            timestamp_ms=doc["timestamp_ms"],
            lifecycle=doc.get("lifecycle", "active"),
            parent=doc.get("parent"),
            signatures=[dict(s) for s in doc.get("signatures", [])],
        )


@dataclass
class Vote:
    """An agent's signed, weighted endorsement of an assertion; build it with :meth:`sign`."""

    assertion: str
    voter: str
    weight: float
    timestamp_ms: int
    signature: str = ""

    @classmethod
    def sign(cls, key: AgentKey, assertion: str, weight: float, timestamp_ms: Optional[int] = None) -> "Vote":
        """Builds and signs a vote by ``key``'s agent for the assertion with hash ``assertion``."""
        vote = cls(
            assertion,
            key.agent,
            encoding.to_f32(weight, "weight"),
            now_ms() if timestamp_ms is None else timestamp_ms,
        )
        vote.signature = key.sign("vote", encoding.content_hash(vote.canonical_body()))
        return vote

    def canonical_body(self) -> bytes:
        """The canonical bytes of the unsigned body."""
        return encoding.vote_body(self.assertion, self.voter, self.weight, self.timestamp_ms)

    def content_hash(self) -> str:
        """The content address, as hex."""
        return encoding.content_hash(self.canonical_body()).hex()

    def verify(self) -> None:
        """Raises :class:`SignatureError` unless the voter's signature verifies."""
        if not verify(self.voter, "vote", encoding.content_hash(self.canonical_body()), self.signature):
            raise SignatureError(f"the signature of voter {self.voter} does not verify")

    def to_json(self) -> Dict[str, Any]:
        """The JSON form the node takes."""
        return {
            "assertion": self.assertion,
            "voter": self.voter,
            "weight": self.weight,
            "timestamp_ms": self.timestamp_ms,
            "signature": self.signature,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> "Vote":
        """Reads the JSON form."""
        return cls(doc["assertion"], doc["voter"], doc["weight"], doc["timestamp_ms"], doc["signature"])


@dataclass
class TrustChange:
    """An administrator's signed setting of an agent's trust factor (0 bans, at most 1000)."""

    agent: str
    factor: float
    timestamp_ms: int
    admin: str
    signature: str = ""

    @classmethod
    def sign(
        cls, admin: AgentKey, agent: str, factor: float, timestamp_ms: Optional[int] = None
    ) -> "TrustChange":
        """Builds and signs a change of ``agent``'s trust factor by the administrator ``admin``."""
        at = now_ms() if timestamp_ms is None else timestamp_ms
        change = cls(agent, encoding.to_f32(factor, "factor"), at, admin.agent)
        change.signature = admin.sign("trust", encoding.content_hash(change.canonical_body()))
        return change

    def canonical_body(self) -> bytes:
        """The canonical bytes of the unsigned body."""
        return encoding.trust_body(self.agent, self.factor, self.timestamp_ms, self.admin)

    def content_hash(self) -> str:
        """The content address, as hex."""
        return encoding.content_hash(self.canonical_body()).hex()

    def verify(self) -> None:
        """Raises :class:`SignatureError` unless the administrator's signature verifies."""
        if not verify(self.admin, "trust", encoding.content_hash(self.canonical_body()), self.signature):
            raise SignatureError(f"the signature of administrator {self.admin} does not verify")

    def to_json(self) -> Dict[str, Any]:
        """The JSON form the node takes."""
        return {
            "agent": self.agent,
            "factor": self.factor,
            "timestamp_ms": self.timestamp_ms,
            "admin": self.admin,
            "signature": self.signature,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> "TrustChange":
        """Reads the JSON form."""
        return cls(doc["agent"], doc["factor"], doc["timestamp_ms"], doc["admin"], doc["signature"])
