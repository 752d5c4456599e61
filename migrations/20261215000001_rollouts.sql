-- Blueprint roll-outs: the platform's approved revision brought to its existing environments
-- in waves. Each wave starts once it has the approvals its strictest environment's type
-- requires (never from whoever started the roll-out), waits for the wave before it to be
-- healthy, and a failure pauses the roll-out. One roll-out of a platform is open at a time.
CREATE TABLE rollout (
    id           uuid PRIMARY KEY,
    platform_id  uuid NOT NULL REFERENCES platform (id) ON DELETE CASCADE,
    revision     integer NOT NULL CHECK (revision > 0),
    started_by   uuid NOT NULL REFERENCES app_user (id),
    state        text NOT NULL CHECK (state IN
                     ('awaiting_approval', 'running', 'paused', 'completed', 'rolling_back',
                      'rolled_back')),
    wave_count   integer NOT NULL CHECK (wave_count BETWEEN 1 AND 10),
    current_wave integer NOT NULL DEFAULT 0,
    -- Why it paused (a failure, or who paused it).
    error        text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    UNIQUE (id, started_by),
    CHECK (current_wave >= 0 AND current_wave < wave_count)
);
CREATE UNIQUE INDEX rollout_open_idx ON rollout (platform_id)
    WHERE state NOT IN ('completed', 'rolled_back');
CREATE INDEX rollout_history_idx ON rollout (platform_id, created_at DESC);

CREATE FUNCTION rollout_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.platform_id <> OLD.platform_id OR NEW.revision <> OLD.revision
       OR NEW.started_by <> OLD.started_by OR NEW.wave_count <> OLD.wave_count
       OR NEW.current_wave < OLD.current_wave THEN
        RAISE EXCEPTION 'a roll-out''s platform, revision, starter and waves never change, and its waves only advance'
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.state <> OLD.state AND NOT (
           (OLD.state = 'awaiting_approval' AND NEW.state IN ('running', 'paused', 'completed', 'rolling_back'))
        OR (OLD.state = 'running' AND NEW.state IN ('awaiting_approval', 'paused', 'completed', 'rolling_back'))
        OR (OLD.state = 'paused' AND NEW.state IN ('awaiting_approval', 'running', 'completed', 'rolling_back'))
        OR (OLD.state = 'completed' AND NEW.state = 'rolling_back')
        OR (OLD.state = 'rolling_back' AND NEW.state = 'rolled_back')) THEN
        RAISE EXCEPTION 'a roll-out cannot go from % to %', OLD.state, NEW.state
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER rollout_transition BEFORE UPDATE ON rollout
    FOR EACH ROW EXECUTE FUNCTION rollout_transition();

-- A wave and the approvals it needs: the most any of its environments' types requires.
CREATE TABLE rollout_wave (
    rollout_id         uuid NOT NULL REFERENCES rollout (id) ON DELETE CASCADE,
    wave               integer NOT NULL CHECK (wave >= 0),
    approvals_required integer NOT NULL CHECK (approvals_required BETWEEN 0 AND 5),
    PRIMARY KEY (rollout_id, wave)
);

-- One environment of a roll-out. `changes` is the plan preview (what changes, restarts, is
-- replaced); `previous_plan` and `from_revision` are what a roll-back or a skip restores.
-- An environment that could not start (not ready, or the revision now changes what a
-- roll-out does not) stays pending with its `error`, and the roll-out pauses.
CREATE TABLE rollout_environment (
    rollout_id     uuid NOT NULL,
    wave           integer NOT NULL,
    position       integer NOT NULL CHECK (position >= 0),
    environment_id uuid NOT NULL REFERENCES environment (id) ON DELETE CASCADE,
    state          text NOT NULL CHECK (state IN
                       ('pending', 'running', 'succeeded', 'failed', 'skipped', 'rolling_back',
                        'rolled_back')),
    from_revision  integer NOT NULL,
    changes        jsonb NOT NULL,
    previous_plan  jsonb,
    -- The plan the roll-out gave it, kept while a roll-back takes it away.
    rollout_plan   jsonb,
    job_id         bigint,
    error          text,
    PRIMARY KEY (rollout_id, environment_id),
    UNIQUE (rollout_id, wave, position),
    FOREIGN KEY (rollout_id, wave) REFERENCES rollout_wave (rollout_id, wave) ON DELETE CASCADE,
    CHECK (state IN ('pending', 'skipped') OR (previous_plan IS NOT NULL AND job_id IS NOT NULL))
);
CREATE INDEX rollout_environment_environment_idx ON rollout_environment (environment_id);

CREATE FUNCTION rollout_environment_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.environment_id <> OLD.environment_id OR NEW.wave <> OLD.wave
       OR NEW.from_revision <> OLD.from_revision THEN
        RAISE EXCEPTION 'a roll-out''s environment, wave and starting revision never change'
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.state <> OLD.state AND NOT (
           (OLD.state = 'pending' AND NEW.state IN ('running', 'skipped'))
        OR (OLD.state = 'running' AND NEW.state IN ('succeeded', 'failed'))
        OR (OLD.state = 'failed' AND NEW.state IN ('running', 'skipped', 'rolling_back'))
        OR (OLD.state = 'succeeded' AND NEW.state = 'rolling_back')
        OR (OLD.state = 'rolling_back' AND NEW.state IN ('rolled_back', 'failed'))) THEN
        RAISE EXCEPTION 'a roll-out''s environment cannot go from % to %', OLD.state, NEW.state
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER rollout_environment_transition BEFORE UPDATE ON rollout_environment
    FOR EACH ROW EXECUTE FUNCTION rollout_environment_transition();

-- One approval per approver and wave; whoever started the roll-out is refused here too.
CREATE TABLE rollout_approval (
    rollout_id  uuid NOT NULL,
    wave        integer NOT NULL,
    starter_id  uuid NOT NULL,
    approver_id uuid NOT NULL REFERENCES app_user (id),
    comment     text NOT NULL DEFAULT '' CHECK (length(comment) <= 2000),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rollout_id, wave, approver_id),
    FOREIGN KEY (rollout_id, wave) REFERENCES rollout_wave (rollout_id, wave) ON DELETE CASCADE,
    FOREIGN KEY (rollout_id, starter_id) REFERENCES rollout (id, started_by) ON DELETE CASCADE,
    CHECK (approver_id <> starter_id)
);
