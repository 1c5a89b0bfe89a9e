CREATE TABLE cases (
    case_id         text PRIMARY KEY,
    pool_id         text        NOT NULL,
    organisation_id text        NOT NULL,
    external_ref    text,
    language        text        NOT NULL,
    profile         jsonb       NOT NULL,
    version         integer     NOT NULL DEFAULT 1,
    status          text        NOT NULL DEFAULT 'registered' CHECK (status IN ('registered', 'withdrawn')),
    identity        jsonb,
    registered_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organisation_id, external_ref)
);

-- Each case's own key, wrapped by the master key. Deleting a row erases the case's identity everywhere.
CREATE TABLE case_keys (
    case_id     text PRIMARY KEY,
    wrapped_key bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE hosts (
    host_id          text PRIMARY KEY,
    pool_id          text        NOT NULL,
    organisation_id  text        NOT NULL,
    external_ref     text,
    profile          jsonb       NOT NULL,
    capacity_version integer     NOT NULL DEFAULT 1,
    registered_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organisation_id, external_ref)
);
