"""Fleet-wide rate limits and the run budget, shared by all worker replicas in Redis.

Rate limits are two token buckets (requests and tokens per minute) refilled
continuously and taken together in one Lua script, with Redis's own clock so that
replicas' clocks do not matter. A bucket holds 0.5 % of its per-minute limit and
refills so that bucket plus refill stay 0.5 % under the limit in any 60 s window:
the margin absorbs network jitter, so the provider never counts more than its limit.
A token estimate may overdraw the bucket (a request larger than the bucket would
otherwise never fit); the debt is settled with the real count when the answer arrives.

The budget reserves each request's token and cost estimate before sending and
settles with the real usage after. A request whose estimate fits only once the calls
in flight have settled waits for them; once the estimate would pass the budget on
real usage alone, the reason is recorded under the run's budget key and no new
request is sent. Spending stays within the budget as long as estimates are upper
bounds (prompt characters / 3 + max_tokens).

The provider's own limits are learned from its headers (`qarun_workers.llm_client.
Pacing`): `x-ratelimit-limit-requests/-tokens` become the buckets' limits when lower
than the configured ones (or when none is configured), and a response that says a
limit is used up (`x-ratelimit-remaining-*` of 0) holds every worker of the run until
it takes a request again (Retry-After, or the time one request takes to refill), in
one Redis key. The fleet thus paces by rate
and the concurrency limit is left to overload (`qarun_workers.concurrency`). If Redis
is unreachable, learned limits are not applied (with a warning) rather than stopping
the worker: only configured limits need Redis.

Within one worker, one task at a time takes from the buckets while the others queue
on a local lock, so a waiting worker polls Redis once per wait, not once per request;
it takes for as many of the waiting tasks as half a bucket holds (their tokens
estimated as its own; each settles its own estimate), so that a worker's rate is not
bounded by its Redis round trips.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from qarun_core.keys import budget_key, limit_key

log = logging.getLogger(__name__)

TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local held = tonumber(redis.call('GET', KEYS[1]) or 0)
if held > now then return math.ceil(held - now) end
local wait = 0
local levels = {}
for i = 2, #KEYS do
  local rate = tonumber(ARGV[3 * i - 5])
  local capacity = tonumber(ARGV[3 * i - 4])
  local n = tonumber(ARGV[3 * i - 3])
  local state = redis.call('HMGET', KEYS[i], 'level', 'ts')
  local level = tonumber(state[1]) or capacity
  local ts = tonumber(state[2]) or now
  level = math.min(capacity, level + math.max(0, now - ts) * rate)
  levels[i] = level
  local need = math.min(n, capacity)
  if level < need then
    wait = math.max(wait, math.ceil((need - level) / rate))
  end
end
for i = 2, #KEYS do
  local level = levels[i]
  if wait == 0 then level = level - tonumber(ARGV[3 * i - 3]) end
  redis.call('HSET', KEYS[i], 'level', level, 'ts', now)
  redis.call('PEXPIRE', KEYS[i], 3600000)
end
return wait
"""

HOLD = """
local t = redis.call('TIME')
local until_ms = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000 + tonumber(ARGV[1])
if until_ms > tonumber(redis.call('GET', KEYS[1]) or 0) then
  redis.call('SET', KEYS[1], until_ms, 'PX', math.ceil(tonumber(ARGV[1])) + 1000)
end
return 1
"""

RESERVE = """
local max_tokens = tonumber(ARGV[1])
local max_cost = tonumber(ARGV[2])
local tokens = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'used_tokens', 'reserved_tokens', 'used_cost',
                         'reserved_cost', 'exhausted')
if state[5] then return state[5] end
local used_t = tonumber(state[1]) or 0
local used_c = tonumber(state[3]) or 0
if max_tokens > 0 and used_t + tokens > max_tokens then
  local why = 'token budget of ' .. ARGV[1] .. ' reached'
  redis.call('HSET', KEYS[1], 'exhausted', why)
  return why
end
if max_cost > 0 and used_c + cost > max_cost then
  local why = 'cost budget of ' .. ARGV[2] .. ' USD reached'
  redis.call('HSET', KEYS[1], 'exhausted', why)
  return why
end
-- Spent plus reserved would pass: wait for calls in flight to settle below their estimates.
if (max_tokens > 0 and used_t + (tonumber(state[2]) or 0) + tokens > max_tokens) or
   (max_cost > 0 and used_c + (tonumber(state[4]) or 0) + cost > max_cost) then
  return 'wait'
end
redis.call('HINCRBY', KEYS[1], 'reserved_tokens', tokens)
redis.call('HINCRBYFLOAT', KEYS[1], 'reserved_cost', cost)
return ''
"""

SETTLE = """
redis.call('HINCRBY', KEYS[1], 'reserved_tokens', -tonumber(ARGV[1]))
redis.call('HINCRBYFLOAT', KEYS[1], 'reserved_cost', -tonumber(ARGV[2]))
redis.call('HINCRBY', KEYS[1], 'used_tokens', tonumber(ARGV[3]))
redis.call('HINCRBYFLOAT', KEYS[1], 'used_cost', tonumber(ARGV[4]))
return 1
"""


WAIT = "wait"


def text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class Usage:
    tokens: int
    cost_usd: float


