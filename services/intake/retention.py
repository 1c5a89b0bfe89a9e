"""Erase the cases whose retention period has ended, once, from the command line.

    python -m services.intake.retention --days 365           # erase cases closed more than a year ago
    python -m services.intake.retention --days 365 --dry-run # only count them

A case is closed when it is withdrawn at intake or placed (``PlacementConfirmed``). Erasing deletes the
case's key (crypto-shredding) and records ``CaseWithdrawn`` where needed and ``CaseErased`` in intake's
outbox, in one transaction per run; the running intake service's relay publishes them. The intake service
runs the same sweep on a timer when ``INTAKE_RETENTION_DAYS`` is set (``services/intake/app.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime, timedelta

import asyncpg

from services.intake import handlers, store
from services.intake.settings import intake_settings

SOURCE = "/services/intake"


async def sweep_once(database_url: str, retention: timedelta, *, now: datetime | None = None, limit: int = 1000,
                     dry_run: bool = False) -> list[str]:
    """Erase (or, dry, only find) the cases closed longer than ``retention`` before ``now``; return their ids."""
    connection = await asyncpg.connect(database_url, server_settings={"search_path": "intake"})
    try:
        async with connection.transaction():
            moment = now or datetime.now(UTC)
            if dry_run:
                return await store.cases_due_for_erasure(connection, moment - retention, limit)
            return await handlers.erase_due_cases(connection, retention=retention, now=moment, source=SOURCE,
                                                  limit=limit)
    finally:
        await connection.close()


def main(argv: list[str] | None = None) -> int:
    settings = intake_settings()
    parser = argparse.ArgumentParser(prog="python -m services.intake.retention", description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=settings.intake_retention_days,
                        help="retention period in days after a case closed (default: INTAKE_RETENTION_DAYS)")
    parser.add_argument("--limit", type=int, default=1000, help="erase at most this many cases in one run")
    parser.add_argument("--dry-run", action="store_true", help="count the cases due, erase nothing")
    arguments = parser.parse_args(argv)
    if arguments.days is None or arguments.days < 1:
        parser.error("give --days (at least 1) or set INTAKE_RETENTION_DAYS")
    due = asyncio.run(sweep_once(settings.database_url, timedelta(days=arguments.days), limit=arguments.limit,
                                 dry_run=arguments.dry_run))
    print(f"{len(due)} case(s) {'due for erasure' if arguments.dry_run else 'erased'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
