-- The Exploit phase's teams: a platform's app teams with their members (named here, or by the
-- single-sign-on group that maps to the team), the IAM role that identifies them in AWS, and
-- the namespaces they get in every environment they use. The blueprint's `access.teams` (roles
-- only) becomes teams here; the blueprint keeps the platform team's role.

ALTER TABLE app_user ADD COLUMN oidc_groups text[] NOT NULL DEFAULT '{}'
    CHECK (cardinality(oidc_groups) <= 500);

CREATE TABLE team (
    id            uuid PRIMARY KEY,
    platform_id   uuid NOT NULL REFERENCES platform (id) ON DELETE CASCADE,
    name          text NOT NULL CHECK (name ~ '^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$'),
    aws_role_arn  text CHECK (aws_role_arn LIKE 'arn:aws%:iam::%:role/%' AND length(aws_role_arn) <= 2048),
    oidc_group    text CHECK (length(oidc_group) BETWEEN 1 AND 200),
    -- Its namespaces, when the blueprint gives each team its own (security.namespaces_per_team).
    namespaces    text[] NOT NULL CHECK (cardinality(namespaces) BETWEEN 1 AND 5),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (platform_id, name),
    UNIQUE (id, platform_id)
);

CREATE TABLE team_member (
    team_id   uuid NOT NULL REFERENCES team (id) ON DELETE CASCADE,
    user_id   uuid NOT NULL REFERENCES app_user (id) ON DELETE CASCADE,
    added_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX team_member_user_idx ON team_member (user_id);

-- A namespace belongs to one team of a platform: two teams never share one.
CREATE TABLE team_namespace (
    platform_id  uuid NOT NULL,
    namespace    text NOT NULL CHECK (namespace ~ '^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$'),
    team_id      uuid NOT NULL,
    PRIMARY KEY (platform_id, namespace),
    FOREIGN KEY (team_id, platform_id) REFERENCES team (id, platform_id) ON DELETE CASCADE
);

-- The teams an environment was built for (its plan has their namespaces and access entries).
CREATE TABLE environment_team (
    environment_id  uuid NOT NULL REFERENCES environment (id) ON DELETE CASCADE,
    team_id         uuid NOT NULL REFERENCES team (id) ON DELETE CASCADE,
    PRIMARY KEY (environment_id, team_id)
);
CREATE INDEX environment_team_team_idx ON environment_team (team_id);

-- Teams the blueprints named, from each platform's newest revision that names any.
INSERT INTO team (id, platform_id, name, aws_role_arn, namespaces)
SELECT DISTINCT ON (r.platform_id, t->>'name')
       gen_random_uuid(), r.platform_id, t->>'name', t->>'role_arn', ARRAY[t->>'name']
FROM blueprint_revision r, jsonb_array_elements(r.document->'access'->'teams') t
WHERE jsonb_typeof(r.document->'access'->'teams') = 'array'
ORDER BY r.platform_id, t->>'name', r.number DESC;
INSERT INTO team_namespace (platform_id, namespace, team_id)
SELECT platform_id, name, id FROM team ON CONFLICT DO NOTHING;
-- The one change to stored revisions: the field moves out of the document schema (as a dropped
-- column would), so the trigger keeping revisions immutable is off for this statement only.
ALTER TABLE blueprint_revision DISABLE TRIGGER blueprint_revision_transition;
UPDATE blueprint_revision SET document = document #- '{access,teams}'
WHERE document->'access' ? 'teams';
ALTER TABLE blueprint_revision ENABLE TRIGGER blueprint_revision_transition;
