-- The audit page and API filter by actor e-mail, case-insensitively, newest first.
CREATE INDEX audit_event_actor_label_idx ON audit_event (lower(actor_label), at DESC, id DESC);
