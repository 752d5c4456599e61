-- The simulated cloud keeps EKS access entries too (the cluster step gives the platform team
-- and each team its entry).
ALTER TABLE simulated_resource
    DROP CONSTRAINT simulated_resource_kind_check,
    ADD CONSTRAINT simulated_resource_kind_check
        CHECK (kind IN ('account', 'unit', 'cluster', 'nodegroup', 'addon', 'pod_identity',
                        'access_entry', 'object'));
