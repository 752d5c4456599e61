-- The simulated cloud keeps EKS add-ons too (the provisioning plan's `addons` step).
ALTER TABLE simulated_resource
    DROP CONSTRAINT simulated_resource_kind_check,
    ADD CONSTRAINT simulated_resource_kind_check
        CHECK (kind IN ('account', 'cluster', 'nodegroup', 'addon', 'object'));
