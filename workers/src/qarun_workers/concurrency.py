"""Adaptive concurrency (AIMD) for the LLM worker.

The limit starts small and, in slow start, grows by one per success while the window
is in use (doubling every round trip) until the first overload signal. An overload
(429 rate limit, 503, timeout) then cuts it by `decrease`, at most once per round
trip so that one burst of failures counts once, and marks the new level as the
slow-start threshold; above it, growth is gentle (about `growth` of the limit per
round trip). Retry-After is honoured per message by the retry delay, not here:
pausing the whole worker on every 429 would starve it under a provider that
rejects a fixed fraction of requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import time


class AdaptiveLimit:
    def __init__(
        self,
        initial: int,
        minimum: int,
        maximum: int,
        decrease: float = 0.8,
        growth: float = 0.05,
    ) -> None:
        self.minimum = max(1, minimum)
        self.maximum = max(self.minimum, maximum)
        self.limit = float(min(max(initial, self.minimum), self.maximum))
        self.threshold = float(self.maximum)
        self.decrease = decrease
        self.growth = growth
        self.in_flight = 0
        self.peak_in_flight = 0
        self.round_trip = 1.0  # seconds, smoothed over successes
        self._last_cut = 0.0
        self._room = asyncio.Event()
        self._room.set()

    @property
    def room(self) -> int:
        return max(0, int(self.limit) - self.in_flight)

    def started(self, count: int = 1) -> None:
        self.in_flight += count
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        if self.room == 0:
            self._room.clear()

    def finished(self) -> None:
        self.in_flight -= 1
        if self.room > 0:
            self._room.set()

    async def wait_for_room(self, seconds: float) -> None:
        """Return when there is room, or after `seconds` so the caller's loop can poll."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._room.wait(), seconds)

    def success(self, latency: float) -> None:
        self.round_trip += 0.1 * (latency - self.round_trip)
        if self.in_flight * 2 < self.limit:
            return  # not using the window: no evidence that a bigger one would work
        if self.limit < self.threshold:
            self.limit += 1.0
        else:
            self.limit += max(1.0, self.growth * self.limit) / self.limit
        self.limit = min(self.limit, float(self.maximum))
        if self.room > 0:
            self._room.set()

    def overload(self) -> None:
        now = time.monotonic()
        if now - self._last_cut < max(0.05, self.round_trip):
            return
        self._last_cut = now
        self.limit = max(float(self.minimum), self.limit * self.decrease)
        self.threshold = self.limit
        if self.room == 0:
            self._room.clear()
