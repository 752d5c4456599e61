-- The durable job queue (River-like): jobs claimed with FOR UPDATE SKIP LOCKED, held by a lease
-- renewed by heartbeats, fenced per attempt so a worker that lost its lease cannot write late
-- results, and made of named steps whose progress is kept, so a resumed job skips what is done.

CREATE TABLE job (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind             text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_.]*$'),
    payload          jsonb NOT NULL DEFAULT '{}'::jsonb,
    state            text NOT NULL DEFAULT 'available'
                     CHECK (state IN ('available', 'running', 'retryable', 'completed', 'cancelled', 'discarded')),
    priority         smallint NOT NULL DEFAULT 0,
    attempt          integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts     integer NOT NULL DEFAULT 10 CHECK (max_attempts >= 1),
    run_at           timestamptz NOT NULL DEFAULT now(),
    -- At most one active job per key (e.g. one provisioning job per environment).
    unique_key       text,
    locked_by        text,
    lease_until      timestamptz,
    heartbeat_at     timestamptz,
    -- Incremented at every claim: results are written only with the fence of the current attempt.
    fence            bigint NOT NULL DEFAULT 0,
    cancel_requested boolean NOT NULL DEFAULT false,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    CHECK ((state = 'running') = (locked_by IS NOT NULL AND lease_until IS NOT NULL))
);
CREATE UNIQUE INDEX job_unique_active ON job (unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('available', 'running', 'retryable');
CREATE INDEX job_claimable_idx ON job (priority DESC, run_at, id) WHERE state IN ('available', 'retryable');
CREATE INDEX job_lease_idx ON job (lease_until) WHERE state = 'running';
CREATE INDEX job_state_idx ON job (state, kind, id DESC);

CREATE TABLE job_step (
    job_id       bigint NOT NULL REFERENCES job (id) ON DELETE CASCADE,
    position     integer NOT NULL,
    name         text NOT NULL,
    state        text NOT NULL DEFAULT 'pending'
                 CHECK (state IN ('pending', 'running', 'completed', 'failed')),
    attempt      integer NOT NULL DEFAULT 0,
    started_at   timestamptz,
    finished_at  timestamptz,
    external_ids jsonb NOT NULL DEFAULT '{}'::jsonb,
    log          text[] NOT NULL DEFAULT '{}',
    error        text,
    PRIMARY KEY (job_id, name)
);
