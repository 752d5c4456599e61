-- `Idempotency-Key` on creating API calls: the first successful result per caller and key is
-- kept for a day and returned again to retries, so a retried POST never creates twice.
CREATE TABLE idempotency_key (
    user_id      uuid NOT NULL REFERENCES app_user (id) ON DELETE CASCADE,
    key          text NOT NULL CHECK (length(key) BETWEEN 1 AND 200),
    method       text NOT NULL,
    path         text NOT NULL,
    -- NULL while the first request with this key is still running.
    status       smallint,
    content_type text,
    body         bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_key_created_idx ON idempotency_key (created_at);
