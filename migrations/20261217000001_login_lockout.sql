-- One row per sign-in lockout being reported: the audit log records a lockout once per window
-- and per account or address, not once per refused attempt (an attacker hammering a locked
-- account must not grow the append-only audit log by a row a request).
CREATE TABLE login_lockout (
    key text PRIMARY KEY CHECK (key ~ '^(account|address):'),
    reported_at timestamptz NOT NULL DEFAULT now()
);
