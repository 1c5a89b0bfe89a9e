-- Debounced re-solves: a pool is solved once its events have paused (marked_at, renewed by every mark)
-- or once it has waited the whole coalescing window since it became dirty (dirty_since, kept by marks).
ALTER TABLE dirty_pools
    ADD COLUMN dirty_since timestamptz NOT NULL DEFAULT clock_timestamp();
