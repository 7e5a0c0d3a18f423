"""Adaptive concurrency for the LLM worker: how many calls it keeps in flight.

A provider answers "too much" in three ways that call for three different reactions,
so the controller tells them apart instead of cutting on any failure:

* **Rate limits** (a 429 carrying Retry-After or `x-ratelimit-*` headers) say how
  many requests or tokens a minute the provider takes, whatever the concurrency.
  They are paced by rate, fleet-wide, in the shared buckets of `qarun_workers.limits`
  (the provider's limits learned from its headers; a used-up one holds the fleet
  until it refills), and the refused call waits its Retry-After in the retry tier.
  The worker reports them with `rate_limited()`, which leaves the limit alone.
* **Overload** (503s, timeouts, 429s without pacing headers, latency rising above its
  baseline) says the provider's capacity is full. The limit shrinks, at most once
  per latency window, and grows back in proportion to itself.
* **Load-independent errors** (a provider that fails a fixed fraction of calls
  however few we send) look like overload but do not fall when the limit falls;
  cutting for them only lowers goodput. The controller learns that fraction as its
  error *tolerance* and reacts only to errors above it.

The algorithm is AIMD on windows of one round trip, as in TCP congestion control
(Jacobson's slow start and congestion avoidance; Chiu and Jain's analysis of why
additive-increase/multiplicative-decrease converges), with two refinements:

1. *Loss above a learned floor.* Within a window, errors count as overload only when
   they exceed the tolerance by more than chance explains (three binomial standard
   deviations plus a few calls). Then the limit is cut by `decrease` at once (TCP's
   fast reaction to loss), and only calls sent after the cut count from then on
   (those sent before tell nothing about the new limit: TCP's "once per round
   trip"). A window of those calls then judges the cut, by goodput, which is what
   the limit is for: if the errors are back within tolerance, the cut stands; if
   they stayed but the successes a second did not fall with the limit, the calls cut
   were past the provider's capacity and only failed, so it is cut again; if they
   stayed and the successes fell with the limit, the errors do not depend on load:
   the cut is undone and the tolerance raised to the measured fraction. Refusals
   that come back at once (in under half the usual latency: refused at the door,
   as a full server does) may cut again before that window ends, each time from
   calls sent after the last cut, so a limit far above capacity comes down within
   a few of them rather than a few round trips. The tolerance follows the error
   fraction of normal windows (a moving average), so it comes down when the faults
   stop. No error cut is made before a first whole window gives a goodput to judge by.
2. *Queueing delay, as in TCP Vegas (Brakmo and Peterson) and Netflix's
   concurrency-limits Gradient2.* The window's mean latency is compared with a
   baseline that follows a lower window latency at once and a higher one only slowly
   (so that a provider that became slower for good is followed within a minute or
   two, like Gradient2's long-term average). Two windows in a row more than
   `LATENCY_TOLERANCE` above it (Gradient2's RTT tolerance) mean calls wait in a queue
   at the provider: a provider that slows down rather than refusing when over
   capacity. That is overload as well. Latency rises with load by nature, so a
   latency cut is not judged like an error cut. The tolerance is wide and one window
   is not enough because the client's own event loop adds delay on a busy host; and
   while the loop itself lags (`host_lag`, measured by the worker) latency is not
   read as the provider's at all: a CPU-bound worker answers as many at a lower
   limit, so a cut would only lose calls in flight.

Growth happens once per window and only while the window is used (at least half the
limit was in flight; an idle limit is no evidence that a larger one works): doubling
in slow start until the first cut, then `growth` of the limit per window. Quota
refusals and permanent errors are neither success nor overload and are not reported.

Time comes from `clock` (monotonic seconds), so tests drive the controller on a
simulated clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

MIN_WINDOW_SECONDS = 0.05
MIN_WINDOW_CALLS = 10
TOLERANCE_AVERAGING = 0.1  # per window
BASELINE_FALL = 0.5  # per window, toward a lower window mean latency
BASELINE_RISE = 0.01  # per window within the tolerance, toward a higher one
HOST_LAG_SHARE = 0.1  # event-loop lag above this share of the baseline: the host is busy
LATENCY_TOLERANCE = 1.3  # a window mean latency this far above the baseline is queueing
SIGMAS = 3.0
SPARE_ERRORS = 3.0  # errors above the 3-sigma line before a window counts as overloaded


@dataclass
class Window:
    """One round trip's completions."""

    start: float
    ok: int = 0
    errors: int = 0
    latency_sum: float = 0.0
    busiest: int = 0

    @property
    def calls(self) -> int:
        return self.ok + self.errors

    @property
    def error_fraction(self) -> float:
        return self.errors / self.calls if self.calls else 0.0


