"""The centre's services as OS processes of their own, as they run in production: one process per service.

Each child is the leader of a process group of its own. That has two reasons: a terminal's Ctrl-C reaches
only the stack, which then stops the parts in order (services before the broker and the database they
need), and a signal sent to the group reaches whatever the child started itself, so no grandchild outlives
a stopped or killed service.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

CENTRE_SERVICE_NAMES: tuple[str, ...] = ("intake", "matching", "consent", "audit", "notifications")

# uvicorn in the services allows 10 s for a graceful shutdown; SIGKILL comes only after that.
GRACEFUL_STOP_TIMEOUT_S = 15.0

Report = Callable[[str], None]


def print_progress(line: str) -> None:
    """The default progress report: a line on stdout, flushed, so it shows at once even through a pipe."""
    print(line, flush=True)


class ProcessStartError(RuntimeError):
    """A child did not start or become ready; the message carries the tail of its log."""


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now.

    The port is released before the child binds it, so another process could take it in between; on a
    developer's machine or a CI runner that race is rare enough, and the child then fails loudly.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# Process groups still running. The stack stops them in order; this is the last resort when the interpreter
# exits without that (an unhandled error, a second Ctrl-C during shutdown).
_running_groups: set[int] = set()


def _kill_running_groups() -> None:
    for group in list(_running_groups):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)
        _running_groups.discard(group)


atexit.register(_kill_running_groups)


class ChildProcess:
    """One command running as the leader of its own process group, its output appended to a log file."""

    def __init__(self, name: str, command: Sequence[str], *, log_path: Path,
                 env: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.command = tuple(command)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self._process: asyncio.subprocess.Process | None = None
        self._log_start_offset = 0

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    @property
    def returncode(self) -> int | None:
        return self._process.returncode if self._process is not None else None

    async def start(self) -> None:
        """Spawn the command; its output goes to the log, after a line that marks where this run begins."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            # Logs are appended across runs; a tail shown in an error must come from this run only.
            self._log_start_offset = log.tell()
            started = datetime.now(UTC).isoformat(timespec="seconds")
            log.write(f"----- {started} starting {self.name}: {' '.join(self.command)}\n".encode())
            log.flush()
            self._process = await asyncio.create_subprocess_exec(
                *self.command, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT,
                env=self.env, start_new_session=True,
            )
        _running_groups.add(self._process.pid)

    def send_signal(self, sig: int) -> None:
        """Signal the whole process group, so that whatever the child started gets the signal too."""
        if self._process is None:
            raise RuntimeError(f"{self.name} was never started")
        # Once the group has been swept its id is free again: a signal must not reach some later process.
        if self._process.pid in _running_groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, sig)

    async def wait(self, within: float | None = None) -> int:
        """The exit code, once the child has exited; TimeoutError when it is still running at the deadline."""
        if self._process is None:
            raise RuntimeError(f"{self.name} was never started")
        returncode = await asyncio.wait_for(self._process.wait(), within)
        self._forget_group()
        return returncode

    async def stop(self, grace_period: float = GRACEFUL_STOP_TIMEOUT_S) -> int | None:
        """SIGTERM to the group, SIGKILL when it has not exited by the deadline; the exit code, if it ran."""
        if self._process is None:
            return None
        if self.running:
            self.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self._process.wait(), grace_period)
            except TimeoutError:
                self.send_signal(signal.SIGKILL)
                await self._process.wait()
        self._forget_group()
        return self._process.returncode

    def kill_now(self) -> None:
        """SIGKILL without waiting: for a shutdown that is itself being interrupted."""
        if self._process is not None:
            self.send_signal(signal.SIGKILL)

    def _forget_group(self) -> None:
        # The leader has exited; a grandchild that ignored SIGTERM must not live on in the group.
        assert self._process is not None
        self.send_signal(signal.SIGKILL)
        _running_groups.discard(self._process.pid)

    def log_tail(self, lines: int = 30) -> str:
        """The last lines this run wrote to its log."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._log_start_offset)
                text = log.read().decode(errors="replace")
        except FileNotFoundError:
            return "(no log written)"
        return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"

    def failure(self, what: str) -> ProcessStartError:
        """An error that says what went wrong and shows the child's own last words."""
        if self.returncode is None:
            exit_note = ""
        elif self.returncode < 0:
            exit_note = f" (killed by {signal.Signals(-self.returncode).name})"
        else:
            exit_note = f" (exit code {self.returncode})"
        return ProcessStartError(
            f"{self.name} {what}{exit_note}; last lines of {self.log_path}:\n{self.log_tail()}"
        )


@dataclass(frozen=True)
class ServiceSpec:
    """How to run one service: a stand-in for a test is just another command."""

    name: str
    command: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    health_path: str = "/health"


