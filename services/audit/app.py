"""Audit: every event of every topic, appended to a hash-chained, insert-only log that anyone can verify.

The service is four parts on the shared runtime: the recorder (``recorder.py``) appends every event of
every topic; a background task seals signed checkpoints (``checkpoints.py``); another follows the log onto
the audit topic (``publication.py``); the auditor's read-only HTTP doors (``api.py``). The auditor's
command-line tool is ``python -m services.audit.cli``. docs/audit.md tells the whole story.
"""

from __future__ import annotations

from pathlib import Path

from schemas import topics
from services.audit.api import router
from services.audit.checkpoints import seal_periodically
from services.audit.publication import publish_periodically
from services.audit.recorder import Recorder
from services.audit.settings import AuditSettings
from services.runtime.service import ServiceDefinition

# Everything but the audit topic itself, which this service writes; dead letters included.
AUDITED_TOPICS = sorted(set(topics.PARTITIONS) - {topics.AUDIT})

recorder = Recorder(AUDITED_TOPICS, writer_role=AuditSettings().writer_role)

definition = ServiceDefinition(
    name="audit",
    migrations=Path(__file__).parent / "migrations",
    consumers=[recorder],
    router=router,
    background=[seal_periodically, publish_periodically],
    description="Append-only, hash-chained audit log of every event, with signed checkpoints and proofs.",
)
