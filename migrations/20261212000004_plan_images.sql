-- The container images an environment's plan runs, kept beside the plan so the Maintain tab
-- compares them with Slipway's current pins without reading whole plans.
ALTER TABLE environment ADD COLUMN plan_images jsonb
    GENERATED ALWAYS AS (jsonb_path_query_array(plan, 'strict $.**.image')) STORED;
