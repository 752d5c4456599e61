-- Accounts whose closure AWS deferred (its closure quota: 10% of the member accounts per rolling
-- 30 days): a teardown queues them here and ends; the periodic `accounts.close` job asks again.
CREATE TABLE account_closure (
    account_id     text PRIMARY KEY CHECK (account_id ~ '^[0-9]{12}$'),
    environment_id uuid NOT NULL REFERENCES environment (id),
    queued_at      timestamptz NOT NULL DEFAULT now(),
    attempts       integer NOT NULL DEFAULT 0,
    last_error     text,
    closed_at      timestamptz
);

CREATE INDEX account_closure_waiting ON account_closure (queued_at) WHERE closed_at IS NULL;
