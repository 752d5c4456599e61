-- The Define phase: platforms and their members, the technical scope, versioned blueprints with
-- reviews, and the implementation-plan backlog.

CREATE TABLE platform (
    id          uuid PRIMARY KEY,
    slug        text NOT NULL UNIQUE CHECK (slug ~ '^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    description text NOT NULL DEFAULT '' CHECK (length(description) <= 2000),
    owner_team  text NOT NULL CHECK (length(owner_team) BETWEEN 1 AND 100),
    created_by  uuid NOT NULL REFERENCES app_user (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    archived_at timestamptz
);
CREATE INDEX platform_active_idx ON platform (name) WHERE archived_at IS NULL;

-- Platform engineers act on the platforms they belong to.
CREATE TABLE platform_member (
    platform_id uuid NOT NULL REFERENCES platform (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES app_user (id) ON DELETE CASCADE,
    added_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (platform_id, user_id)
);
CREATE INDEX platform_member_user_idx ON platform_member (user_id);

-- One technical scope per platform; the document is validated by Slipway before it is stored.
CREATE TABLE technical_scope (
    platform_id uuid PRIMARY KEY REFERENCES platform (id) ON DELETE CASCADE,
    document    jsonb NOT NULL,
    updated_by  uuid NOT NULL REFERENCES app_user (id),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE blueprint_revision (
    platform_id  uuid NOT NULL REFERENCES platform (id) ON DELETE CASCADE,
    number       integer NOT NULL CHECK (number >= 1),
    state        text NOT NULL DEFAULT 'draft'
                 CHECK (state IN ('draft', 'in_review', 'approved', 'superseded')),
    author_id    uuid NOT NULL REFERENCES app_user (id),
    -- The revision this one was edited from (NULL for the first one, from the template).
    base_number  integer,
    document     jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    submitted_at timestamptz,
    approved_at  timestamptz,
    approved_by  uuid REFERENCES app_user (id),
    PRIMARY KEY (platform_id, number),
    -- Nobody approves their own blueprint, whatever the code above does.
    CHECK (approved_by IS NULL OR approved_by <> author_id)
);
-- At most one approved revision per platform.
CREATE UNIQUE INDEX blueprint_one_approved ON blueprint_revision (platform_id) WHERE state = 'approved';

-- Revisions move draft → in_review → approved → superseded, and never back.
CREATE FUNCTION blueprint_revision_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.document IS DISTINCT FROM OLD.document OR NEW.number <> OLD.number
       OR NEW.author_id <> OLD.author_id THEN
        RAISE EXCEPTION 'blueprint revisions are immutable: save a new revision instead'
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.state <> OLD.state AND NOT (
           (OLD.state = 'draft' AND NEW.state = 'in_review')
        OR (OLD.state = 'in_review' AND NEW.state = 'approved')
        OR (OLD.state = 'approved' AND NEW.state = 'superseded')) THEN
        RAISE EXCEPTION 'blueprint revision cannot go from % to %', OLD.state, NEW.state
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER blueprint_revision_transition BEFORE UPDATE ON blueprint_revision
    FOR EACH ROW EXECUTE FUNCTION blueprint_revision_transition();

CREATE TABLE blueprint_review (
    id          uuid PRIMARY KEY,
    platform_id uuid NOT NULL,
    number      integer NOT NULL,
    reviewer_id uuid NOT NULL REFERENCES app_user (id),
    verdict     text NOT NULL CHECK (verdict IN ('approve', 'request_changes', 'comment')),
    comment     text NOT NULL DEFAULT '' CHECK (length(comment) <= 10000),
    created_at  timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (platform_id, number) REFERENCES blueprint_revision (platform_id, number) ON DELETE CASCADE
);
CREATE INDEX blueprint_review_revision_idx ON blueprint_review (platform_id, number, created_at);

CREATE TABLE backlog_item (
    id            uuid PRIMARY KEY,
    platform_id   uuid NOT NULL REFERENCES platform (id) ON DELETE CASCADE,
    -- Stable per deliverable (`cluster:perf`); NULL for items people added by hand.
    key           text,
    title         text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    description   text NOT NULL DEFAULT '' CHECK (length(description) <= 10000),
    phase         text NOT NULL CHECK (phase IN ('define', 'deliver', 'exploit', 'maintain')),
    status        text NOT NULL DEFAULT 'todo'
                  CHECK (status IN ('todo', 'doing', 'blocked', 'done', 'obsolete')),
    rank          bigint NOT NULL,
    estimate_days double precision CHECK (estimate_days IS NULL OR estimate_days BETWEEN 0 AND 1000),
    assignee      text CHECK (assignee IS NULL OR length(assignee) BETWEEN 1 AND 200),
    depends_on    uuid[] NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (platform_id, key)
);
CREATE INDEX backlog_item_rank_idx ON backlog_item (platform_id, rank, id);