@dataclass(frozen=True)
class Probe:
    """A cut on errors waiting for the round trip that tells whether it helped."""

    limit_before: float
    threshold_before: float
    goodput: float  # successes a second in the last whole window before the cut


def excess_errors(errors: int, calls: int, tolerance: float) -> bool:
    """More errors among `calls` than a background fraction `tolerance` explains."""
    p = min(max(tolerance, 0.01), 0.99)
    expected = tolerance * calls
    return errors > expected + SIGMAS * math.sqrt(calls * p * (1 - p)) + SPARE_ERRORS


class AdaptiveLimit:
    def __init__(
        self,
        initial: int,
        minimum: int,
        maximum: int,
        *,
        decrease: float = 0.8,
        growth: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.minimum = max(1, minimum)
        self.maximum = max(self.minimum, maximum)
        self.limit = float(min(max(initial, self.minimum), self.maximum))
        self.threshold = float(self.maximum)  # slow start below it
        self.decrease = decrease
        self.growth = growth
        self.clock = clock
        self.in_flight = 0
        self.peak_in_flight = 0
        self.round_trip = 0.0  # seconds, smoothed over successes; 0 = none seen yet
        self.baseline = math.inf  # about the least window mean latency
        self.slow_windows = 0  # windows in a row above the latency tolerance
        self.host_lag = 0.0  # seconds the worker's event loop is late, set by the worker
        self.tolerance = 0.0  # the error fraction known not to depend on load
        self.cuts = 0
        self.window = Window(clock())
        self.probe: Probe | None = None
        self.goodput = 0.0  # successes a second in the last whole window
        self._last_cut = -math.inf
        self._room = asyncio.Event()
        self._room.set()

    @property
    def room(self) -> int:
        return max(0, int(self.limit) - self.in_flight)

    def started(self, count: int = 1) -> None:
        self.in_flight += count
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        self.window.busiest = max(self.window.busiest, self.in_flight)
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

    # --- signals -------------------------------------------------------------------

    def success(self, latency: float) -> None:
        """A call answered `latency` seconds after it was sent."""
        if self.round_trip == 0.0:
            self.round_trip = latency
        self.round_trip += 0.1 * (latency - self.round_trip)
        now = self.clock()
        if now - latency < self._last_cut:
            return  # sent under the old limit: says nothing about the new one
        self.window.ok += 1
        self.window.latency_sum += latency
        self._maybe_close(now)

    def overload(self, latency: float) -> None:
        """A 503, a timeout, a 429 without pacing headers, `latency` seconds after sending:
        maybe overload, maybe not."""
        now = self.clock()
        if now - latency < self._last_cut:
            return
        w = self.window
        w.errors += 1
        # Not before a whole window was seen: without its goodput and latency there is
        # nothing to judge a cut by.
        if self.goodput > 0 and excess_errors(w.errors, w.calls, self.tolerance):
            if self.probe is None:
                self._cut(now, Probe(self.limit, self.threshold, self.goodput))
                return
            if latency < 0.5 * self.baseline and self.limit > self.minimum:
                # Refused at the door, and still too often under the new limit: the cut
                # was not deep enough. Cut again at once; the probe still holds what to
                # go back to should the refusals turn out not to depend on load.
                self._cut(now, self.probe)
                return
        self._maybe_close(now)

    def rate_limited(self) -> None:
        """A 429 that says when to come back: the fleet's rate pacing handles it."""

    # --- windows -------------------------------------------------------------------

    def _window_seconds(self) -> float:
        return max(MIN_WINDOW_SECONDS, self.round_trip)

    def _maybe_close(self, now: float) -> None:
        w = self.window
        if now - w.start < self._window_seconds() or w.calls < MIN_WINDOW_CALLS:
            return
        self.window = Window(now, busiest=self.in_flight)
        self.goodput = w.ok / (now - w.start)
        if self.probe is not None:
            self._judge(now, self.probe, w)
            return
        if self._queueing(w):
            return
        self.tolerance += TOLERANCE_AVERAGING * (w.error_fraction - self.tolerance)
        if w.busiest * 2 >= self.limit:
            self._grow()

    def _queueing(self, w: Window) -> bool:
        """Two windows in a row with a mean latency well above the baseline: calls wait
        in a queue at the provider. (One alone may be the host's own hiccup.)"""
        if w.ok == 0:
            return False
        mean = w.latency_sum / w.ok
        if not math.isfinite(self.baseline):
            self.baseline = mean
        if mean > LATENCY_TOLERANCE * self.baseline and not self._host_busy():
            self.slow_windows += 1
            if self.slow_windows >= 2:
                self.slow_windows = 0
                self._cut(self.clock(), None)
                return True
            return False
        self.slow_windows = 0
        rate = BASELINE_FALL if mean < self.baseline else BASELINE_RISE
        self.baseline += rate * (mean - self.baseline)
        return False

    def _host_busy(self) -> bool:
        """The worker's own event loop lags: its latencies rise with its own load, and a
        lower limit would not raise goodput (a CPU-bound worker answers as many either
        way), so latency says nothing about the provider."""
        return self.host_lag > HOST_LAG_SHARE * self.baseline

    def _judge(self, now: float, probe: Probe, after: Window) -> None:
        """The round trip after a cut: did it bring the errors (or the latency) down?"""
        self.probe = None
        log.debug(
            "judging the cut from %.1f: %d/%d errors, goodput %.1f/s (before %.1f/s)",
            probe.limit_before,
            after.errors,
            after.calls,
            self.goodput,
            probe.goodput,
        )
        if not excess_errors(after.errors, after.calls, self.tolerance):
            return  # back to normal: the cut was right
        if self.goodput >= probe.goodput * (1 - (1 - self.decrease) / 2):
            # Still too many errors, and the calls cut were not needed for the successes:
            # past the provider's capacity, the extra calls only fail. Cut again.
            self._cut(now, Probe(self.limit, self.threshold, self.goodput))
            return
        # The errors stayed and the successes fell with the limit: the errors do not
        # come from load, and a lower limit only loses goodput. Undo the cut.
        self.limit, self.threshold = probe.limit_before, probe.threshold_before
        self.tolerance = max(self.tolerance, after.error_fraction)
        log.info(
            "errors that do not fall with the limit: %.0f %% tolerated, limit back to %.0f",
            self.tolerance * 100,
            self.limit,
        )
        self._room_changed()

    def _cut(self, now: float, probe: Probe | None) -> None:
        log.debug(
            "cut %.1f: %d/%d errors in the window, tolerance %.2f, %s",
            self.limit,
            self.window.errors,
            self.window.calls,
            self.tolerance,
            "errors" if probe else "latency",
        )
        self.cuts += 1
        self.limit = max(float(self.minimum), self.limit * self.decrease)
        self.threshold = self.limit
        self.probe = probe
        # Only calls sent from now on tell how the new limit does (TCP's once per round
        # trip); their successes arrive a round trip from now, so the window that
        # measures them closes two round trips from now.
        self._last_cut = now
        self.window = Window(now + self._window_seconds(), busiest=self.in_flight)
        self._room_changed()

    def _grow(self) -> None:
        if self.limit < self.threshold:
            self.limit = min(self.limit * 2, self.threshold)
        else:
            self.limit += max(1.0, self.growth * self.limit)
        self.limit = min(self.limit, float(self.maximum))
        self._room_changed()

    def _room_changed(self) -> None:
        if self.room > 0:
            self._room.set()
        else:
            self._room.clear()
