-- The simulated cloud keeps organizational units too (the account step places every account in
-- its platform's unit).
ALTER TABLE simulated_resource
    DROP CONSTRAINT simulated_resource_kind_check,
    ADD CONSTRAINT simulated_resource_kind_check
        CHECK (kind IN ('account', 'unit', 'cluster', 'nodegroup', 'addon', 'pod_identity', 'object'));
