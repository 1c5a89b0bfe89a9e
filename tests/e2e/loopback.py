"""The outside world of the notifications service on loopback: a real SMTP server and a partner's HTTP receiver.

Both run in threads of their own, so they answer whatever the test's event loop is doing, and both keep
everything that reached them for the test to read. The receiver can be told to fail the first attempts of
each delivery and then recover, and either can be made slow so that a batch of deliveries is still in
flight when the test needs it to be.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from deploy.local.processes import free_loopback_port

# --- Email -----------------------------------------------------------------------------------------


@dataclass
class Mailbox:
    """An aiosmtpd handler that keeps every message that arrived, with the envelope's recipients."""

    messages: list[tuple[list[str], EmailMessage]] = field(default_factory=list)
    # Seconds each message takes to be accepted: a slow server keeps a batch in flight.
    delay_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        message = message_from_bytes(envelope.original_content or b"", policy=policy.default)
        with self.lock:
            self.messages.append((list(envelope.rcpt_tos), message))  # type: ignore[arg-type]
        return "250 Message accepted for delivery"

    def snapshot(self) -> list[tuple[list[str], EmailMessage]]:
        with self.lock:
            return list(self.messages)

    def by_message_id(self) -> dict[str, list[EmailMessage]]:
        found: dict[str, list[EmailMessage]] = {}
        for _, message in self.snapshot():
            found.setdefault(str(message["Message-ID"]).strip(), []).append(message)
        return found


@contextmanager
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    port = free_loopback_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


def parts(message: EmailMessage) -> tuple[str, str]:
    """The plain-text and the HTML part of a message."""
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and html is not None, "a plain-text part and an HTML part"
    return str(text.get_content()), str(html.get_content())


# --- A partner's receiver --------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: httpx.Headers
    body: bytes
    answered: int

    @property
    def delivery_id(self) -> str:
        return self.headers.get("Centre-Delivery-Id", "")

    def document(self) -> dict[str, Any]:
        return json.loads(self.body)  # type: ignore[no-any-return]


@dataclass
class Receiver:
    """An HTTP server on loopback whose paths are partners' callback URLs.

    ``fail_first[path] = n`` makes that partner answer 503 to the first ``n`` attempts of every delivery
    (counted by delivery id) and 200 from then on: a partner that fails, then recovers.
    """

    port: int = 0
    requests: list[Received] = field(default_factory=list)
    fail_first: dict[str, int] = field(default_factory=dict)
    delay_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def answer(self, path: str, delivery_id: str) -> int:
        with self.lock:
            earlier = sum(1 for request in self.requests if request.path == path and request.delivery_id == delivery_id)
        return 503 if earlier < self.fail_first.get(path, 0) else 200

    def to(self, path: str) -> list[Received]:
        with self.lock:
            return [request for request in self.requests if request.path == path]

    def accepted(self, path: str) -> list[Received]:
        return [request for request in self.to(path) if 200 <= request.answered < 300]

    def accepted_per_id(self, path: str) -> Counter[str]:
        return Counter(request.delivery_id for request in self.accepted(path))


@contextmanager
def http_receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = httpx.Headers(list(self.headers.items()))
            if state.delay_s:
                time.sleep(state.delay_s)
            status = state.answer(self.path, headers.get("Centre-Delivery-Id", ""))
            with state.lock:
                state.requests.append(Received(self.path, headers, body, status))
            try:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
            except OSError:
                pass  # the centre stopped waiting (or was killed): nobody listens any more

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


