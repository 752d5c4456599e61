-- What each environment really costs. `account_cost` is the organization's bill as Cost
-- Explorer last read it (each account's unblended cost per day); `cost_read` says when, so
-- "not read yet" is never shown as "$0". An environment holds its account from its creation
-- to its teardown; a day of a pooled account two environments held is split between them.
CREATE TABLE account_cost (
    account_id text NOT NULL CHECK (length(account_id) BETWEEN 1 AND 64),
    day        date NOT NULL,
    usd_micros bigint NOT NULL,
    PRIMARY KEY (account_id, day)
);

CREATE TABLE cost_read (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    read_at   timestamptz NOT NULL,
    through   date NOT NULL
);

-- Each environment's monthly budget, from its type when it was requested (NULL: none).
ALTER TABLE environment ADD COLUMN budget_monthly_micros bigint CHECK (budget_monthly_micros > 0);
CREATE INDEX environment_account_idx ON environment ((outputs->>'account_id'))
    WHERE outputs ? 'account_id';

CREATE VIEW environment_daily_cost AS
SELECT e.id AS environment_id, c.day,
       c.usd_micros / (SELECT count(*) FROM environment h
                       WHERE h.outputs ? 'account_id'
                         AND h.outputs->>'account_id' = c.account_id
                         AND h.created_at::date <= c.day
                         AND (h.state <> 'torn_down' OR h.state_changed_at::date >= c.day))
           AS usd_micros
FROM environment e
JOIN account_cost c ON c.account_id = e.outputs->>'account_id'
 AND c.day >= e.created_at::date
 AND (e.state <> 'torn_down' OR c.day <= e.state_changed_at::date)
WHERE e.outputs ? 'account_id';

-- Each environment's spend in a month, as the last read of the bill attributed it: what the
-- pages read (one row each), recomputed by every read.
CREATE TABLE environment_month_cost (
    environment_id uuid NOT NULL REFERENCES environment (id) ON DELETE CASCADE,
    month          date NOT NULL CHECK (extract(day FROM month) = 1),
    usd_micros     bigint NOT NULL,
    PRIMARY KEY (environment_id, month)
);

-- The budget warnings sent: one per environment, month and threshold.
CREATE TABLE budget_warning (
    environment_id uuid NOT NULL REFERENCES environment (id) ON DELETE CASCADE,
    month          date NOT NULL CHECK (extract(day FROM month) = 1),
    threshold      integer NOT NULL CHECK (threshold IN (80, 100)),
    sent_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (environment_id, month, threshold)
);
