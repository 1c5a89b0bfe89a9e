-- Signed checkpoints of the log, the keys that signed them, and the stored Merkle tree the proofs read.
-- Like the records, none of them is ever changed or removed: the database refuses it.

-- Every public key that has signed a checkpoint, so that old checkpoints stay verifiable after a rotation.
-- An auditor still compares the key id with the one the centre published out of band.
CREATE TABLE signing_keys (
    key_id         text        PRIMARY KEY,
    public_key_pem text        NOT NULL,
    registered_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- One row per sealed checkpoint: "the first size records have Merkle root root_hash and the last of them
-- has hash last_record_hash", signed. merkle_frontier (the subtree roots of records 1..size) is not signed:
-- the sealer resumes from it after checking that it reproduces the signed root_hash, which makes each seal
-- cost O(new records) instead of O(all records).
CREATE TABLE checkpoints (
    size             bigint      PRIMARY KEY CHECK (size > 0),
    root_hash        text        NOT NULL,
    last_record_hash text        NOT NULL,
    sealed_at        text        NOT NULL,
    key_id           text        NOT NULL REFERENCES signing_keys,
    signature        text        NOT NULL,
    merkle_frontier  text[]      NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Roots of aligned, complete subtrees of 2^height leaves (height 8, 16, 24, ...): subtree `index` covers
-- records index * 2^height + 1 .. (index + 1) * 2^height. Proofs combine at most 255 of these per level
-- instead of rehashing every record. A wrong row cannot forge a proof: every proof is checked against a
-- signed root before it is served.
CREATE TABLE merkle_subtrees (
    height smallint NOT NULL CHECK (height > 0 AND height % 8 = 0),
    index  bigint   NOT NULL CHECK (index >= 0),
    hash   bytea    NOT NULL,
    PRIMARY KEY (height, index)
);

CREATE TRIGGER signing_keys_refuse_update_delete BEFORE UPDATE OR DELETE ON signing_keys
    FOR EACH ROW EXECUTE FUNCTION refuse_audit_change();
CREATE TRIGGER signing_keys_refuse_truncate BEFORE TRUNCATE ON signing_keys
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_audit_change();
CREATE TRIGGER checkpoints_refuse_update_delete BEFORE UPDATE OR DELETE ON checkpoints
    FOR EACH ROW EXECUTE FUNCTION refuse_audit_change();
CREATE TRIGGER checkpoints_refuse_truncate BEFORE TRUNCATE ON checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_audit_change();
CREATE TRIGGER merkle_subtrees_refuse_update_delete BEFORE UPDATE OR DELETE ON merkle_subtrees
    FOR EACH ROW EXECUTE FUNCTION refuse_audit_change();
CREATE TRIGGER merkle_subtrees_refuse_truncate BEFORE TRUNCATE ON merkle_subtrees
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_audit_change();
