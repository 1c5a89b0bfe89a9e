"""A throwaway, migrated notifications database for the integration tests that call its handlers directly.

Each test module gets a database of its own with a random name (so concurrent runs never meet), migrated
like the running service, and dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from services.notifications import app as notifications_app
from services.runtime.database import create_pool, migrate

SERVER_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")
MIGRATIONS = Path(notifications_app.__file__).parent / "migrations"
SCHEMA = "notifications"
SOURCE = "/services/notifications"
TABLES = "notifications, outbox, inbox, cases, hosts, partner_consents, proposals, contacts, subscriptions"


@asynccontextmanager
async def notifications_database(label: str, *, connections: int = 6) -> AsyncIterator[asyncpg.Pool]:
    name = f"test_notifications_{label}_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(f"{SERVER_URL}/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        pool = await create_pool(f"{SERVER_URL}/{name}", SCHEMA, size=connections)
        try:
            await migrate(pool, SCHEMA, MIGRATIONS)
            yield pool
        finally:
            await pool.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def emptied(pool: asyncpg.Pool) -> asyncpg.Pool:
    """The same database with every table of the service empty, for a test that starts from nothing."""
    async with pool.acquire() as connection:
        await connection.execute(f"TRUNCATE {TABLES}")
    return pool
