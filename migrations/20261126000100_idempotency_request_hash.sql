-- The request an Idempotency-Key was first used for: SHA-256 of its method, path, query and
-- body. A retry must match it; the same key with another request is refused instead of being
-- answered with the first request's result. NULL for keys kept before this column existed.
ALTER TABLE idempotency_key ADD COLUMN request_hash bytea;
