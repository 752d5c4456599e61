-- Drift: what the last comparison of each environment with its plan found, the jobs that
-- compare and reconcile it, and the differences people accepted (with why). `items` is NULL
-- until a comparison has run: "not checked" is never shown as "no drift".
CREATE TABLE environment_drift (
    environment_id   uuid PRIMARY KEY REFERENCES environment (id) ON DELETE CASCADE,
    checked_at       timestamptz,
    items            jsonb CHECK (items IS NULL OR jsonb_typeof(items) = 'array'),
    check_job_id     bigint,
    reconcile_job_id bigint,
    CHECK ((checked_at IS NULL) = (items IS NULL))
);

-- An accepted difference stays accepted while the live value is the one accepted; another
-- value is drift again.
CREATE TABLE drift_acceptance (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    environment_id uuid NOT NULL REFERENCES environment (id) ON DELETE CASCADE,
    path           text NOT NULL,
    expected       text NOT NULL,
    actual         text NOT NULL,
    reason         text NOT NULL CHECK (length(trim(reason)) BETWEEN 1 AND 500),
    accepted_by    uuid NOT NULL REFERENCES app_user (id),
    accepted_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (environment_id, path, actual)
);
