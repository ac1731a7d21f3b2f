"""Typed answers of the node. Fields a newer node adds are kept in ``raw``, never refused."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, Mapping, Optional, Type, TypeVar

from .records import Assertion, Vote

T = TypeVar("T")


def _build(cls: Type[T], doc: Mapping[str, Any], **overrides: Any) -> T:
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    values = {k: v for k, v in doc.items() if k in names}
    values.update(overrides)
    if "raw" in names:
        values["raw"] = dict(doc)
    return cls(**values)


@dataclass
class WriteReceipt:
    """A write made durable: its content hash and journal offset."""

    hash: str
    offset: int
    indexed: bool
    duplicate: bool
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> "WriteReceipt":
        return _build(cls, doc)


@dataclass
class BatchItem:
    """One item of a batch: a receipt, or the problem that refused it (then nothing was journaled)."""

    receipt: Optional[WriteReceipt]
    error: Optional[Dict[str, Any]]


@dataclass
class BatchReceipt:
    """A batch's outcome, item by item, in the order sent."""

    accepted: int
    refused: int
    items: List[BatchItem]

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> "BatchReceipt":
        items = [
            BatchItem(
                WriteReceipt.from_json(i["receipt"]) if i.get("receipt") else None,
                i.get("error"),
            )
            for i in doc.get("items", [])
        ]
        return cls(doc["accepted"], doc["refused"], items)


@dataclass
class Totals:
    """Live votes for an assertion: how many, and their summed effective weight."""

    count: int
    weight: float


@dataclass
class Scored:
    """A candidate as a lens ranked it, with the reason in words."""

    hash: str
    timestamp_ms: int
    lifecycle: str
    votes: Totals
    score: float
    reason: str
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> "Scored":
        return _build(cls, doc, votes=Totals(**doc["votes"]))


@dataclass
class Resolution:
    """A resolution: the winner (if any), every candidate ranked, the offset it reflects."""

    winner: Optional[str]
    ranked: List[Scored]
    lens: str
    offset: int
    audit_id: Optional[int] = None
    #: The verifiable receipt, when asked for with ``proof=True``.
    receipt: Optional[Dict[str, Any]] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> "Resolution":
        return _build(cls, doc, ranked=[Scored.from_json(s) for s in doc.get("ranked", [])])


@dataclass
class StoredAssertion:
    """An assertion as stored: its hash, journal offset and signed record."""

    hash: str
    offset: int
    assertion: Assertion

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> "StoredAssertion":
        return cls(doc["hash"], doc["offset"], Assertion.from_json(doc["assertion"]))


@dataclass
class AssertionPage:
    """A page of assertions; ``next`` is where the next page starts (None at the end)."""

    assertions: List[StoredAssertion]
    next: Optional[str]

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> "AssertionPage":
        return cls([StoredAssertion.from_json(a) for a in doc.get("assertions", [])], doc.get("next"))


@dataclass
class StoredVote:
    """A live vote as stored."""

    hash: str
    offset: int
    vote: Vote


@dataclass
class Votes:
    """An assertion's live votes and their totals."""

    totals: Totals
    votes: List[StoredVote]

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> "Votes":
        votes = [StoredVote(v["hash"], v["offset"], Vote.from_json(v["vote"])) for v in doc.get("votes", [])]
        return cls(Totals(**doc["totals"]), votes)


@dataclass
class AuditRecord:
    """One resolution as the audit trail recorded it."""

    id: int
    at_ms: int
    subject: str
    predicate: str
    lens: str
    history: bool
    candidates: List[Dict[str, Any]]
    offset: int
    winner: Optional[str] = None
    as_of: Optional[str] = None
    requester: Optional[str] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> "AuditRecord":
        return _build(cls, doc)


@dataclass
class AuditPage:
    """A page of audit records, newest first; ``next`` is the ``before`` of the next page."""

    records: List[AuditRecord]
    next: Optional[int]

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> "AuditPage":
        return cls([AuditRecord.from_json(r) for r in doc.get("records", [])], doc.get("next"))


@dataclass
class KeyInfo:
    """An API key's public description (never its secret)."""

    id: str
    label: str
    roles: List[str]
    agents: List[str]
    revoked: bool
    created_ms: int
    revoked_ms: Optional[int] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> "KeyInfo":
        return _build(cls, doc)


@dataclass
class CreatedKey:
    """A new API key: its token (shown once) and description."""

    token: str
    key: KeyInfo

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> "CreatedKey":
        return cls(doc["token"], KeyInfo.from_json(doc["key"]))


@dataclass
class Ready:
    """Whether the node's state has caught up with its journal."""

    ready: bool
    cursor: int
    durable_end: int
    stalled: Optional[str] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> "Ready":
        return _build(cls, doc)


@dataclass
class WinnerChange:
    """A change of winner on a feed. ``event`` is ``current`` (the winner when the feed opened),
    ``winner`` (a change), ``lagged`` (changes were dropped: ``missed`` of them) or ``resumed``
    (after a reconnection, the winner moved from ``old`` to ``new`` while the feed was down)."""

    event: str
    old: Optional[str]
    new: Optional[str]
    offset: int
    missed: int = 0
