-- An environment's plan outline: step, call and resource of each action, in plan order, as
-- `[[step, action, resource], ...]`. The environment's page lists it on every view; read from
-- the plan itself that meant decompressing and walking about 85 KB of JSON per view. A stored
-- generated column keeps it true whichever statement writes the plan (requests, changes,
-- upgrades, roll-outs and their rollbacks all do, some in SQL).
CREATE FUNCTION plan_outline(plan jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN (
        SELECT COALESCE(
                   jsonb_agg(jsonb_build_array(COALESCE(a->>'step', ''),
                                               COALESCE(a->>'action', ''),
                                               COALESCE(a->>'resource', ''))
                             ORDER BY position),
                   '[]'::jsonb)
        FROM jsonb_array_elements(CASE jsonb_typeof(plan) WHEN 'array' THEN plan ELSE '[]' END)
             WITH ORDINALITY AS t(a, position)
    );

ALTER TABLE environment
    ADD COLUMN plan_outline jsonb NOT NULL GENERATED ALWAYS AS (plan_outline(plan)) STORED;
