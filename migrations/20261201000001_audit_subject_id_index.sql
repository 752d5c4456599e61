-- The audit log is filtered by a subject's id alone as well as by `kind:id` (API.md): index the
-- part after the kind, the same expression the query uses.
CREATE INDEX audit_event_subject_id_idx
    ON audit_event ((substr(subject, strpos(subject, ':') + 1)), at DESC, id DESC);
