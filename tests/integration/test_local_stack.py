"""The local stack against the real parts: the Tansu broker, PostgreSQL, and services as OS processes.

The services are a stand-in written below (a tiny HTTP server that also starts a grandchild process),
so that these tests say whether the stack works, not whether the centre's services do. Every wait has a
deadline; a part that does not start fails the test with its log tail, it is never skipped.
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from deploy.local.database import database_url as database_url_for
from deploy.local.database import open_database_server
from deploy.local.processes import ProcessStartError, ServiceSpec
from deploy.local.stack import LocalStack, throwaway_database_name
from schemas import topics
from tests.e2e.centre import eventually

pytestmark = pytest.mark.integration

PROJECT_ROOT = Path(__file__).resolve().parents[2]

STAND_IN_SERVICE = """
import http.server, json, os, subprocess, sys

# A grandchild of the stack: it must die with the service, however the service dies.
grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])


class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        names = ("SERVICE_NAME", "KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "HTTP_PORT", "STAND_IN_GREETING")
        body = json.dumps({"pid": os.getpid(), "grandchild": grandchild.pid,
                           "env": {name: os.environ.get(name) for name in names}}).encode()
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


print("stand-in", os.environ["SERVICE_NAME"], "starting", flush=True)
http.server.HTTPServer(("127.0.0.1", int(os.environ["HTTP_PORT"])), Health).serve_forever()
"""

BROKEN_SERVICE = """
import sys
print("cannot start: the widget registry is missing", file=sys.stderr)
sys.exit(3)
"""


def stand_in(name: str, script: Path) -> ServiceSpec:
    return ServiceSpec(name, (sys.executable, str(script)))


@pytest.fixture(scope="module")
def stand_in_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    script = tmp_path_factory.mktemp("stand-ins") / "stand_in_service.py"
    script.write_text(STAND_IN_SERVICE)
    return script


@pytest_asyncio.fixture(scope="module")
async def stack(stand_in_script: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalStack]:
    specs = [stand_in("intake", stand_in_script), stand_in("audit", stand_in_script)]
    async with LocalStack(specs, database_name=throwaway_database_name(), drop_database_on_exit=True,
                          state_dir=tmp_path_factory.mktemp("centre"),
                          extra_env={"STAND_IN_GREETING": "hello"}) as running:
        yield running


def as_async(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def checked() -> bool:
        return check()

    return checked


def process_state(pid: int) -> str | None:
    """The state letter from /proc (R, S, Z, ...), or None when no such process exists."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rpartition(")")[2].split()[0]


def gone(pid: int) -> bool:
    # A zombie has exited; only its parent's (or init's) bookkeeping is left.
    return process_state(pid) in (None, "Z")


def live_children_of(parent: int) -> set[int]:
    children = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(fields[1]) == parent and fields[0] != "Z":
                children.add(int(entry.name))
    return children


async def health(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=5) as http:
        response = await http.get(f"{url}/health")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_topics_exist_with_their_partition_counts(stack: LocalStack) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics.PARTITIONS))
    finally:
        await admin.close()
    assert {topic["topic"]: len(topic["partitions"]) for topic in described} == topics.PARTITIONS


async def test_a_message_goes_through_the_broker(stack: LocalStack) -> None:
    key, value = f"case-{uuid.uuid4()}".encode(), b'{"hello": "broker"}'
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap_servers, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topics.CASES, value, key=key)
    finally:
        await producer.stop()

    # A short session timeout: the local broker takes about half of it to let a consumer join.
    consumer = AIOKafkaConsumer(topics.CASES, bootstrap_servers=stack.bootstrap_servers,
                                group_id=f"test-{uuid.uuid4()}", auto_offset_reset="earliest",
                                session_timeout_ms=2000, heartbeat_interval_ms=500)
    await consumer.start()
    try:
        received = await asyncio.wait_for(consumer.getone(), 20)
    finally:
        await asyncio.wait_for(consumer.stop(), 10)
    assert (received.key, received.value) == (key, value)


