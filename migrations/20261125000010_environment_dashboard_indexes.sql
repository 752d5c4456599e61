-- The approvals dashboard at 100,000 requests (see `slipway bench approvals`): the in-flight tab
-- reads its own partial index in order, and search over name and purpose uses trigrams.
-- pg_trgm is a trusted extension: the database owner may create it.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX environment_in_flight_idx ON environment (created_at DESC, id DESC)
    WHERE state IN ('approved', 'provisioning', 'failed', 'tearing_down');
CREATE INDEX environment_search_idx ON environment USING gin ((name || ' ' || purpose) gin_trgm_ops);
-- The pending queue filtered by type or by requester, read in queue order.
CREATE INDEX environment_awaiting_type_idx ON environment (environment_type, awaiting_since, id)
    WHERE awaiting_since IS NOT NULL;
CREATE INDEX environment_awaiting_requester_idx ON environment (requested_by, awaiting_since, id)
    WHERE awaiting_since IS NOT NULL;
