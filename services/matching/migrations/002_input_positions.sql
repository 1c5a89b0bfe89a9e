-- How far matching has applied each partition of its input topics: the offset of the last record whose
-- handler ran, written in the same transaction as that handler's effects. A solve reads it in the same
-- snapshot as the pool, and its run records it (the watermark), so an auditor can rebuild the run's inputs
-- from the audit stream alone: exactly the input records at or below it.
CREATE TABLE input_positions (
    topic     text    NOT NULL,
    partition integer NOT NULL,
    "offset"  bigint  NOT NULL,
    PRIMARY KEY (topic, partition)
);
