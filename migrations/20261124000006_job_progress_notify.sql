-- Live progress: every change to a job's state or its steps is announced on the channel
-- `slipway_job_progress` (payload: the job id), which feeds the Server-Sent Events streams.
CREATE FUNCTION job_step_progress_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('slipway_job_progress', NEW.job_id::text);
    RETURN NULL;
END;
$$;

CREATE FUNCTION job_state_progress_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('slipway_job_progress', NEW.id::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER job_step_progress AFTER INSERT OR UPDATE ON job_step
    FOR EACH ROW EXECUTE FUNCTION job_step_progress_notify();

CREATE TRIGGER job_state_progress AFTER UPDATE OF state, cancel_requested ON job
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.cancel_requested IS DISTINCT FROM NEW.cancel_requested)
    EXECUTE FUNCTION job_state_progress_notify();