def centre_service_specs(python: str = sys.executable) -> list[ServiceSpec]:
    """The five services of the centre, each ``python -m services.<name>``."""
    return [ServiceSpec(name, (python, "-m", f"services.{name}")) for name in CENTRE_SERVICE_NAMES]


async def wait_until_healthy(child: ChildProcess, url: str, *, within: float) -> None:
    """Poll the health URL until it answers 200; fail early, with the log tail, when the child exits."""
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=2.0) as http:
        while True:
            if not child.running:
                raise child.failure("exited before it answered its health check")
            try:
                if (await http.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                raise child.failure(f"did not answer 200 at {url} within {within:.0f} s")
            await asyncio.sleep(0.1)


class ServiceProcesses:
    """The services of one stack: started together, each on its own loopback port, stopped together."""

    def __init__(self, specs: Sequence[ServiceSpec], *, bootstrap_servers: str, database_url: str,
                 log_dir: Path, extra_env: Mapping[str, str] | None = None, ready_timeout: float = 60.0,
                 report: Report = print_progress) -> None:
        names = [spec.name for spec in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"service names must be unique: {names}")
        self.specs = {spec.name: spec for spec in specs}
        self.bootstrap_servers = bootstrap_servers
        self.database_url = database_url
        self.log_dir = log_dir
        self.extra_env = dict(extra_env or {})
        self.ready_timeout = ready_timeout
        self.report = report
        # A port is kept across restarts, so a URL handed out once stays valid.
        self.ports = {name: free_loopback_port() for name in self.specs}
        self.children: dict[str, ChildProcess] = {}

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[self._known(name)]}"

    def pid(self, name: str) -> int | None:
        child = self.children.get(self._known(name))
        return child.pid if child is not None else None

    def environment(self, name: str) -> dict[str, str]:
        """What the service reads from its environment (services.runtime.settings)."""
        return {
            **os.environ,
            "PYTHONUNBUFFERED": "1",  # so a log tail shows the last words of a process that dies
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "DATABASE_URL": self.database_url,
            "SERVICE_NAME": name,
            "HTTP_PORT": str(self.ports[name]),
            **self.extra_env,
            **self.specs[name].env,
        }

    async def start_all(self) -> None:
        """Start every service at once and wait until each answers its health check."""
        tasks = [asyncio.create_task(self.start(name)) for name in self.specs]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            # On the first failure, or when the whole start is cancelled (Ctrl-C), the others stop waiting too.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            if (error := task.exception()) is not None:
                raise error

    async def start(self, name: str) -> None:
        spec = self.specs[self._known(name)]
        child = ChildProcess(name, spec.command, log_path=self.log_dir / f"{name}.log", env=self.environment(name))
        self.children[name] = child
        began = time.monotonic()
        await child.start()
        await wait_until_healthy(child, f"{self.url(name)}{spec.health_path}", within=self.ready_timeout)
        self.report(f"{name} listening on {self.url(name)} ({time.monotonic() - began:.1f} s)")

    def signal(self, name: str, sig: int) -> None:
        """Send a signal to a service and everything it started, e.g. SIGKILL to test crash recovery."""
        child = self.children.get(self._known(name))
        if child is None:
            raise RuntimeError(f"{name} was never started")
        child.send_signal(sig)

    async def wait_for_exit(self, name: str, *, within: float = 10.0) -> int:
        """The service's exit code once it has exited, e.g. after ``signal(name, SIGKILL)``."""
        child = self.children.get(self._known(name))
        if child is None:
            raise RuntimeError(f"{name} was never started")
        return await child.wait(within)

    async def restart(self, name: str, *, grace_period: float = GRACEFUL_STOP_TIMEOUT_S) -> None:
        """Stop the service if it still runs (gracefully), start it again on the same port, wait until healthy."""
        child = self.children.get(self._known(name))
        if child is not None:
            await child.stop(grace_period)
        await self.start(name)

    async def wait_for_any_exit(self) -> ChildProcess:
        """The first service whose process exits: a running stack should never see this."""
        waits = {asyncio.create_task(child.wait()): child for child in self.children.values() if child.running}
        if not waits:
            await asyncio.Future()  # nothing runs that could exit: wait until cancelled
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
        return waits[done.pop()]

    async def stop_all(self, grace_period: float = GRACEFUL_STOP_TIMEOUT_S) -> None:
        """Stop every service at once; each gets SIGTERM, then SIGKILL after ``grace_period``."""
        await asyncio.gather(*(child.stop(grace_period) for child in self.children.values()))

    def kill_all_now(self) -> None:
        for child in self.children.values():
            child.kill_now()

    def _known(self, name: str) -> str:
        if name not in self.specs:
            raise KeyError(f"no service called {name!r}; this stack runs {', '.join(self.specs)}")
        return name
