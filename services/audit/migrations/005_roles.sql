-- Least privilege in the database itself. audit_writer may read and append, nothing else: it cannot
-- UPDATE, DELETE or TRUNCATE the evidence, nor disable the triggers (only the tables' owner can), nor set
-- session_replication_role (only a superuser can). audit_reader may only read. The service switches to
-- audit_writer for every transaction that appends or seals (AUDIT_WRITER_ROLE); in production it logs in
-- as a member of audit_writer and the owner of the schema only runs migrations (see docs/audit.md).
-- Roles belong to the whole server: create them once, whichever database gets here first.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'audit_writer') THEN
        CREATE ROLE audit_writer NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- created at the same moment for another database on this server
END
$$;
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'audit_reader') THEN
        CREATE ROLE audit_reader NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;
DO $$
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO audit_writer, audit_reader', current_schema());
END
$$;

REVOKE ALL ON records, checkpoints, signing_keys, merkle_subtrees, topic_position FROM PUBLIC;
GRANT SELECT, INSERT ON records, checkpoints, signing_keys, merkle_subtrees TO audit_writer;
GRANT SELECT, INSERT, UPDATE ON topic_position TO audit_writer;
-- What the shared runtime does inside an appending transaction: the inbox, and dead letters via the outbox.
GRANT SELECT, INSERT ON inbox TO audit_writer;
GRANT SELECT, INSERT, UPDATE ON outbox TO audit_writer;
GRANT USAGE ON SEQUENCE outbox_id_seq TO audit_writer;
GRANT SELECT ON schema_migrations TO audit_writer, audit_reader;

GRANT SELECT ON records, checkpoints, signing_keys, merkle_subtrees TO audit_reader;
-- A table added by a later migration must be granted there as well.
