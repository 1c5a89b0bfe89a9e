-- The version of each host's profile (centre.host.updated.v1): a replayed or late update changes nothing.
-- Registration is version 1; the capacity keeps its own version (capacity_version).
ALTER TABLE hosts ADD COLUMN version integer NOT NULL DEFAULT 1;
