-- Identity and access: users, sessions, one-time links, API tokens, sign-in failures and the
-- instance secret that keys CSRF tokens.

CREATE TABLE app_user (
    id            uuid PRIMARY KEY,
    email         text NOT NULL CHECK (length(email) BETWEEN 3 AND 320 AND position('@' IN email) > 1),
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    roles         text[] NOT NULL DEFAULT '{}'
                  CHECK (roles <@ ARRAY['developer', 'platform_engineer', 'admin']::text[]),
    -- Argon2id PHC string; NULL for single-sign-on users and for invited users who have not
    -- set a password yet.
    password_hash text,
    -- Single-sign-on users are keyed by issuer and subject, never by e-mail.
    oidc_issuer   text,
    oidc_subject  text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_login_at timestamptz,
    CHECK ((oidc_issuer IS NULL) = (oidc_subject IS NULL)),
    CHECK (oidc_subject IS NULL OR password_hash IS NULL)
);
CREATE UNIQUE INDEX app_user_local_email_key ON app_user (lower(email)) WHERE oidc_subject IS NULL;
CREATE UNIQUE INDEX app_user_oidc_key ON app_user (oidc_issuer, oidc_subject) WHERE oidc_subject IS NOT NULL;
CREATE INDEX app_user_created_idx ON app_user (created_at, id);

-- Sessions live here so any number of `slipway serve` processes share them. Only a hash of the
-- cookie value is stored: a copy of this table does not let anyone sign in.
CREATE TABLE session (
    token_hash   bytea PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES app_user (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    user_agent   text,
    ip           inet
);
CREATE INDEX session_user_idx ON session (user_id);
CREATE INDEX session_expires_idx ON session (expires_at);

-- One-time links: the first-run setup of the first admin, and password links for invited users.
CREATE TABLE one_time_link (
    token_hash bytea PRIMARY KEY,
    purpose    text NOT NULL CHECK (purpose IN ('setup', 'set_password')),
    user_id    uuid REFERENCES app_user (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    CHECK ((purpose = 'setup') = (user_id IS NULL))
);

CREATE TABLE api_token (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES app_user (id) ON DELETE CASCADE,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    token_hash   bytea NOT NULL UNIQUE,
    -- The first characters of the token, shown so people can tell their tokens apart.
    prefix       text NOT NULL,
    -- The roles this token may use: a subset of its owner's roles, intersected again with the
    -- owner's current roles at each use.
    roles        text[] NOT NULL
                 CHECK (cardinality(roles) > 0
                        AND roles <@ ARRAY['developer', 'platform_engineer', 'admin']::text[]),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX api_token_user_idx ON api_token (user_id, created_at DESC);

-- Failed sign-ins, counted per account and per address for rate limiting.
CREATE TABLE login_failure (
    id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email text NOT NULL,
    ip    inet,
    at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_failure_email_idx ON login_failure (lower(email), at);
CREATE INDEX login_failure_ip_idx ON login_failure (ip, at);

-- OpenID Connect logins in flight: state → nonce and PKCE verifier, consumed once.
CREATE TABLE oidc_login (
    state_hash    bytea PRIMARY KEY,
    nonce         text NOT NULL,
    pkce_verifier text NOT NULL,
    next_path     text NOT NULL,
    expires_at    timestamptz NOT NULL
);

-- The instance's secret key (CSRF tokens), shared by every process on this database.
CREATE TABLE instance_secret (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    key        bytea NOT NULL CHECK (length(key) = 32),
    created_at timestamptz NOT NULL DEFAULT now()
);
-- gen_random_uuid() draws from the server's strong random source; two give 244 random bits.
INSERT INTO instance_secret (key) VALUES (uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()));
