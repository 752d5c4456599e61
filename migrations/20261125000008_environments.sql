-- Environments, born as requests: the request with its cost estimate and plan preview, the
-- approvals that decide it, its timeline, in-app notifications and per-platform webhooks.
-- State changes are checked here (a trigger), not only in Rust.

CREATE TABLE environment (
    id                  uuid PRIMARY KEY,
    platform_id         uuid NOT NULL REFERENCES platform (id),
    environment_type    text NOT NULL CHECK (environment_type ~ '^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$'),
    name                text NOT NULL CHECK (name ~ '^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$'),
    purpose             text NOT NULL CHECK (length(purpose) BETWEEN 1 AND 2000),
    -- {instance_type, min_nodes, max_nodes, data_services: [..]}, validated against the type.
    parameters          jsonb NOT NULL,
    lifecycle           text NOT NULL CHECK (lifecycle IN ('long_lived', 'ephemeral')),
    ttl_hours           integer CHECK (ttl_hours BETWEEN 1 AND 168),
    -- The type's maximum TTL: extending beyond it needs a new approval.
    max_ttl_hours       integer CHECK (max_ttl_hours BETWEEN 1 AND 168),
    state               text NOT NULL DEFAULT 'submitted' CHECK (state IN (
                            'submitted', 'approved', 'rejected', 'cancelled', 'expired',
                            'provisioning', 'ready', 'failed', 'tearing_down', 'torn_down')),
    requested_by        uuid NOT NULL REFERENCES app_user (id),
    -- The approved blueprint revision the request was made against.
    blueprint_number    integer NOT NULL,
    -- The policy in force when it was submitted (a later blueprint does not change it).
    approvals_required  integer NOT NULL CHECK (approvals_required BETWEEN 1 AND 5),
    approver_roles      text[] NOT NULL,
    approval_count      integer NOT NULL DEFAULT 0 CHECK (approval_count >= 0),
    sla_hours           integer NOT NULL CHECK (sla_hours >= 1),
    -- 0 while the request is decided; n while the n-th extension beyond the maximum TTL is.
    round               integer NOT NULL DEFAULT 0 CHECK (round >= 0),
    -- Estimates in micro-dollars (exact integers): at the minimum and at the maximum node count.
    cost_hourly_micros      bigint NOT NULL CHECK (cost_hourly_micros >= 0),
    cost_max_hourly_micros  bigint NOT NULL CHECK (cost_max_hourly_micros >= cost_hourly_micros),
    plan                jsonb NOT NULL,
    -- When a decision is awaited (a new request, or an extension beyond the type's maximum):
    -- the approvals dashboard's queue, oldest first.
    awaiting_since      timestamptz,
    sla_due_at          timestamptz NOT NULL,
    -- A request still pending at this time expires.
    pending_until       timestamptz NOT NULL,
    -- An extension beyond the type's maximum TTL, waiting for approval.
    extension_hours     integer CHECK (extension_hours BETWEEN 1 AND 168),
    ready_at            timestamptz,
    -- When an ephemeral environment is torn down (ready_at + ttl_hours).
    expires_at          timestamptz,
    expiry_warned_at    timestamptz,
    job_id              bigint REFERENCES job (id) ON DELETE SET NULL,
    outputs             jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at          timestamptz NOT NULL DEFAULT now(),
    decided_at          timestamptz,
    state_changed_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (id, requested_by),
    CHECK ((lifecycle = 'ephemeral') = (ttl_hours IS NOT NULL))
);
-- One live environment per name and platform; a finished one's name can be used again.
CREATE UNIQUE INDEX environment_live_name ON environment (platform_id, name)
    WHERE state NOT IN ('rejected', 'cancelled', 'expired', 'torn_down');
CREATE INDEX environment_awaiting_idx ON environment (awaiting_since, id) WHERE awaiting_since IS NOT NULL;
CREATE INDEX environment_state_idx ON environment (state, created_at DESC, id DESC);
CREATE INDEX environment_decided_idx ON environment (decided_at DESC, id DESC) WHERE decided_at IS NOT NULL;
CREATE INDEX environment_requester_idx ON environment (requested_by, created_at DESC, id DESC);
CREATE INDEX environment_platform_idx ON environment (platform_id, created_at DESC, id DESC);
CREATE INDEX environment_pending_until_idx ON environment (pending_until) WHERE state = 'submitted';
CREATE INDEX environment_expires_idx ON environment (expires_at) WHERE state = 'ready';

-- The lifecycle of DESIGN §3; nothing else gets through, whatever the code above does.
CREATE FUNCTION environment_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.requested_by <> OLD.requested_by OR NEW.platform_id <> OLD.platform_id
       OR NEW.name <> OLD.name OR NEW.environment_type <> OLD.environment_type THEN
        RAISE EXCEPTION 'an environment''s requester, platform, type and name never change'
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.state <> OLD.state THEN
        IF NOT (
               (OLD.state = 'submitted' AND NEW.state IN ('approved', 'rejected', 'cancelled', 'expired'))
            OR (OLD.state = 'approved' AND NEW.state = 'provisioning')
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
CREATE TRIGGER environment_transition BEFORE UPDATE ON environment
    FOR EACH ROW EXECUTE FUNCTION environment_transition();

-- One decision per approver and request (or extension round). The requester's own approval is
-- refused here too: the foreign key carries the requester, the CHECK compares.
CREATE TABLE environment_approval (
    id             uuid PRIMARY KEY,
    environment_id uuid NOT NULL,
    requester_id   uuid NOT NULL,
    approver_id    uuid NOT NULL REFERENCES app_user (id),
    -- 0 for the request itself, n for the n-th extension beyond the type's maximum.
    round          integer NOT NULL DEFAULT 0,
    verdict        text NOT NULL CHECK (verdict IN ('approve', 'reject')),
    comment        text NOT NULL DEFAULT '' CHECK (length(comment) <= 2000),
    created_at     timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (environment_id, requester_id) REFERENCES environment (id, requested_by) ON DELETE CASCADE,
    UNIQUE (environment_id, round, approver_id),
    CHECK (approver_id <> requester_id),
    CHECK (verdict = 'approve' OR length(trim(comment)) > 0)
);

-- What happened to a request, shown on its page.
CREATE TABLE environment_event (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    environment_id uuid NOT NULL REFERENCES environment (id) ON DELETE CASCADE,
    actor_id       uuid REFERENCES app_user (id),
    actor_label    text NOT NULL,
    kind           text NOT NULL,
    message        text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX environment_event_env_idx ON environment_event (environment_id, id);

CREATE TABLE notification (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id        uuid NOT NULL REFERENCES app_user (id) ON DELETE CASCADE,
    environment_id uuid REFERENCES environment (id) ON DELETE CASCADE,
    kind           text NOT NULL,
    message        text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    read_at        timestamptz
);
CREATE INDEX notification_user_idx ON notification (user_id, id DESC);
CREATE INDEX notification_unread_idx ON notification (user_id) WHERE read_at IS NULL;

-- An optional outgoing webhook per platform (Slack-compatible JSON, HMAC-signed).
CREATE TABLE platform_webhook (
    platform_id uuid PRIMARY KEY REFERENCES platform (id) ON DELETE CASCADE,
    url         text NOT NULL CHECK (url ~ '^https?://' AND length(url) <= 2000),
    secret      text NOT NULL,
    updated_by  uuid NOT NULL REFERENCES app_user (id),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
