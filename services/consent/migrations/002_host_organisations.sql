-- Which organisation owns each host: a partner's token reaches only its own hosts' proposals and responses.
CREATE TABLE hosts (
    host_id         text PRIMARY KEY,
    organisation_id text NOT NULL
);
CREATE INDEX hosts_by_organisation ON hosts (organisation_id);
