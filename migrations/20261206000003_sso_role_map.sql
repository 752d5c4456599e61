-- The OIDC group -> role mapping as an admin edited it on the Single sign-on page; while this
-- table is empty the `oidc_role_map` setting is in force. One row: one mapping for all replicas.
CREATE TABLE sso_role_map (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    -- [{"group": "...", "role": "developer" | "platform_engineer" | "admin"}, ...]
    mapping    jsonb NOT NULL CHECK (jsonb_typeof(mapping) = 'array'),
    updated_by uuid NOT NULL REFERENCES app_user (id),
    updated_at timestamptz NOT NULL DEFAULT now()
);
