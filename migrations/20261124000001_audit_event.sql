-- The append-only audit log: who did what to which subject, and when. Every later capability
-- (logins, role changes, approvals, job actions) writes here; nothing may rewrite history, so
-- UPDATE and DELETE are refused by the database itself, not just by Slipway's code.
CREATE TABLE audit_event (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    -- The acting user's id once users exist; NULL for the system (workers, migrations).
    actor_id    uuid,
    -- A readable name of the actor at the time (email or "system"), kept when users are renamed.
    actor_label text NOT NULL CHECK (length(actor_label) BETWEEN 1 AND 320),
    action      text NOT NULL CHECK (action ~ '^[a-z][a-z0-9_.]*$'),
    subject     text NOT NULL CHECK (length(subject) BETWEEN 1 AND 500),
    details     jsonb NOT NULL DEFAULT '{}'::jsonb,
    request_id  text
);

-- Keyset pagination over the newest first, overall and per subject or actor.
CREATE INDEX audit_event_at_idx ON audit_event (at DESC, id DESC);
CREATE INDEX audit_event_subject_idx ON audit_event (subject, at DESC, id DESC);
CREATE INDEX audit_event_actor_idx ON audit_event (actor_id, at DESC, id DESC) WHERE actor_id IS NOT NULL;

CREATE FUNCTION audit_event_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_event is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_event_append_only
    BEFORE UPDATE OR DELETE ON audit_event
    FOR EACH STATEMENT EXECUTE FUNCTION audit_event_is_append_only();

CREATE TRIGGER audit_event_no_truncate
    BEFORE TRUNCATE ON audit_event
    FOR EACH STATEMENT EXECUTE FUNCTION audit_event_is_append_only();
