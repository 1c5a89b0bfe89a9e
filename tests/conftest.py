"""Fixtures shared by the suite. ``centre`` is the real thing: a broker, PostgreSQL and the five services
as separate processes, started once per test session on a throwaway database.

If any part fails to start, the fixture raises with that part's log tail: the suite fails loudly, it never
skips what it could not start.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from deploy.local.stack import LOCAL_TUNING, LocalStack, throwaway_database_name
from tests.e2e.centre import Centre


@pytest.fixture(scope="session")
async def centre(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Centre]:
    state_dir: Path = tmp_path_factory.mktemp("centre")
    async with LocalStack(database_name=throwaway_database_name(), drop_database_on_exit=True,
                          state_dir=state_dir, extra_env=LOCAL_TUNING) as stack:
        running = Centre(stack.service_urls(), stack.bootstrap_servers, stack.database_url, stack)
        try:
            yield running
        finally:
            await running.close()
