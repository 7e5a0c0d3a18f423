"""The simulator's counters, read by tests and benchmarks through `GET /stats`."""

from __future__ import annotations

import time
from collections import Counter, deque
from typing import Any


class Stats:
    """Counters read by tests: outcomes, and the most requests seen in any 60 s window."""

    def __init__(self) -> None:
        self.outcomes: Counter[str] = Counter()
        self.regenerations = 0  # answers ("ok") to a prompt that carried a previous answer
        self.requests = 0
        self.in_flight = 0
        self.peak_in_flight = 0
        self.max_per_minute = 0
        self.in_flight_seconds = 0.0  # the integral of in_flight over time
        self._since = time.monotonic()
        self._window: deque[float] = deque()

    def arrived(self, now: float) -> None:
        self.requests += 1
        self._window.append(now)
        while self._window and self._window[0] <= now - 60.0:
            self._window.popleft()
        self.max_per_minute = max(self.max_per_minute, len(self._window))

    def flight(self, change: int) -> None:
        now = time.monotonic()
        self.in_flight_seconds += self.in_flight * (now - self._since)
        self._since = now
        self.in_flight += change
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def as_dict(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "requests": self.requests,
            "in_flight": self.in_flight,
            "peak_in_flight": self.peak_in_flight,
            "max_per_minute": self.max_per_minute,
            "in_flight_seconds": self.in_flight_seconds + self.in_flight * (now - self._since),
            "clock": now,
            "outcomes": dict(self.outcomes),
            "regenerations": self.regenerations,
        }
