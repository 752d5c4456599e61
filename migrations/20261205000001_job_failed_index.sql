-- The jobs page's state index, on every job, took a new entry at every claim and every completion
-- (no update of a job is HOT: its state is indexed), and at 500,000 jobs it no longer fit in
-- shared buffers beside the table. Only the failed states need an index: completed jobs are
-- found by the primary key (they are most of the table), running ones by the lease index, and
-- available ones by the claim index.
DROP INDEX job_state_idx;
CREATE INDEX job_failed_idx ON job (state, id DESC) WHERE state IN ('retryable', 'cancelled', 'discarded');
