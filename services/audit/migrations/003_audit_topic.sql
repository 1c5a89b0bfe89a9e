-- How far the log has been published to the audit topic. The records table is this topic's outbox: each
-- record is published once it is committed, in seq order, and this position moves in the same
-- transaction that saw the broker acknowledge. It is bookkeeping, not evidence, so it may be updated.
CREATE TABLE topic_position (
    topic         text   PRIMARY KEY,
    published_seq bigint NOT NULL DEFAULT 0 CHECK (published_seq >= 0)
);
