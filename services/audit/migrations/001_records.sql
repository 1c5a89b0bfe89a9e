-- The audit log: one record per event of every topic, each hash-chained to the one before.
-- The database itself refuses to change or remove a record, whatever the code above it does.
CREATE TABLE records (
    seq          bigint PRIMARY KEY,
    event_id     text        NOT NULL UNIQUE,
    event_type   text        NOT NULL,
    source       text        NOT NULL,
    subject      text,
    event_time   text        NOT NULL,
    topic        text        NOT NULL,
    partition    integer     NOT NULL,
    "offset"     bigint      NOT NULL,
    traceparent  text,
    payload      text        NOT NULL,
    prev_hash    text        NOT NULL,
    record_hash  text        NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX records_by_subject ON records (subject, seq);

CREATE FUNCTION refuse_audit_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME;
END
$$;
CREATE TRIGGER records_refuse_update_delete BEFORE UPDATE OR DELETE ON records
    FOR EACH ROW EXECUTE FUNCTION refuse_audit_change();
CREATE TRIGGER records_refuse_truncate BEFORE TRUNCATE ON records
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_audit_change();
REVOKE UPDATE, DELETE, TRUNCATE ON records FROM PUBLIC;
