"""What an LLM call passes before it is sent, and settles after: the run's budget and the
fleet's rate buckets (both in Redis, shared by every worker of the run).

A call reserves its estimated tokens (and their cost) against the budget, then waits
for its turn in the fleet's requests- and tokens-per-minute buckets; once answered (or
failed) the estimate is replaced by what it used. The provider's rate-limit headers
teach the fleet its limits, and a used-up limit holds the whole fleet until it refills.
"""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from qarun_workers.limits import Budget, FleetLimiter, Usage
from qarun_workers.llm_client import Completion, Pacing
from qarun_workers.settings import Settings


class CallGate:
    def __init__(self, settings: Settings, redis: Redis | None) -> None:
        self.llm = settings.llm
        if redis is None and (self.llm.requests_per_minute or self.llm.tokens_per_minute):
            raise ValueError("fleet-wide rate limits need Redis")
        # Also without configured limits: the provider's, learned from its headers.
        self.fleet = (
            FleetLimiter(
                redis, settings.run, self.llm.requests_per_minute, self.llm.tokens_per_minute
            )
            if redis
            else None
        )
        budget = settings.budget
        self.budget = (
            Budget(redis, settings.run, budget.max_tokens, budget.max_cost_usd) if redis else None
        )

    @property
    def exhausted(self) -> bool:
        """The budget is spent: no call may be sent any more."""
        return self.budget is not None and bool(self.budget.exhausted)

    async def admit(self, estimate: int) -> bool:
        """Reserve the budget and wait for the fleet's turn; False when the budget is spent.
        Cancelled while waiting for its turn (a revoke), the reservation is returned."""
        if self.budget is not None and not await self.budget.reserve(self.usage(estimate, 0)):
            return False
        if self.fleet is not None:
            try:
                await self.fleet.acquire(estimate)
            except asyncio.CancelledError:
                if self.budget is not None:
                    await self.budget.settle(self.usage(estimate, 0), self.usage(0, 0))
                raise
        return True

    async def settle(self, estimate: int, completion: Completion | None) -> None:
        """Replace the estimate by what the call used (nothing, for a failure)."""
        actual = (
            0 if completion is None else completion.prompt_tokens + completion.completion_tokens
        )
        prompt_tokens = 0 if completion is None else completion.prompt_tokens
        if self.fleet is not None:
            await self.fleet.settle(estimate, actual)
        if self.budget is not None:
            spent = self.usage(prompt_tokens, actual - prompt_tokens)
            await self.budget.settle(self.usage(estimate, 0), spent)

    async def paced(self, pacing: Pacing, wait: float) -> None:
        """The provider's rate-limit headers: its limits, and a used-up one holds the fleet
        for `wait`. A Retry-After alone delays only its own message (the retry tier):
        holding everyone for it would starve the fleet under a provider that refuses a
        fixed share of calls with one."""
        if self.fleet is None or not pacing.sent:
            return
        self.fleet.learn(pacing.limit_requests, pacing.limit_tokens)
        if pacing.exhausted and wait > 0:
            await self.fleet.hold(wait)

    def usage(self, prompt_tokens: int, completion_tokens: int) -> Usage:
        return Usage(prompt_tokens + completion_tokens, self.cost(prompt_tokens, completion_tokens))

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (
            prompt_tokens * self.llm.pricing.prompt_usd_per_million
            + completion_tokens * self.llm.pricing.completion_usd_per_million
        ) / 1e6
