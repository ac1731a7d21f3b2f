"""StemeDB's Python client.

Agents sign their own records with their own Ed25519 key, so the node never holds it::

    from stemedb import AgentKey, Client

    key = AgentKey.generate()
    with Client("http://127.0.0.1:7410", token="sdb_...") as db:
        receipt = db.claim(key, "city/paris", "population", 2102650, 0.9)
        db.vote(key, receipt.hash, 2.0)
        print(db.resolve("city/paris", "population", lens="consensus").winner)

The encoding and signing follow ``docs/SIGNING.md`` of the StemeDB repository, checked against
the vectors the Rust engine generates. :class:`AsyncClient` has the same methods for asyncio.
"""

from .client import AsyncClient, Client
from .encoding import (
    CONTEXTS,
    LIFECYCLES,
    assertion_body,
    content_hash,
    signing_message,
    trust_body,
    vote_body,
)
from .errors import (
    BadRequest,
    Conflict,
    EncodingError,
    Forbidden,
    InsufficientStorage,
    NotFound,
    PayloadTooLarge,
    ProblemError,
    RateLimited,
    SignatureError,
    StemeError,
    TransportError,
    Unauthorized,
    Unavailable,
    Unprocessable,
    UnsupportedMediaType,
)
from .keys import AgentKey, verify
from .models import (
    AssertionPage,
    AuditPage,
    AuditRecord,
    BatchItem,
    BatchReceipt,
    CreatedKey,
    KeyInfo,
    Ready,
    Resolution,
    Scored,
    StoredAssertion,
    StoredVote,
    Totals,
    Votes,
    WinnerChange,
    WriteReceipt,
)
from .records import Assertion, TrustChange, Vote, now_ms, obj, ref

__version__ = "0.1.0"

__all__ = [
    "AgentKey",
    "Assertion",
    "AssertionPage",
    "AsyncClient",
    "AuditPage",
    "AuditRecord",
    "BadRequest",
    "BatchItem",
    "BatchReceipt",
    "CONTEXTS",
    "Client",
    "Conflict",
    "CreatedKey",
    "EncodingError",
    "Forbidden",
    "InsufficientStorage",
    "KeyInfo",
    "LIFECYCLES",
    "NotFound",
    "PayloadTooLarge",
    "ProblemError",
    "RateLimited",
    "Ready",
    "Resolution",
    "Scored",
    "SignatureError",
    "StemeError",
    "StoredAssertion",
    "StoredVote",
    "Totals",
    "TransportError",
    "TrustChange",
    "Unauthorized",
    "Unavailable",
    "Unprocessable",
    "UnsupportedMediaType",
    "Vote",
    "Votes",
    "WinnerChange",
    "WriteReceipt",
    "assertion_body",
    "content_hash",
    "now_ms",
    "obj",
    "ref",
    "signing_message",
    "trust_body",
    "verify",
    "vote_body",
]
