"""Create the centre's topics on an existing cluster: ``python -m deploy.topics`` (KAFKA_BOOTSTRAP_SERVERS).

Production topics keep every event: the audit topic is never compacted or expired.
"""

from __future__ import annotations

import asyncio
import os

from deploy.local.broker import create_topics
from schemas.topics import PARTITIONS, TOPIC_CONFIGS


def main() -> None:
    replication = int(os.environ.get("KAFKA_REPLICATION_FACTOR", "1"))
    asyncio.run(create_topics(os.environ["KAFKA_BOOTSTRAP_SERVERS"], PARTITIONS, replication_factor=replication,
                              configs=TOPIC_CONFIGS))


if __name__ == "__main__":
    main()
