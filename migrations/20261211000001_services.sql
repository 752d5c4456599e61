-- Services onboarded onto a platform by an app team (the golden path): the team that owns it,
-- the environments it deploys to, its repository and its onboarding job.
CREATE TABLE service (
    id             uuid PRIMARY KEY,
    platform_id    uuid NOT NULL REFERENCES platform (id) ON DELETE CASCADE,
    name           text NOT NULL CHECK (name ~ '^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$'),
    -- A team with services is not deleted underneath them.
    team_id        uuid NOT NULL,
    state          text NOT NULL DEFAULT 'onboarding'
                   CHECK (state IN ('onboarding', 'ready', 'failed')),
    repository     text CHECK (length(repository) <= 2048),
    error          text CHECK (length(error) <= 4000),
    job_id         bigint,
    created_by     uuid NOT NULL REFERENCES app_user (id),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (platform_id, name),
    FOREIGN KEY (team_id, platform_id) REFERENCES team (id, platform_id) ON DELETE RESTRICT,
    CHECK ((state = 'failed') = (error IS NOT NULL))
);
CREATE INDEX service_team_idx ON service (team_id);

CREATE TABLE service_environment (
    service_id      uuid NOT NULL REFERENCES service (id) ON DELETE CASCADE,
    environment_id  uuid NOT NULL REFERENCES environment (id) ON DELETE CASCADE,
    PRIMARY KEY (service_id, environment_id)
);
CREATE INDEX service_environment_environment_idx ON service_environment (environment_id);

-- Onboarding ends ready or failed; a failed one may be tried again. Nothing else moves.
CREATE FUNCTION service_transition() RETURNS trigger AS $$
BEGIN
    IF NEW.state <> OLD.state AND NOT (
        (OLD.state = 'onboarding' AND NEW.state IN ('ready', 'failed'))
        OR (OLD.state = 'failed' AND NEW.state = 'onboarding')
    ) THEN
        RAISE EXCEPTION 'a service cannot go from % to %', OLD.state, NEW.state
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.name <> OLD.name OR NEW.platform_id <> OLD.platform_id THEN
        RAISE EXCEPTION 'a service''s name and platform never change'
            USING ERRCODE = 'check_violation';
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER service_transition BEFORE UPDATE ON service
    FOR EACH ROW EXECUTE FUNCTION service_transition();