class FleetLimiter:
    """Requests- and tokens-per-minute buckets shared by every worker of a run, with the
    provider's limits as learned from its headers and its holds."""

    def __init__(self, redis: Redis, run: str, rpm: int, tpm: int) -> None:
        self.redis = redis
        self.run = run
        self.configured = {"rpm": rpm, "tpm": tpm}
        self.learned = {"rpm": 0, "tpm": 0}
        self.hold_key = limit_key(run, "hold")
        self.keys: list[str] = []
        self.rates: list[tuple[float, float, bool]] = []  # (per ms, capacity, counts tokens)
        self.paced = False  # the provider sent pacing: its holds are checked on every call
        self._take = redis.register_script(TAKE)
        self._hold = redis.register_script(HOLD)
        self._lock = asyncio.Lock()
        self._waiting = 0  # tasks in acquire()
        self._granted = 0  # requests taken from the buckets for waiting tasks
        self._off = False  # Redis was unreachable with nothing configured: learn no more
        self._build()

    def _build(self) -> None:
        self.keys, self.rates = [], []
        for name in ("rpm", "tpm"):
            limits = [n for n in (self.configured[name], self.learned[name]) if n > 0]
            if limits:
                limit = min(limits)
                self.keys.append(limit_key(self.run, name))
                capacity = max(1.0, limit / 200)
                refill = (limit * 0.995 - capacity) / 60_000  # per ms
                self.rates.append((refill, capacity, name == "tpm"))

    @property
    def active(self) -> bool:
        return (bool(self.keys) or self.paced) and not self._off

    @property
    def learning_only(self) -> bool:
        return not any(self.configured.values())

    def learn(self, rpm: int, tpm: int) -> None:
        """The provider's limits from `x-ratelimit-limit-*` (0 = not sent)."""
        learned = {"rpm": rpm or self.learned["rpm"], "tpm": tpm or self.learned["tpm"]}
        if learned != self.learned and not self._off:
            log.info("provider limits: %d requests, %d tokens a minute", rpm, tpm)
            self.learned = learned
            self.paced = True
            self._build()

    async def hold(self, seconds: float) -> None:
        """Hold every worker of the run for `seconds`, as the provider asked."""
        if self._off:
            return
        self.paced = True
        try:
            await self._hold(keys=[self.hold_key], args=[seconds * 1000])
        except RedisError as error:
            self._unreachable(error)

    async def acquire(self, tokens: int) -> None:
        """Wait until one request of about `tokens` tokens may be sent."""
        if not self.active:
            return
        self._waiting += 1
        try:
            async with self._lock:
                if self._granted > 0:  # taken from Redis by the task before this one
                    self._granted -= 1
                    return
                await self._take_for(min(self._waiting, self._batch(tokens)), tokens)
        finally:
            self._waiting -= 1

    def _batch(self, tokens: int) -> int:
        """Requests taken in one call for the tasks waiting: a few, up to half a bucket.
        One call each would bound a worker's rate by its Redis round trips, which a
        busy host makes long."""
        sizes = [capacity / (tokens if counts else 1) / 2 for _, capacity, counts in self.rates]
        return max(1, min(32, int(min(sizes, default=1))))

    async def _take_for(self, batch: int, tokens: int) -> None:
        args: list[float] = []
        for rate, capacity, counts_tokens in self.rates:
            args += [rate, capacity, (tokens if counts_tokens else 1) * batch]
        while True:
            try:
                wait_ms = int(await self._take(keys=[self.hold_key, *self.keys], args=args))
            except RedisError as error:
                if not self.learning_only:
                    raise
                self._unreachable(error)
                return
            if wait_ms == 0:
                self._granted = batch - 1
                return
            await asyncio.sleep(wait_ms / 1000)

    async def settle(self, estimated: int, actual: int) -> None:
        """Give back (or take) the difference between the token estimate and the real count."""
        tpm = limit_key(self.run, "tpm")
        if tpm in self.keys and actual != estimated:
            try:
                await self.redis.hincrbyfloat(tpm, "level", estimated - actual)
            except RedisError as error:
                if not self.learning_only:
                    raise
                self._unreachable(error)

    def _unreachable(self, error: RedisError) -> None:
        self._off, self.paced, self.learned = True, False, {"rpm": 0, "tpm": 0}
        self._build()
        log.warning("Redis unreachable (%s): the provider's limits are not paced", error)


class Budget:
    """The run's token and cost budget; 0 means unlimited."""

    def __init__(self, redis: Redis, run: str, max_tokens: int, max_cost_usd: float) -> None:
        self.redis = redis
        self.key = budget_key(run)
        self.max_tokens = max_tokens
        self.max_cost = max_cost_usd
        self._reserve = redis.register_script(RESERVE)
        self._settle = redis.register_script(SETTLE)
        self.exhausted: str = ""

    @property
    def active(self) -> bool:
        return self.max_tokens > 0 or self.max_cost > 0

    async def reserve(self, estimate: Usage) -> bool:
        """Reserve an estimate; False (and `exhausted` says why) when it would pass the budget."""
        if not self.active:
            return True
        args = [self.max_tokens, self.max_cost, estimate.tokens, estimate.cost_usd]
        why = WAIT
        for delay in itertools.repeat(0.05):  # the settling happens in other replicas too
            why = text(await self._reserve(keys=[self.key], args=args))
            if why != WAIT:
                break
            await asyncio.sleep(delay)
        if why and not self.exhausted:
            self.exhausted = why
            log.warning("budget exhausted: %s; no new request is sent", why)
        return not why

    async def settle(self, estimate: Usage, actual: Usage) -> None:
        if self.active:
            args = [estimate.tokens, estimate.cost_usd, actual.tokens, actual.cost_usd]
            await self._settle(keys=[self.key], args=args)
