"""The client's exceptions.

A node answers every error as ``application/problem+json`` (RFC 9457). :func:`problem_error`
maps such an answer to the exception class of its status, which carries every field of the
problem. Failures before an answer (refused connections, timeouts, a body that is not the
expected JSON) are :class:`TransportError`; bad input caught before sending is
:class:`EncodingError`.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Mapping, Optional, Type


class StemeError(Exception):
    """Base class of every error this package raises."""


class EncodingError(StemeError, ValueError):
    """A value cannot be encoded or signed: wrong type, out of range, not finite, bad hex."""

    def __init__(self, message: str, field: Optional[str] = None) -> None:
        super().__init__(message)
        #: The field at fault, if one is.
        self.field = field


class SignatureError(StemeError):
    """A record's signature does not verify against its body and signer."""


class TransportError(StemeError):
    """The node could not be reached, did not answer in time, or answered something unreadable."""


class ProblemError(StemeError):
    """An error answer of the node (``application/problem+json``)."""

    def __init__(self, problem: Mapping[str, Any], status: int) -> None:
        self.problem: Dict[str, Any] = dict(problem)
        #: The HTTP status.
        self.status: int = (
            int(problem.get("status", status)) if isinstance(problem.get("status"), int) else status
        )
        #: The problem's type URI, e.g. ``urn:stemedb:problem:rejected``.
        self.type: str = str(problem.get("type", "about:blank"))
        #: A short summary of the kind of problem.
        self.title: str = str(problem.get("title", ""))
        #: What went wrong with this request.
        self.detail: str = str(problem.get("detail", ""))
        #: The request field at fault, if one is named.
        self.field: Optional[str] = problem.get("field")
        #: The limit that was passed, if one was.
        self.limit: Optional[int] = problem.get("limit")
        #: Seconds to wait before retrying (429, 503), if the node says.
        self.retry_after_s: Optional[int] = problem.get("retry_after_s")
        super().__init__(f"{self.status} {self.title}: {self.detail}")

    @property
    def kind(self) -> str:
        """The last part of the type URI (``rejected``, ``rate_limited``, ...)."""
        return self.type.rsplit(":", 1)[-1]


class BadRequest(ProblemError):
    """400: the request is malformed (bad JSON, bad query parameter)."""


class Unauthorized(ProblemError):
    """401: no key, an unknown key, or a revoked key."""


class Forbidden(ProblemError):
    """403: the key lacks the role, or may not submit as that agent."""


class NotFound(ProblemError):
    """404: no such record, route or audit entry."""


class Conflict(ProblemError):
    """409: the request conflicts with the state (e.g. a refused record, a full key store)."""


class PayloadTooLarge(ProblemError):
    """413: the body is larger than the node takes."""


class UnsupportedMediaType(ProblemError):
    """415: the body is not JSON."""


class Unprocessable(ProblemError):
    """422: the request is well-formed but invalid (a bad signature, a value out of range)."""


class RateLimited(ProblemError):
    """429: the key's rate, quota or feed share is used up; see ``retry_after_s``."""


class Unavailable(ProblemError):
    """503: backpressure or a node not ready; retry after ``retry_after_s``."""


class InsufficientStorage(ProblemError):
    """507: the node's disk is full."""


_BY_STATUS: Dict[int, Type[ProblemError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: Unprocessable,
    429: RateLimited,
    503: Unavailable,
    507: InsufficientStorage,
}


def problem_error(problem: Mapping[str, Any], status: int) -> ProblemError:
    """Returns the exception for a problem answer with HTTP ``status``."""
    return _BY_STATUS.get(status, ProblemError)(problem, status)


def answer_error(status: int, reason: str, body: bytes) -> ProblemError:
    """The exception for an error answer: its problem+json, or, if the body is not one (a proxy
    answered, say), a problem made of the status, its reason and the body's start."""
    try:
        problem = json.loads(body)
        if not isinstance(problem, dict):
            raise ValueError("not an object")
    except ValueError:
        problem = {"status": status, "title": reason, "detail": body[:512].decode("utf-8", "replace")}
    return problem_error(problem, status)