async def test_the_database_is_fresh_and_reachable(stack: LocalStack) -> None:
    connection = await asyncpg.connect(stack.database_url)
    try:
        tables = await connection.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', "
            "'information_schema')")
        database = await connection.fetchval("SELECT current_database()")
    finally:
        await connection.close()
    assert tables == 0
    assert database == stack.database_name


async def test_each_service_answers_with_the_stack_in_its_environment(stack: LocalStack) -> None:
    for name in ("intake", "audit"):
        url = stack.service_url(name)
        answer = await health(url)
        assert answer["env"] == {
            "SERVICE_NAME": name,
            "KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap_servers,
            "DATABASE_URL": stack.database_url,
            "HTTP_PORT": url.rpartition(":")[2],
            "STAND_IN_GREETING": "hello",
        }


async def test_a_killed_service_takes_its_grandchildren_along_and_restarts(stack: LocalStack) -> None:
    before = await health(stack.service_url("intake"))

    stack.services.signal("intake", signal.SIGKILL)
    assert await stack.services.wait_for_exit("intake", within=10) == -signal.SIGKILL
    await eventually(as_async(lambda: gone(before["grandchild"])), within=10,
                     what="the grandchild to die with its service")

    await stack.services.restart("intake")
    after = await health(stack.service_url("intake"))
    assert after["pid"] == stack.services.pid("intake") != before["pid"]
    assert not gone(after["grandchild"])
    assert (await health(stack.service_url("audit")))["pid"] == stack.services.pid("audit")


async def test_nothing_outlives_the_stack(stand_in_script: Path, tmp_path: Path) -> None:
    children_before = live_children_of(os.getpid())
    async with LocalStack([stand_in("intake", stand_in_script)], database_name=throwaway_database_name(),
                          drop_database_on_exit=True, state_dir=tmp_path) as stack:
        service = await health(stack.service_url("intake"))
        broker = stack.broker_process
        started = [service["pid"], service["grandchild"]] + ([broker.pid] if broker and broker.pid else [])
        database_name, database_url = stack.database_name, stack.database_url

    for pid in started:
        await eventually(as_async(functools.partial(gone, pid)), within=5, what=f"process {pid} to be gone")
    assert live_children_of(os.getpid()) - children_before == set()

    server = await asyncpg.connect(database_url_for(database_url, "postgres"))
    try:
        assert not await server.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database_name)
    finally:
        await server.close()


async def test_a_service_that_cannot_start_fails_with_its_last_words(tmp_path: Path) -> None:
    broken = tmp_path / "broken_service.py"
    broken.write_text(BROKEN_SERVICE)
    children_before = live_children_of(os.getpid())

    stack = LocalStack([stand_in("matching", broken)], database_name=throwaway_database_name(),
                       drop_database_on_exit=True, state_dir=tmp_path)
    with pytest.raises(ProcessStartError) as failure:
        async with stack:
            pass

    assert "the widget registry is missing" in str(failure.value)
    assert "exit code 3" in str(failure.value)
    assert live_children_of(os.getpid()) - children_before == set()


async def test_embedded_postgres_works_when_asked_for() -> None:
    """CI always has 127.0.0.1:5432, so the fallback a newcomer relies on is proved here, on purpose."""
    pgdata = PROJECT_ROOT / ".centre" / "pgdata"
    server = await open_database_server(pgdata, environ={}, force_embedded=True)
    name = throwaway_database_name()
    try:
        url = await server.create_database(name)
        connection = await asyncpg.connect(url)
        try:
            data_directory = await connection.fetchval("SHOW data_directory")
            assert await connection.fetchval("SELECT current_database()") == name
        finally:
            await connection.close()
        assert Path(data_directory) == pgdata.resolve()
        await server.drop_database(name)
    finally:
        await server.close()
