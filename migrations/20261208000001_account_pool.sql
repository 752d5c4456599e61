-- The account pools of ephemeral environments: a platform's pool (its size and how its accounts
-- are named and placed, from the plan that last leased from it) and the accounts in it. An
-- environment leases an available account; its teardown empties the account (cleaning) and
-- gives it back, or quarantines it when something of Slipway's is left in it. State changes
-- are checked here, not only in Rust.

CREATE TABLE account_pool (
    platform    text PRIMARY KEY CHECK (platform ~ '^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$'),
    size        integer NOT NULL CHECK (size BETWEEN 0 AND 50),
    -- provision::pool::PoolSpec: account names, e-mail domain, unit, policies, tags.
    spec        jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE pooled_account (
    account_id      text PRIMARY KEY CHECK (account_id ~ '^[0-9]{12}$'),
    platform        text NOT NULL REFERENCES account_pool (platform),
    name            text NOT NULL UNIQUE,
    state           text NOT NULL DEFAULT 'available'
                        CHECK (state IN ('available', 'leased', 'cleaning', 'quarantined')),
    -- The lease (leased, cleaning), or the last one (quarantined).
    environment_id  uuid REFERENCES environment (id),
    leases          integer NOT NULL DEFAULT 0 CHECK (leases >= 0),
    -- Why it is quarantined: what was left in it, or what the clean-up met.
    reason          text,
    added_at        timestamptz NOT NULL DEFAULT now(),
    changed_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((state = 'available') = (environment_id IS NULL)),
    CHECK ((state = 'quarantined') = (reason IS NOT NULL))
);
-- An environment holds one account at most.
CREATE UNIQUE INDEX pooled_account_lease ON pooled_account (environment_id)
    WHERE state IN ('leased', 'cleaning');
CREATE INDEX pooled_account_available ON pooled_account (platform, changed_at)
    WHERE state = 'available';

CREATE FUNCTION pooled_account_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.account_id <> OLD.account_id OR NEW.platform <> OLD.platform OR NEW.name <> OLD.name THEN
        RAISE EXCEPTION 'a pooled account''s id, platform and name never change'
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.state <> OLD.state THEN
        IF NOT (
               (OLD.state = 'available' AND NEW.state = 'leased')
            OR (OLD.state = 'leased' AND NEW.state IN ('cleaning', 'quarantined'))
            OR (OLD.state = 'cleaning' AND NEW.state IN ('available', 'quarantined'))
            -- Checked again and found empty (someone removed what was left).
            OR (OLD.state = 'quarantined' AND NEW.state = 'available')) THEN
            RAISE EXCEPTION 'a pooled account cannot go from % to %', OLD.state, NEW.state
                USING ERRCODE = 'check_violation';
        END IF;
        IF NEW.state = 'leased' THEN
            NEW.leases := OLD.leases + 1;
        END IF;
        NEW.changed_at := now();
    ELSIF NEW.environment_id IS DISTINCT FROM OLD.environment_id THEN
        RAISE EXCEPTION 'a pooled account changes hands only by a lease'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER pooled_account_transition BEFORE UPDATE ON pooled_account
    FOR EACH ROW EXECUTE FUNCTION pooled_account_transition();
