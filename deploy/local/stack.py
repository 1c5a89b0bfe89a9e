"""The whole local centre in one ``async with``: database, broker with the centre's topics, and the services.

Parts start in the order they are needed and stop in reverse, so no service outlives the broker or the
database it talks to. If stopping is itself interrupted (a second Ctrl-C), every child is killed at once
rather than left behind.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from deploy.local.broker import KafkaEndpoint, kafka
from deploy.local.database import fresh_database
from deploy.local.processes import (
    ChildProcess,
    Report,
    ServiceProcesses,
    ServiceSpec,
    centre_service_specs,
    print_progress,
)
from schemas.topics import PARTITIONS

CENTRE_DATABASE = "matching_centre"

# Settings (services.runtime.settings) for a centre on one machine. The local broker lets a consumer join
# its group only after about half the session timeout, 3 s at the services' default of 6 s; the outbox
# relay's 1 s poll would add up over a chain of services. Heartbeats every 0.5 s keep a 3 s session safe.
LOCAL_TUNING: Mapping[str, str] = {
    "KAFKA_SESSION_TIMEOUT_MS": "3000",
    "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
    "OUTBOX_POLL_INTERVAL_S": "0.2",
}

T = TypeVar("T")


def default_state_dir() -> Path:
    """``.centre`` in the working directory: the README's commands run from the project's root."""
    return Path.cwd() / ".centre"


def throwaway_database_name() -> str:
    """A database name no other test run uses at the same time."""
    return f"mc_test_{uuid.uuid4().hex[:12]}"


class LocalStack:
    """Broker, database and services of the centre on this machine, for ``up``, the surge and the tests.

    ``services`` defaults to the five real services; a test passes stand-ins. ``extra_env`` reaches every
    service on top of the addresses of the broker and the database; it defaults to ``LOCAL_TUNING``.
    """

    def __init__(self, services: Sequence[ServiceSpec] | None = None, *, database_name: str = CENTRE_DATABASE,
                 drop_database_on_exit: bool = False, state_dir: Path | None = None,
                 extra_env: Mapping[str, str] | None = None, partitions: Mapping[str, int] = PARTITIONS,
                 environ: Mapping[str, str] = os.environ, force_embedded_postgres: bool | None = None,
                 service_ready_timeout: float = 60.0, report: Report = print_progress) -> None:
        self.service_specs = list(centre_service_specs() if services is None else services)
        self.database_name = database_name
        self.drop_database_on_exit = drop_database_on_exit
        self.state_dir = state_dir or default_state_dir()
        self.extra_env = dict(LOCAL_TUNING if extra_env is None else extra_env)
        self.partitions = dict(partitions)
        self.environ = environ
        self.force_embedded_postgres = force_embedded_postgres
        self.service_ready_timeout = service_ready_timeout
        self.report = report
        self._parts = contextlib.AsyncExitStack()
        self._kafka: KafkaEndpoint | None = None
        self._database_url: str | None = None
        self._services: ServiceProcesses | None = None

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def bootstrap_servers(self) -> str:
        return self._started(self._kafka).bootstrap_servers

    @property
    def database_url(self) -> str:
        return self._started(self._database_url)

    @property
    def services(self) -> ServiceProcesses:
        """The running services: ``signal(name, SIGKILL)``, ``restart(name)``, ``pid(name)``."""
        return self._started(self._services)

    @property
    def broker_process(self) -> ChildProcess | None:
        """The broker's process when this stack started one; None when it uses an existing cluster."""
        broker = self._started(self._kafka).broker
        return broker.process if broker is not None else None

    def service_url(self, name: str) -> str:
        return self.services.url(name)

    def service_urls(self) -> dict[str, str]:
        return {name: self.services.url(name) for name in self.services.specs}

    async def __aenter__(self) -> LocalStack:
        began = time.monotonic()
        try:
            await self._start_parts()
        except BaseException:
            await self._stop_parts()
            raise
        self.report(f"the centre is up ({time.monotonic() - began:.1f} s); logs in {self.log_dir}")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        traceback: TracebackType | None) -> None:
        await self._stop_parts()

    async def _start_parts(self) -> None:
        self._database_url = await self._parts.enter_async_context(fresh_database(
            self.database_name, self.state_dir / "pgdata", drop_on_exit=self.drop_database_on_exit,
            environ=self.environ, force_embedded=self.force_embedded_postgres, report=self.report))
        self._kafka = await self._parts.enter_async_context(
            kafka(self.log_dir, partitions=self.partitions, environ=self.environ, report=self.report))
        self._services = ServiceProcesses(
            self.service_specs, bootstrap_servers=self._kafka.bootstrap_servers, database_url=self._database_url,
            log_dir=self.log_dir, extra_env=self.extra_env, ready_timeout=self.service_ready_timeout,
            report=self.report)
        self._parts.push_async_callback(self._stop_services)
        await self._services.start_all()

    async def _stop_services(self) -> None:
        assert self._services is not None
        began = time.monotonic()
        await self._services.stop_all()
        if self._services.children:
            self.report(f"services stopped ({time.monotonic() - began:.1f} s)")

    async def _stop_parts(self) -> None:
        try:
            await self._parts.aclose()
        except BaseException:
            self.kill_everything_now()
            raise
        self.report("stopped")

    def kill_everything_now(self) -> None:
        """SIGKILL to every child process group, without waiting: for a shutdown that was interrupted."""
        if self._services is not None:
            self._services.kill_all_now()
        if self._kafka is not None and self._kafka.broker is not None:
            self._kafka.broker.process.kill_now()

    def _started(self, part: T | None) -> T:
        if part is None:
            raise RuntimeError("the local stack is not running: use it inside `async with LocalStack(...)`")
        return part
