"""How service processes run: on uvloop, with the start-up heap frozen."""

from __future__ import annotations

import asyncio
import gc

import uvloop

from qarun_workers.runtime import YOUNG_THRESHOLD, run_async, settle_heap


def test_run_async_runs_on_uvloop_and_returns_the_result() -> None:
    async def loop_kind() -> type:
        await asyncio.sleep(0)
        return type(asyncio.get_running_loop())

    assert run_async(loop_kind()) is uvloop.Loop


def test_settle_heap_freezes_what_is_loaded_and_still_collects_new_garbage() -> None:
    default = gc.get_threshold()
    try:
        settle_heap()
        assert gc.get_freeze_count() > 10_000  # modules, classes, schemas
        assert gc.get_threshold() == (YOUNG_THRESHOLD, *default[1:])

        class Node:
            def __init__(self) -> None:
                self.me = self

        Node()  # a reference cycle made after the freeze
        assert gc.collect() >= 1  # still found and freed
    finally:
        gc.unfreeze()
        gc.set_threshold(*default)
