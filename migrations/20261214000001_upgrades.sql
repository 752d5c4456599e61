-- Kubernetes upgrades of an environment's cluster, one minor version at a time: requested by
-- the platform team, decided under the environment's approval policy (its approver roles and
-- number of approvals, never the requester's own), then run as an `environment.upgrade` job.
-- At most one upgrade of an environment is open (awaiting a decision or running).
CREATE TABLE environment_upgrade (
    id                 uuid PRIMARY KEY,
    environment_id     uuid NOT NULL REFERENCES environment (id) ON DELETE CASCADE,
    from_version       text NOT NULL CHECK (from_version ~ '^1\.[0-9]{1,3}$'),
    to_version         text NOT NULL CHECK (to_version ~ '^1\.[0-9]{1,3}$'),
    requested_by       uuid NOT NULL REFERENCES app_user (id),
    approvals_required integer NOT NULL CHECK (approvals_required >= 0),
    approval_count     integer NOT NULL DEFAULT 0 CHECK (approval_count >= 0),
    state              text NOT NULL CHECK (state IN
                           ('awaiting_approval', 'running', 'succeeded', 'failed', 'rejected',
                            'cancelled')),
    job_id             bigint,
    error              text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    finished_at        timestamptz,
    UNIQUE (id, requested_by),
    CHECK (state IN ('awaiting_approval', 'rejected', 'cancelled') OR job_id IS NOT NULL)
);
CREATE UNIQUE INDEX environment_upgrade_open_idx ON environment_upgrade (environment_id)
    WHERE state IN ('awaiting_approval', 'running');
CREATE INDEX environment_upgrade_history_idx ON environment_upgrade (environment_id, created_at DESC);

CREATE FUNCTION environment_upgrade_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.environment_id <> OLD.environment_id OR NEW.requested_by <> OLD.requested_by
       OR NEW.from_version <> OLD.from_version OR NEW.to_version <> OLD.to_version THEN
        RAISE EXCEPTION 'an upgrade''s environment, requester and versions never change'
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.state <> OLD.state THEN
        IF NOT (
               (OLD.state = 'awaiting_approval' AND NEW.state IN ('running', 'rejected', 'cancelled'))
            OR (OLD.state = 'running' AND NEW.state IN ('succeeded', 'failed'))
            OR (OLD.state = 'failed' AND NEW.state = 'running')) THEN
            RAISE EXCEPTION 'an upgrade cannot go from % to %', OLD.state, NEW.state
                USING ERRCODE = 'check_violation';
        END IF;
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER environment_upgrade_transition BEFORE UPDATE ON environment_upgrade
    FOR EACH ROW EXECUTE FUNCTION environment_upgrade_transition();

-- One decision per approver and upgrade; the requester's own is refused here too.
CREATE TABLE environment_upgrade_approval (
    upgrade_id   uuid NOT NULL,
    requester_id uuid NOT NULL,
    approver_id  uuid NOT NULL REFERENCES app_user (id),
    verdict      text NOT NULL CHECK (verdict IN ('approve', 'reject')),
    comment      text NOT NULL DEFAULT '' CHECK (length(comment) <= 2000),
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (upgrade_id, approver_id),
    FOREIGN KEY (upgrade_id, requester_id) REFERENCES environment_upgrade (id, requested_by) ON DELETE CASCADE,
    CHECK (approver_id <> requester_id),
    CHECK (verdict = 'approve' OR length(trim(comment)) > 0)
);
