"""The concurrency controller alone, on a simulated clock against a modelled provider.

A closed loop keeps the controller's limit filled with calls (as the worker does with
a backlog of questions); the provider answers each after a latency, and fails it
either at random (a fixed fraction, whatever the load) or because more than its
capacity is in flight (refused at once, or queued so that latency rises). Everything
is deterministic: a seeded generator and an event queue, no sleeping.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from qarun_workers.concurrency import AdaptiveLimit, excess_errors

LATENCY = 0.5
MAX = 256


@dataclass
class Provider:
    error_fraction: float = 0.0  # load-independent
    capacity: int = 0  # 0 = unbounded
    queue_over_capacity: bool = False  # slow down (queue) instead of refusing
    latency: float = LATENCY  # mean; each call's within 10 % of it


@dataclass
class Trace:
    """What the loop saw, sampled every simulated 0.1 s."""

    limits: list[tuple[float, float]] = field(default_factory=list)
    in_flight: list[tuple[float, float]] = field(default_factory=list)
    calls: int = 0
    refused: int = 0  # capacity refusals
    ok: int = 0

    def mean(self, samples: Sequence[tuple[float, float]], since: float) -> float:
        values = [v for t, v in samples if t >= since]
        return sum(values) / len(values)


def drive(
    provider: Provider, seconds: float, seed: int = 1, initial: int = 32, offered: float = 0.0
) -> tuple[AdaptiveLimit, Trace]:
    """`offered` > 0: questions arrive at that rate, and a failed call comes back 2 s
    later (the retry tier); 0: a backlog that never runs dry."""
    now = [0.0]
    limit = AdaptiveLimit(initial, 4, MAX, clock=lambda: now[0])
    rng = random.Random(seed)
    events: list[tuple[float, int, str, float]] = []  # (when, seq, outcome, latency)
    seq = 0
    serving = 0  # calls the provider works on (or queues) right now
    trace = Trace()
    step = 0.01
    next_sample = 0.0
    waiting = 0.0  # calls that could be sent now (offered > 0)
    retries: list[float] = []  # when failed calls come back
    while now[0] < seconds:
        if offered:
            waiting += offered * step
            while retries and retries[0] <= now[0]:
                heapq.heappop(retries)
                waiting += 1
        while events and events[0][0] <= now[0]:
            _when, _n, outcome, latency = heapq.heappop(events)
            limit.finished()
            if outcome != "ok" and offered:
                heapq.heappush(retries, now[0] + 2.0)
            if outcome == "refused":
                limit.overload(latency)
                continue
            serving -= 1
            if outcome == "error":
                limit.overload(latency)
            else:
                trace.ok += 1
                limit.success(latency)
        while limit.room > 0 and (not offered or waiting >= 1):
            waiting -= 1 if offered else 0
            limit.started()
            trace.calls += 1
            seq += 1
            full = provider.capacity and serving >= provider.capacity
            if full and not provider.queue_over_capacity:
                trace.refused += 1
                heapq.heappush(events, (now[0] + 0.002, seq, "refused", 0.002))
                continue
            serving += 1
            latency = provider.latency * rng.uniform(0.9, 1.1)
            if provider.capacity and provider.queue_over_capacity and serving > provider.capacity:
                latency *= serving / provider.capacity  # processor sharing: slower for all
            outcome = "error" if rng.random() < provider.error_fraction else "ok"
            heapq.heappush(events, (now[0] + latency, seq, outcome, latency))
        if now[0] >= next_sample:
            trace.limits.append((now[0], limit.limit))
            trace.in_flight.append((now[0], serving))
            next_sample += 0.1
        now[0] += step
    return limit, trace


def test_constant_error_fraction_keeps_the_limit_high() -> None:
    # 30 % 429 + 10 % 503 at random, whatever the load: cutting would only lose goodput.
    limit, trace = drive(Provider(error_fraction=0.4), seconds=120)
    assert trace.mean(trace.limits, since=60) >= 0.8 * MAX
    assert 0.3 < limit.tolerance < 0.5  # the controller learnt the background fraction


def test_constant_error_fraction_at_an_offered_rate_keeps_up() -> None:
    # 150 questions/s offered, 40 % of the calls fail and come back: 250 calls/s,
    # about 125 in flight. The limit must not stand in the way.
    _limit, trace = drive(Provider(error_fraction=0.4), seconds=120, offered=150)
    ok_per_s = trace.ok / 120
    assert ok_per_s >= 0.9 * 150


def test_constant_error_fraction_from_the_start_of_a_low_limit() -> None:
    _limit, trace = drive(Provider(error_fraction=0.3), seconds=120, initial=4)
    assert trace.mean(trace.limits, since=60) >= 0.8 * MAX


def test_refusals_above_capacity_settle_the_limit_near_it() -> None:
    capacity = 200
    _limit, trace = drive(Provider(capacity=capacity), seconds=120)
    mean = trace.mean(trace.in_flight, since=60)
    assert 0.75 * capacity <= mean <= 1.1 * capacity, mean
    assert trace.refused < 0.05 * trace.calls


def test_capacity_under_random_faults_still_settles_near_it() -> None:
    capacity = 150
    limit, trace = drive(Provider(capacity=capacity, error_fraction=0.2), seconds=180)
    mean = trace.mean(trace.in_flight, since=120)
    assert 0.75 * capacity <= mean <= 1.1 * capacity, (mean, limit.tolerance)
    assert trace.refused < 0.05 * trace.calls


def test_a_provider_that_slows_down_over_capacity_settles_the_limit_near_it() -> None:
    capacity = 100
    _limit, trace = drive(Provider(capacity=capacity, queue_over_capacity=True), seconds=120)
    mean = trace.mean(trace.limits, since=60)
    assert 0.75 * capacity <= mean <= 1.5 * capacity, mean


def test_latency_is_not_read_while_the_host_itself_lags() -> None:
    now = [0.0]
    limit = AdaptiveLimit(100, 4, MAX, clock=lambda: now[0])

    def window(latency: float) -> None:
        for _ in range(100):
            limit.started()
            now[0] += latency / 100
            limit.finished()
            limit.success(latency)

    for _ in range(5):
        window(LATENCY)
    start = limit.limit
    limit.host_lag = 0.2  # a loop 200 ms late: the host, not the provider, is slow
    for _ in range(5):
        window(3 * LATENCY)
    assert limit.cuts == 0
    assert limit.limit >= start
    limit.host_lag = 0.0
    for _ in range(3):
        window(3 * LATENCY)
    assert limit.cuts == 1


def test_tolerance_comes_down_when_the_faults_stop() -> None:
    limit, _trace = drive(Provider(error_fraction=0.4), seconds=60)
    assert limit.tolerance > 0.3
    now = [1000.0]
    limit.clock = lambda: now[0]
    limit.in_flight = 0
    for _ in range(60):  # 60 clean windows of 20 successes each
        for _ in range(20):
            limit.started()
            now[0] += LATENCY / 20
            limit.finished()
            limit.success(LATENCY)
    assert limit.tolerance < 0.01


def test_rate_limits_leave_the_limit_alone() -> None:
    now = [0.0]
    limit = AdaptiveLimit(64, 4, MAX, clock=lambda: now[0])
    for n in range(1000):
        now[0] = n * 0.01
        limit.rate_limited()
    assert limit.limit == 64
    assert limit.cuts == 0


def test_at_most_one_cut_per_round_trip() -> None:
    now = [0.0]
    limit = AdaptiveLimit(100, 4, MAX, clock=lambda: now[0])
    for n in range(20):  # one whole window of successes
        now[0] = 0.03 * n
        limit.success(LATENCY)
    for n in range(200):  # a burst of failures within one round trip
        now[0] = 0.6 + 0.001 * n
        limit.overload(LATENCY)
    assert limit.cuts == 1
    assert limit.limit == 80


def test_error_statistics() -> None:
    assert not excess_errors(40, 100, 0.4)  # just the background
    assert excess_errors(60, 100, 0.4)
    assert excess_errors(8, 100, 0.0)
    assert not excess_errors(3, 100, 0.0)


def test_errors_before_the_first_window_do_not_cascade() -> None:
    # A worker (re)started into a storm of errors: nothing is known yet to judge by.
    now = [0.0]
    limit = AdaptiveLimit(32, 4, MAX, clock=lambda: now[0])
    for n in range(9):
        now[0] = 0.001 * n
        limit.started()
        limit.finished()
        limit.overload(0.001)
    assert limit.cuts == 0
    assert limit.limit == 32
