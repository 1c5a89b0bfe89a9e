"""OpenTelemetry traces that continue across Kafka hops.

The W3C ``traceparent`` of the span that wrote an event is stored with it in the outbox and travels as
a Kafka header; the consumer starts its span as a child of it. One case's journey is one trace.
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter


def configure_tracing(service_name: str, *, console_export: bool = False) -> None:
    """Install this process's tracer provider, named after the service."""
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if console_export:
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(provider)


def tracer() -> trace.Tracer:
    return trace.get_tracer("matching-centre")


def current_trace_headers() -> dict[str, str]:
    """``traceparent`` (and ``tracestate``) of the current span, to store beside an outgoing event."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def context_from_headers(headers: Mapping[str, str]) -> Context:
    """The trace context an incoming record's headers carry (an empty one when they carry none)."""
    return propagate.extract(dict(headers))
