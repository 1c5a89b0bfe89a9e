"""The log from the database into the pure core's streaming checks, without holding it in memory.

The checks (``verification.py``, ``checkpoint.write_export``) walk a plain, synchronous iterable of records,
which keeps them free of I/O and easy to test. The database is read
asynchronously. ``walk`` runs the core in a worker thread and feeds it chunks fetched on the event loop,
fetching the next chunk while the core hashes the current one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Generator, Iterable
from typing import TypeVar

Item = TypeVar("Item")
T = TypeVar("T")


async def walk(chunks: AsyncIterator[list[Item]], check: Callable[[Iterable[Item]], T]) -> T:
    """Run ``check`` over every record of ``chunks`` in a worker thread; return what it returns.

    ``check`` may stop early (at the first bad record): the chunk being fetched is awaited and the
    stream closed before this returns, so the caller's transaction is free again.
    """
    loop = asyncio.get_running_loop()

    async def next_chunk() -> list[Item] | None:
        return await anext(chunks, None)

    def records() -> Generator[Item, None, None]:
        pending = asyncio.run_coroutine_threadsafe(next_chunk(), loop)
        try:
            while (chunk := pending.result()) is not None:
                pending = asyncio.run_coroutine_threadsafe(next_chunk(), loop)
                yield from chunk
        finally:
            with contextlib.suppress(Exception):
                pending.result()

    def run() -> T:
        with contextlib.closing(records()) as feed:
            return check(feed)

    try:
        return await asyncio.to_thread(run)
    finally:
        if hasattr(chunks, "aclose"):
            await chunks.aclose()
