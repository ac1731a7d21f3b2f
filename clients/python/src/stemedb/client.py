"""HTTP clients of a StemeDB node: :class:`Client` (blocking) and :class:`AsyncClient` (asyncio).

Both have the same methods, written once in :class:`_Endpoints`: each builds a :class:`_Call`
and hands it to the client's ``_run``, which sends it (the async client returns an awaitable).
Every error answer raises the :class:`~stemedb.errors.ProblemError` subclass of its status.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, Dict, Iterable, Iterator, List, Optional, Sequence

import httpx

from . import models
from .errors import TransportError, answer_error
from .keys import AgentKey
from .records import Assertion, TrustChange, Vote, obj
from .watch import WatchState, watch_async, watch_sync

#: Seconds a request may take before it fails with TransportError (a node's own request
#: timeout is 30 s by default).
TIMEOUT_S = 60.0


@dataclass
class _Call:
    method: str
    path: str
    parse: Callable[[Any], Any]
    params: Optional[Dict[str, Any]] = None
    body: Any = None
    #: "json" (decode the answer as JSON), "text" or "bytes".
    answer: str = "json"


def _params(**values: Any) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for name, value in values.items():
        if value is None:
            continue
        out[name] = ("true" if value else "false") if isinstance(value, bool) else value
    return out


def _ident(value: Any) -> Any:
    return value


def _finish(call: _Call, response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise answer_error(response.status_code, response.reason_phrase, response.content)
    if call.answer == "text":
        return call.parse(response.text)
    if call.answer == "bytes":
        return call.parse(response.content)
    try:
        return call.parse(response.json())
    except (ValueError, KeyError, TypeError) as e:
        raise TransportError(f"{call.method} {call.path}: unexpected answer: {e}") from e


class _Endpoints:
    """Every endpoint of the API, as typed methods (shared by both clients)."""

    def _run(self, call: _Call) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    # ---- writes: records the caller signed ----
    def submit_assertion(self, assertion: Assertion, wait: str = "indexed") -> models.WriteReceipt:
        """``POST /assertions``: a signed assertion. ``wait``: ``durable`` or ``indexed``."""
        return self._run(
            _Call(
                "POST", "/assertions", models.WriteReceipt.from_json, _params(wait=wait), assertion.to_json()
            )
        )

    def submit_assertions(
        self, assertions: Sequence[Assertion], wait: str = "indexed"
    ) -> models.BatchReceipt:
        """``POST /assertions/batch``: answered item by item."""
        body = [a.to_json() for a in assertions]
        return self._run(
            _Call("POST", "/assertions/batch", models.BatchReceipt.from_json, _params(wait=wait), body)
        )

    def submit_vote(self, vote: Vote, wait: str = "indexed") -> models.WriteReceipt:
        """``POST /votes``: a signed vote."""
        return self._run(
            _Call("POST", "/votes", models.WriteReceipt.from_json, _params(wait=wait), vote.to_json())
        )

    def submit_votes(self, votes: Sequence[Vote], wait: str = "indexed") -> models.BatchReceipt:
        """``POST /votes/batch``."""
        body = [v.to_json() for v in votes]
        return self._run(
            _Call("POST", "/votes/batch", models.BatchReceipt.from_json, _params(wait=wait), body)
        )

    def submit_trust(self, change: TrustChange, wait: str = "indexed") -> models.WriteReceipt:
        """``POST /trust`` (admin): a signed trust change."""
        return self._run(
            _Call("POST", "/trust", models.WriteReceipt.from_json, _params(wait=wait), change.to_json())
        )

    # ---- writes: sign here, then submit ----
    def claim(
        self,
        key: AgentKey,
        subject: str,
        predicate: str,
        value: Any,
        confidence: float,
        *,
        parent: Optional[str] = None,
        lifecycle: str = "active",
        cosigners: Iterable[AgentKey] = (),
        wait: str = "indexed",
    ) -> models.WriteReceipt:
        """Signs a claim with ``key`` (and any ``cosigners``) and submits it."""
        assertion = Assertion(subject, predicate, obj(value), confidence, lifecycle=lifecycle, parent=parent)
        for signer in (key, *cosigners):
            assertion.sign(signer)
        return self.submit_assertion(assertion, wait)

    def supersede(
        self,
        key: AgentKey,
        parent: str,
        subject: str,
        predicate: str,
        value: Any,
        confidence: float,
        *,
        wait: str = "indexed",
    ) -> models.WriteReceipt:
        """Claims a successor of ``parent`` (an assertion by the same author)."""
        return self.claim(key, subject, predicate, value, confidence, parent=parent, wait=wait)

    def vote(
        self, key: AgentKey, assertion: str, weight: float = 1.0, *, wait: str = "indexed"
    ) -> models.WriteReceipt:
        """Signs a vote by ``key`` for ``assertion`` and submits it."""
        return self.submit_vote(Vote.sign(key, assertion, weight), wait)

    def set_trust(
        self, admin: AgentKey, agent: str, factor: float, *, wait: str = "indexed"
    ) -> models.WriteReceipt:
        """Signs a trust change by the administrator ``admin`` and submits it."""
        return self.submit_trust(TrustChange.sign(admin, agent, factor), wait)

    # ---- writes: signed by the node, as a custodial agent of the key ----
    def custodial_claim(
        self,
        subject: str,
        predicate: str,
        value: Any,
        confidence: float,
        *,
        agent: Optional[str] = None,
        parent: Optional[str] = None,
        lifecycle: Optional[str] = None,
        wait: str = "indexed",
    ) -> models.WriteReceipt:
        """``POST /custodial/assertions``: the node signs as ``agent`` (the key's only one if omitted)."""
        body = {"subject": subject, "predicate": predicate, "object": obj(value), "confidence": confidence}
        body.update(
            {
                k: v
                for k, v in (("agent", agent), ("parent", parent), ("lifecycle", lifecycle))
                if v is not None
            }
        )
        return self._run(
            _Call("POST", "/custodial/assertions", models.WriteReceipt.from_json, _params(wait=wait), body)
        )

    def custodial_vote(
        self, assertion: str, weight: float = 1.0, *, agent: Optional[str] = None, wait: str = "indexed"
    ) -> models.WriteReceipt:
        """``POST /custodial/votes``."""
        body: Dict[str, Any] = {"assertion": assertion, "weight": weight}
        if agent is not None:
            body["agent"] = agent
        return self._run(
            _Call("POST", "/custodial/votes", models.WriteReceipt.from_json, _params(wait=wait), body)
        )

    # ---- reads ----
    def get_assertion(self, hash: str) -> models.StoredAssertion:
        """``GET /assertions/{hash}``."""
        return self._run(_Call("GET", f"/assertions/{hash}", models.StoredAssertion.from_json))

    def list_assertions(
        self,
        subject: str,
        predicate: str,
        *,
        history: Optional[bool] = None,
        limit: Optional[int] = None,
        after: Optional[str] = None,
    ) -> models.AssertionPage:
        """``GET /assertions``: one page; pass the page's ``next`` as ``after`` for the next."""
        params = _params(subject=subject, predicate=predicate, history=history, limit=limit, after=after)
        return self._run(_Call("GET", "/assertions", models.AssertionPage.from_json, params))

    def votes(self, hash: str, *, limit: Optional[int] = None) -> models.Votes:
        """``GET /assertions/{hash}/votes``."""
        return self._run(
            _Call("GET", f"/assertions/{hash}/votes", models.Votes.from_json, _params(limit=limit))
        )

    def resolve(
        self,
        subject: str,
        predicate: str,
        *,
        lens: Optional[str] = None,
        as_of_offset: Optional[int] = None,
        as_of_ms: Optional[int] = None,
        max_stale_offsets: Optional[int] = None,
        max_stale_ms: Optional[int] = None,
        history: Optional[bool] = None,
        limit: Optional[int] = None,
        audit: Optional[bool] = None,
        proof: Optional[bool] = None,
    ) -> models.Resolution:
        """``GET /resolve``: the winner under ``lens``, every candidate with its score and reason."""
        params = _params(
            subject=subject,
            predicate=predicate,
            lens=lens,
            as_of_offset=as_of_offset,
            as_of_ms=as_of_ms,
            max_stale_offsets=max_stale_offsets,
            max_stale_ms=max_stale_ms,
            history=history,
            limit=limit,
            audit=audit,
            proof=proof,
        )
        return self._run(_Call("GET", "/resolve", models.Resolution.from_json, params))

    def audit(self, id: int) -> models.AuditRecord:
        """``GET /audit/{id}``."""
        return self._run(_Call("GET", f"/audit/{int(id)}", models.AuditRecord.from_json))

    def audit_list(
        self, subject: str, predicate: str, *, limit: Optional[int] = None, before: Optional[int] = None
    ) -> models.AuditPage:
        """``GET /audit``: newest first; pass the page's ``next`` as ``before`` for the next."""
        params = _params(subject=subject, predicate=predicate, limit=limit, before=before)
        return self._run(_Call("GET", "/audit", models.AuditPage.from_json, params))

    # ---- the verifiable log ----
    def checkpoint(self) -> str:
        """``GET /checkpoint``: the node's signed checkpoint (a C2SP signed note)."""
        return self._run(_Call("GET", "/checkpoint", _ident, answer="text"))

    def log_checkpoint(self) -> str:
        """``GET /log/checkpoint``: the checkpoint at the tlog-tiles path."""
        return self._run(_Call("GET", "/log/checkpoint", _ident, answer="text"))

    def checkpoint_key(self) -> str:
        """``GET /checkpoint/key``: the note verifier key of the node's checkpoints."""
        return self._run(_Call("GET", "/checkpoint/key", _ident, answer="text"))

    def inclusion_proof(self, index: int, size: int) -> Dict[str, Any]:
        """``GET /proofs/inclusion``: the RFC 6962 audit path of leaf ``index`` in a tree of ``size``."""
        return self._run(_Call("GET", "/proofs/inclusion", _ident, _params(index=index, size=size)))

    def inclusion_proof_of(self, hash: str, size: Optional[int] = None) -> Dict[str, Any]:
        """``GET /proofs/inclusion/{hash}``: the audit path of the record with this content hash."""
        return self._run(_Call("GET", f"/proofs/inclusion/{hash}", _ident, _params(size=size)))

    def consistency_proof(self, old: int, new: int) -> Dict[str, Any]:
        """``GET /proofs/consistency``: the RFC 6962 proof that tree ``old`` is a prefix of ``new``."""
        return self._run(_Call("GET", "/proofs/consistency", _ident, _params(old=old, new=new)))

    def log_tile(self, path: str) -> bytes:
        """``GET /log/tile/{path}``: a tlog tile, as bytes."""
        return self._run(_Call("GET", f"/log/tile/{path}", _ident, answer="bytes"))

    # ---- operations ----
    def health(self) -> Dict[str, Any]:
        """``GET /health``."""
        return self._run(_Call("GET", "/health", _ident))

    def ready(self) -> models.Ready:
        """``GET /ready``: answers (rather than raising) while the node is catching up."""
        return self._run(_Call("GET", "/ready", models.Ready.from_json))

    def openapi(self) -> Dict[str, Any]:
        """``GET /openapi.json``: the API's OpenAPI 3.1 document."""
        return self._run(_Call("GET", "/openapi.json", _ident))

    def metrics(self) -> str:
        """``GET /metrics`` (outside ``/v1``): the Prometheus exposition."""
        return self._run(_Call("GET", "../metrics", _ident, answer="text"))

    # ---- administration ----
    def create_key(self, label: str, roles: Sequence[str], agents: Sequence[str] = ()) -> models.CreatedKey:
        """``POST /keys`` (admin): a key with ``roles`` that may submit as ``agents``."""
        body = {"label": label, "roles": list(roles), "agents": list(agents)}
        return self._run(_Call("POST", "/keys", models.CreatedKey.from_json, body=body))

    def list_keys(self) -> List[models.KeyInfo]:
        """``GET /keys`` (admin)."""
        return self._run(
            _Call("GET", "/keys", lambda doc: [models.KeyInfo.from_json(k) for k in doc["keys"]])
        )

    def revoke_key(self, id: str) -> models.KeyInfo:
        """``DELETE /keys/{id}`` (admin): refused at once from then on."""
        return self._run(_Call("DELETE", f"/keys/{id}", models.KeyInfo.from_json))

    def create_agent(self) -> str:
        """``POST /agents`` (admin): a new custodial agent (the node holds its key); its id."""
        return self._run(_Call("POST", "/agents", lambda doc: doc["agent"]))


def _watch_state(
    base: str, subject: str, predicate: str, lens: Optional[str], reconnect_max: Optional[int]
) -> WatchState:
    """A new feed's state: where it reads, and nothing seen yet."""
    return WatchState(
        base + "/watch", _params(subject=subject, predicate=predicate, lens=lens), reconnect_max
    )


def _split_base(url: str) -> str:
    url = url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


def _headers(token: Optional[str]) -> Dict[str, str]:
    headers = {"Accept": "application/json, application/problem+json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def _url(base: str, path: str) -> str:
    if path.startswith("../"):
        return base[: -len("/v1")] + "/" + path[3:]
    return base + path


class Client(_Endpoints):
    """A blocking client. ``url`` is the API's base (``http://127.0.0.1:7410`` or ``.../v1``);
    ``token`` an API key (``sdb_...``). Use as a context manager, or call :meth:`close`."""

    def __init__(
        self,
        url: str,
        token: Optional[str] = None,
        *,
        timeout_s: float = TIMEOUT_S,
        transport: Optional[httpx.BaseTransport] = None,
    ) -> None:
        self.base = _split_base(url)
        self.token = token
        self._http = httpx.Client(headers=_headers(token), timeout=timeout_s, transport=transport)

    def _run(self, call: _Call) -> Any:
        try:
            response = self._http.request(
                call.method, _url(self.base, call.path), params=call.params, json=call.body
            )
        except httpx.HTTPError as e:
            raise TransportError(f"{call.method} {call.path}: {e}") from e
        return _finish(call, response)

    def watch(
        self, subject: str, predicate: str, *, lens: Optional[str] = None, reconnect_max: Optional[int] = None
    ) -> Iterator[models.WinnerChange]:
        """The winner feed as an iterator; reconnects (with backoff) when the connection drops,
        and reports a change missed while it was down as a ``resumed`` event."""
        return watch_sync(self._http, _watch_state(self.base, subject, predicate, lens, reconnect_max))

    def close(self) -> None:
        """Closes the connection pool."""
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(_Endpoints):
    """The asyncio client: the same methods as :class:`Client`, each awaitable."""

    def __init__(
        self,
        url: str,
        token: Optional[str] = None,
        *,
        timeout_s: float = TIMEOUT_S,
        transport: Optional[httpx.AsyncBaseTransport] = None,
    ) -> None:
        self.base = _split_base(url)
        self.token = token
        self._http = httpx.AsyncClient(headers=_headers(token), timeout=timeout_s, transport=transport)

    async def _send(self, call: _Call) -> Any:
        try:
            response = await self._http.request(
                call.method, _url(self.base, call.path), params=call.params, json=call.body
            )
        except httpx.HTTPError as e:
            raise TransportError(f"{call.method} {call.path}: {e}") from e
        return _finish(call, response)

    def _run(self, call: _Call) -> Any:
        return self._send(call)

    def watch(
        self, subject: str, predicate: str, *, lens: Optional[str] = None, reconnect_max: Optional[int] = None
    ) -> AsyncIterator[models.WinnerChange]:
        """The winner feed as an async iterator (see :meth:`Client.watch`)."""
        return watch_async(self._http, _watch_state(self.base, subject, predicate, lens, reconnect_max))

    async def aclose(self) -> None:
        """Closes the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
