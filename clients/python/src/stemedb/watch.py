"""The winner feed (``GET /watch``, Server-Sent Events) as an iterator that survives reconnects.

A feed opens with a ``current`` event (the winner now, at an offset), then sends a ``winner``
event per change. When the connection drops (a node restart, a network fault), the iterator
reconnects with bounded exponential backoff. The new feed's ``current`` event says where the
winner stands now: if that is past the last offset seen and the winner differs from the last one
reported, the iterator yields a ``resumed`` change from the last winner to the current one, so
the consumer's view is right again (intermediate flips while it was down are collapsed into
that one change). Changes at or before the last offset seen are not yielded twice.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Dict, Iterator, Optional

import anyio
import httpx
from httpx_sse import ServerSentEvent, SSEError, aconnect_sse, connect_sse

from .errors import ProblemError, TransportError, answer_error
from .models import WinnerChange

#: First and largest delay between reconnection attempts, in seconds.
BACKOFF_FIRST_S = 0.05
BACKOFF_MAX_S = 2.0
#: A node sends a keep-alive comment every 15 s; a feed silent for this long is dead.
READ_TIMEOUT_S = 45.0
#: Statuses after which reconnecting can help.
_RETRY_STATUSES = {429, 502, 503, 504}


@dataclass
class WatchState:
    """Where a feed stands: the URL, and the last winner and offset it reported."""

    url: str
    params: Dict[str, Any]
    #: Reconnection attempts allowed in a row without an event (None: unbounded).
    reconnect_max: Optional[int] = None
    winner: Optional[str] = None
    offset: int = -1
    opened: bool = False
    failures: int = 0

    def on_event(self, sse: ServerSentEvent) -> Optional[WinnerChange]:
        """Returns the change to yield for one event, if any."""
        if sse.event not in ("current", "winner", "lagged"):
            return None
        try:
            data = json.loads(sse.data) if sse.data else None
            # `current` may carry null (no winner yet, no view); the others always an object.
            if not isinstance(data, dict) and (data is not None or sse.event != "current"):
                raise ValueError(f"expected an object, got {sse.data[:64]!r}")
            body = data or {}
            new = body.get("new")
            offset = int(body.get("offset", 0))
            missed = int(body.get("missed", 0))
            old = body.get("old")
        except (ValueError, TypeError) as e:
            raise TransportError(f"watch: a malformed {sse.event} event: {e}") from e
        self.failures = 0
        if sse.event == "lagged":
            return WinnerChange("lagged", self.winner, self.winner, self.offset, missed)
        if sse.event == "current":
            if not self.opened:
                self.opened = True
                self.winner, self.offset = new, offset
                return WinnerChange("current", None, new, offset)
            if offset > self.offset and new != self.winner:
                change = WinnerChange("resumed", self.winner, new, offset)
                self.winner, self.offset = new, offset
                return change
            self.offset = max(self.offset, offset)
            return None
        if offset <= self.offset:
            return None
        change = WinnerChange("winner", old, new, offset)
        self.winner, self.offset = new, offset
        return change

    def backoff_s(self, error: Exception) -> float:
        """Counts a failure; returns the delay before the next attempt, or raises when out of them."""
        self.failures += 1
        if self.reconnect_max is not None and self.failures > self.reconnect_max:
            raise error
        retry_after = getattr(error, "retry_after_s", None)
        delay = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (self.failures - 1))
        if retry_after:
            delay = max(delay, float(retry_after))
        return delay * (0.5 + random.random() / 2)


def _check(response: httpx.Response, body: bytes) -> None:
    if response.status_code < 400:
        return
    raise answer_error(response.status_code, response.reason_phrase, body)


def _fatal(error: Exception) -> bool:
    """True if and only if reconnecting cannot help: an error answer other than 429, 502, 503, 504."""
    return isinstance(error, ProblemError) and error.status not in _RETRY_STATUSES


_TIMEOUT = httpx.Timeout(10.0, read=READ_TIMEOUT_S)


def watch_sync(http: httpx.Client, state: WatchState) -> Iterator[WinnerChange]:
    """The blocking feed iterator."""
    while True:
        try:
            with connect_sse(http, "GET", state.url, params=state.params, timeout=_TIMEOUT) as source:
                if source.response.status_code >= 400:
                    _check(source.response, source.response.read())
                for sse in source.iter_sse():
                    change = state.on_event(sse)
                    if change is not None:
                        yield change
            error: Exception = TransportError("watch: the feed ended")
        except (httpx.HTTPError, SSEError, ProblemError) as e:
            if _fatal(e):
                raise
            error = e
        time.sleep(state.backoff_s(error))


async def watch_async(http: httpx.AsyncClient, state: WatchState) -> AsyncIterator[WinnerChange]:
    """The asyncio feed iterator."""
    while True:
        try:
            async with aconnect_sse(http, "GET", state.url, params=state.params, timeout=_TIMEOUT) as source:
                if source.response.status_code >= 400:
                    _check(source.response, await source.response.aread())
                async for sse in source.aiter_sse():
                    change = state.on_event(sse)
                    if change is not None:
                        yield change
            error: Exception = TransportError("watch: the feed ended")
        except (httpx.HTTPError, SSEError, ProblemError) as e:
            if _fatal(e):
                raise
            error = e
        await anyio.sleep(state.backoff_s(error))
