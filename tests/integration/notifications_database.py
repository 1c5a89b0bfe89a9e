"""A throwaway, migrated notifications database for the integration tests that call its handlers directly.

Each test module gets a database of its own with a random name (so concurrent runs never meet), migrated
like the running service, and dropped afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from services.notifications import app as notifications_app
from tests.integration.service_database import service_database

MIGRATIONS = Path(notifications_app.__file__).parent / "migrations"
SCHEMA = "notifications"
SOURCE = "/services/notifications"
TABLES = "notifications, outbox, inbox, cases, hosts, partner_consents, proposals, contacts, subscriptions"


@asynccontextmanager
async def notifications_database(label: str, *, connections: int = 6) -> AsyncIterator[asyncpg.Pool]:
    async with service_database(f"notifications_{label}", SCHEMA, MIGRATIONS, connections=connections) as pool:
        yield pool


async def emptied(pool: asyncpg.Pool) -> asyncpg.Pool:
    """The same database with every table of the service empty, for a test that starts from nothing."""
    async with pool.acquire() as connection:
        await connection.execute(f"TRUNCATE {TABLES}")
    return pool
