"""A throwaway database for one service, migrated like the running service, for integration tests that
call its code directly on real connections.

Each database gets a random name (so concurrent runs never meet) and is dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from services.runtime.database import create_pool, migrate

SERVER_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")


@asynccontextmanager
async def service_database(label: str, schema: str, migrations: Path, *,
                           connections: int = 6) -> AsyncIterator[asyncpg.Pool]:
    name = f"test_{label}_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(f"{SERVER_URL}/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        pool = await create_pool(f"{SERVER_URL}/{name}", schema, size=connections)
        try:
            await migrate(pool, schema, migrations)
            yield pool
        finally:
            await pool.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
