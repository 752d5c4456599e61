-- Live progress of environments: every timeline entry (each state change, approval, extension)
-- is announced on `slipway_job_progress` as `environment:<id>`, beside the job ids, so the
-- request page and `GET /api/v1/environments/{id}/events` follow both.
CREATE FUNCTION environment_progress_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('slipway_job_progress', 'environment:' || NEW.environment_id::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER environment_progress AFTER INSERT ON environment_event
    FOR EACH ROW EXECUTE FUNCTION environment_progress_notify();
