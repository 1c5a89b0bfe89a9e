"""The composition every service shares: settings, logs, traces, database, broker, relay, health.

A service describes itself with a ``ServiceDefinition`` (its consumers, its HTTP routes, its
migrations, its background tasks) and ``run`` turns that into one process: a FastAPI application served
by uvicorn whose lifespan starts, in order, the database pool and migrations, the FastStream broker with
the service's subscribers, the outbox relay and the background tasks, and stops them in reverse on
SIGTERM or Ctrl-C. The relay stops before the producer closes, so no batch is cut off mid-flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import structlog
import uvicorn
from fastapi import APIRouter, FastAPI, Request, Response
from faststream.kafka import KafkaBroker
from opentelemetry import trace

from services.runtime.access import TokenAuthority
from services.runtime.consumer import EventConsumer
from services.runtime.database import create_pool, migrate
from services.runtime.logs import configure_logging
from services.runtime.outbox import OutboxRelay
from services.runtime.settings import ServiceSettings
from services.runtime.tracing import configure_tracing, context_from_headers, tracer

log = structlog.get_logger(__name__)

BackgroundTask = Callable[["ServiceContext"], Awaitable[None]]


@dataclass
class ServiceDefinition:
    """What makes one service what it is; everything else is shared."""

    name: str
    migrations: Path
    consumers: Sequence[EventConsumer] = ()
    router: APIRouter | None = None
    background: Sequence[BackgroundTask] = ()
    description: str = ""


@dataclass
class ServiceContext:
    """The running parts of a service, shared with its routes (``request.app.state.context``)."""

    settings: ServiceSettings
    pool: asyncpg.Pool
    broker: KafkaBroker
    relay: OutboxRelay
    consumers: Sequence[EventConsumer]
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def source(self) -> str:
        return f"/services/{self.settings.service_name}"


def context_of(request: Request) -> ServiceContext:
    """The service context, for a FastAPI route."""
    return request.app.state.context  # type: ignore[no-any-return]


def build_app(definition: ServiceDefinition, settings: ServiceSettings | None = None) -> FastAPI:
    """The ASGI application of a service."""
    settings = settings or ServiceSettings(service_name=definition.name)
    broker = KafkaBroker(
        settings.kafka_bootstrap_servers,
        acks="all",
        enable_idempotence=settings.kafka_enable_idempotence,
        client_id=f"centre-{definition.name}",
        linger_ms=5,
        logger=logging.getLogger("faststream"),
    )
    for consumer in definition.consumers:
        consumer.subscribe(broker, settings, group_id=f"{definition.name}.{consumer.name}")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(definition.name, settings.log_level)
        configure_tracing(definition.name, console_export=settings.otel_console_export)
        pool = await create_pool(settings.database_url, definition.name, size=settings.database_pool_size)
        await migrate(pool, definition.name, definition.migrations)
        for consumer in definition.consumers:
            consumer.pool = pool
        relay = OutboxRelay(
            pool, broker, batch_size=settings.outbox_batch_size, poll_interval_s=settings.outbox_poll_interval_s
        )
        context = ServiceContext(settings, pool, broker, relay, definition.consumers)
        app.state.context = context
        await broker.start()
        await relay.start()
        tasks = [
            asyncio.create_task(_keep_running(task, context), name=task.__name__)
            for task in definition.background
        ]
        log.info("service started", http_port=settings.http_port)
        try:
            yield
        finally:
            log.info("service stopping")
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await relay.stop()
            # A broker that has gone away must not hold the shutdown hostage.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(broker.stop(), timeout=10)
            await pool.close()
            log.info("service stopped")

    app = FastAPI(title=f"matching centre: {definition.name}", description=definition.description,
                  lifespan=lifespan)
    app.state.token_authority = TokenAuthority.from_settings(settings)

    @app.middleware("http")
    async def trace_request(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        # Each request starts (or continues, given a traceparent) the trace its events will carry.
        with tracer().start_as_current_span(
            f"{request.method} {request.url.path}",
            context=context_from_headers(dict(request.headers)),
            kind=trace.SpanKind.SERVER,
        ):
            return await call_next(request)

    @app.get("/health", tags=["operations"])
    async def health(request: Request) -> dict[str, Any]:
        context = context_of(request)
        return {
            "status": "ok",
            "service": definition.name,
            "handled": {consumer.name: consumer.handled for consumer in context.consumers},
            "published": context.relay.published,
        }

    if definition.router is not None:
        app.include_router(definition.router)
    return app


async def _keep_running(task: BackgroundTask, context: ServiceContext) -> None:
    """Run a background task, restarting it after an unexpected error instead of losing it silently."""
    while True:
        try:
            await task(context)
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background task failed; restarting", task=task.__name__)
            await asyncio.sleep(1.0)


def run(definition: ServiceDefinition) -> None:
    """Serve one service until SIGTERM or Ctrl-C."""
    settings = ServiceSettings(service_name=definition.name)
    configure_logging(definition.name, settings.log_level)
    uvicorn.run(
        build_app(definition, settings),
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        timeout_graceful_shutdown=10,
        # Longer than clients keep idle connections (httpx: 5 s), so a request never meets a closing socket.
        timeout_keep_alive=75,
    )
