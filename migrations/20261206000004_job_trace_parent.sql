-- The trace context of whoever enqueued the job (W3C traceparent), so its attempts continue
-- that trace; NULL while tracing is off.
ALTER TABLE job ADD COLUMN trace_parent text CHECK (length(trace_parent) <= 100);
