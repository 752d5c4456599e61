-- The simulated cloud keeps EKS Pod Identity associations too (the `addons` step gives Fluent
-- Bit and the collector their AWS roles).
ALTER TABLE simulated_resource
    DROP CONSTRAINT simulated_resource_kind_check,
    ADD CONSTRAINT simulated_resource_kind_check
        CHECK (kind IN ('account', 'cluster', 'nodegroup', 'addon', 'pod_identity', 'object'));
