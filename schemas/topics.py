"""The topics of the matching centre, one per aggregate, with the partition counts they are created with.

Keys keep the order that matters: every event about a case is keyed by its case id, every event about a
host by its host id, so one partition holds each aggregate's history in order.
"""

from typing import Final

PARTNER_SUBMISSIONS: Final = "partner.submissions"
CASES: Final = "intake.cases"
HOSTS: Final = "intake.hosts"
CONSENTS: Final = "consent.data-use"
PROPOSALS: Final = "matching.proposals"
SOLVER_RUNS: Final = "matching.runs"
DECISIONS: Final = "consent.decisions"
NOTIFICATIONS: Final = "notifications"
AUDIT: Final = "audit.records"
DEAD_LETTERS: Final = "deadletter"

PARTITIONS: Final[dict[str, int]] = {
    PARTNER_SUBMISSIONS: 3,
    CASES: 3,
    HOSTS: 3,
    CONSENTS: 3,
    PROPOSALS: 3,
    SOLVER_RUNS: 1,
    DECISIONS: 3,
    NOTIFICATIONS: 3,
    # One partition: the audit stream has one total order that anyone can follow.
    AUDIT: 1,
    DEAD_LETTERS: 1,
}

# Applied when topics are created on Apache Kafka (deploy/topics.py); the local broker keeps nothing anyway.
TOPIC_CONFIGS: Final[dict[str, dict[str, str]]] = {
    # The audit stream is kept forever: never compacted, never expired.
    AUDIT: {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"},
    DEAD_LETTERS: {"retention.ms": "-1"},
}
