"""PostgreSQL for a service: a connection pool bound to the service's own schema, and its migrations.

Every service owns one schema and reads no other service's tables. Migrations are plain SQL files,
applied once each in name order inside a transaction that holds an advisory lock, so two instances
starting together cannot apply the same file twice.
"""

from __future__ import annotations

from pathlib import Path

import asyncpg
import structlog

log = structlog.get_logger(__name__)

RUNTIME_MIGRATIONS = Path(__file__).parent / "migrations"


async def create_pool(database_url: str, schema: str, *, size: int = 8) -> asyncpg.Pool:
    """A pool whose connections see the service's schema first on their search path."""
    await ensure_schema(database_url, schema)
    pool = await asyncpg.create_pool(
        database_url,
        min_size=1,
        max_size=size,
        server_settings={"search_path": schema, "application_name": schema},
    )
    assert pool is not None
    return pool


async def ensure_schema(database_url: str, schema: str) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    finally:
        await connection.close()


def migration_files(*folders: Path) -> list[tuple[str, str]]:
    """(name, sql) of every ``*.sql`` file, the runtime's first, each folder's in name order."""
    files: list[tuple[str, str]] = []
    for folder in folders:
        for path in sorted(folder.glob("*.sql")):
            files.append((f"{folder.parent.name}/{path.name}", path.read_text()))
    return files


async def migrate(pool: asyncpg.Pool, schema: str, service_migrations: Path) -> list[str]:
    """Apply the runtime's and the service's migrations not applied yet; return the names applied."""
    applied_now: list[str] = []
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"migrate:{schema}")
        await connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row["name"] for row in await connection.fetch("SELECT name FROM schema_migrations")}
        for name, sql in migration_files(RUNTIME_MIGRATIONS, service_migrations):
            if name in done:
                continue
            await connection.execute(sql)
            await connection.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
            applied_now.append(name)
    if applied_now:
        log.info("migrations applied", schema=schema, migrations=applied_now)
    return applied_now
