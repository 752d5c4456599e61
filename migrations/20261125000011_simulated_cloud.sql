-- The simulated cloud (SLIPWAY_CLOUD=simulated): what an in-process stand-in for AWS and
-- Kubernetes has "created". Kept in Postgres so that, like the real cloud, it outlives a crashed
-- or restarted worker, and a resumed job finds what an earlier attempt made.
CREATE TABLE simulated_resource (
    -- 'account', 'cluster', 'nodegroup' or 'object' (a Kubernetes object).
    kind        text NOT NULL CHECK (kind IN ('account', 'cluster', 'nodegroup', 'object')),
    -- The account id for accounts; '<account>/<cluster>[/<nodegroup or object>]' below them.
    id          text NOT NULL,
    name        text NOT NULL,
    -- Until `ready_at` a resource reports CREATING, like EKS does for minutes.
    ready_at    timestamptz NOT NULL,
    -- Set by a delete: DELETING until `gone_at`, then it is gone.
    gone_at     timestamptz,
    request_id  text,
    tags        jsonb NOT NULL DEFAULT '{}'::jsonb,
    body        jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, id)
);
CREATE INDEX simulated_resource_name_idx ON simulated_resource (kind, name);

-- Failures to inject into the simulated cloud (demos and tests): the next `remaining` calls of
-- `operation` (e.g. 'eks:CreateNodegroup') fail with `message`.
CREATE TABLE simulated_fault (
    operation text PRIMARY KEY,
    remaining integer NOT NULL CHECK (remaining >= 0),
    message   text NOT NULL
);

-- A provisioning job cancelled (or discarded) before its first step leaves an approved
-- environment failed, with the same retry or clean-up choice as a failure later on.
CREATE OR REPLACE FUNCTION environment_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.requested_by <> OLD.requested_by OR NEW.platform_id <> OLD.platform_id
       OR NEW.name <> OLD.name OR NEW.environment_type <> OLD.environment_type THEN
        RAISE EXCEPTION 'an environment''s requester, platform, type and name never change'
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.state <> OLD.state THEN
        IF NOT (
               (OLD.state = 'submitted' AND NEW.state IN ('approved', 'rejected', 'cancelled', 'expired'))
            OR (OLD.state = 'approved' AND NEW.state IN ('provisioning', 'failed'))
            OR (OLD.state = 'provisioning' AND NEW.state IN ('ready', 'failed'))
            OR (OLD.state = 'ready' AND NEW.state = 'tearing_down')
            OR (OLD.state = 'failed' AND NEW.state IN ('provisioning', 'tearing_down'))
            OR (OLD.state = 'tearing_down' AND NEW.state IN ('torn_down', 'failed'))) THEN
            RAISE EXCEPTION 'an environment cannot go from % to %', OLD.state, NEW.state
                USING ERRCODE = 'check_violation';
        END IF;
        NEW.state_changed_at := now();
    END IF;
    RETURN NEW;
END;
$$;
