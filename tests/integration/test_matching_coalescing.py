"""Coalescing against the real PostgreSQL: when a dirty pool is due for a solve, and what a solve clears.

A pool is due once its events have paused for the quiet time, or once it has been dirty for the whole
window however often it is marked; a solve clears only the mark it answered. The marks' timestamps are
set in the database, so no test waits on the clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from services.matching import app as matching_app
from services.matching import store
from tests.integration.service_database import service_database

pytestmark = pytest.mark.integration

#: the service's are 0.2 s and 1 s; the rule is the same at any scale, and at this one a test that the
#: machine stalls between two statements cannot see a pool fall due on its own
QUIET_S, WINDOW_S = 60.0, 300.0


@pytest.fixture(scope="module")
async def database() -> AsyncIterator[asyncpg.Pool]:
    migrations = Path(matching_app.__file__).parent / "migrations"
    async with service_database("matching_coalescing", "matching", migrations, connections=2) as pool:
        yield pool


@pytest.fixture
async def connection(database: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    async with database.acquire() as connection:
        await connection.execute("TRUNCATE dirty_pools")
        yield connection


async def age(connection: asyncpg.Connection, pool_id: str, *, last_mark_s: float, dirty_s: float) -> None:
    """Make the pool's last mark ``last_mark_s`` seconds old and its dirtiness ``dirty_s`` seconds old."""
    await connection.execute(
        "UPDATE dirty_pools SET marked_at = clock_timestamp() - make_interval(secs => $2),"
        " dirty_since = clock_timestamp() - make_interval(secs => $3) WHERE pool_id = $1",
        pool_id, last_mark_s, dirty_s)


async def due(connection: asyncpg.Connection) -> list[str]:
    return [row["pool_id"] for row in await store.due_pools(connection, QUIET_S, WINDOW_S)]


async def test_a_single_update_is_due_once_the_quiet_time_has_passed(connection: asyncpg.Connection) -> None:
    await store.mark_dirty(connection, "pool-a")
    assert await due(connection) == []  # just marked: more events may follow
    await age(connection, "pool-a", last_mark_s=70.0, dirty_s=70.0)
    assert await due(connection) == ["pool-a"]


async def test_a_steady_stream_is_due_once_per_window(connection: asyncpg.Connection) -> None:
    await store.mark_dirty(connection, "pool-a")
    await age(connection, "pool-a", last_mark_s=10.0, dirty_s=290.0)
    await store.mark_dirty(connection, "pool-a")  # a new mark renews the quiet time, not the window
    assert await due(connection) == []
    await age(connection, "pool-a", last_mark_s=10.0, dirty_s=310.0)
    assert await due(connection) == ["pool-a"]


async def test_due_pools_come_longest_waiting_first(connection: asyncpg.Connection) -> None:
    for pool_id, dirty_s in (("pool-a", 100.0), ("pool-b", 400.0), ("pool-c", 200.0)):
        await store.mark_dirty(connection, pool_id)
        await age(connection, pool_id, last_mark_s=70.0, dirty_s=dirty_s)
    assert await due(connection) == ["pool-b", "pool-c", "pool-a"]


async def test_a_solve_clears_the_mark_it_answered(connection: asyncpg.Connection) -> None:
    await store.mark_dirty(connection, "pool-a")
    marked_at = await connection.fetchval("SELECT marked_at FROM dirty_pools WHERE pool_id = 'pool-a'")
    await store.clear_dirty(connection, "pool-a", marked_at)
    assert await connection.fetchval("SELECT count(*) FROM dirty_pools") == 0


async def test_a_mark_during_the_solve_stays_and_its_window_starts_again(connection: asyncpg.Connection) -> None:
    await store.mark_dirty(connection, "pool-a")
    await age(connection, "pool-a", last_mark_s=400.0, dirty_s=400.0)
    answered = await connection.fetchval("SELECT marked_at FROM dirty_pools WHERE pool_id = 'pool-a'")
    await store.mark_dirty(connection, "pool-a")  # an event while the solve ran
    await store.clear_dirty(connection, "pool-a", answered)
    assert await connection.fetchval("SELECT count(*) FROM dirty_pools") == 1
    assert await due(connection) == []  # neither quiet yet nor a window since the solve
    await age(connection, "pool-a", last_mark_s=70.0, dirty_s=70.0)
    assert await due(connection) == ["pool-a"]
