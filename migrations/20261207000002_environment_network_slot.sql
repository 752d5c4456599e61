-- Each environment's VPC range is a slot of its platform's range (blueprint `network`), chosen by
-- the provisioning job's network step: no two live environments of a platform share one, so
-- their VPCs never overlap (peering and Transit Gateway stay possible). A torn-down
-- environment's slot is free again.
ALTER TABLE environment ADD COLUMN network_slot integer CHECK (network_slot >= 0);

CREATE UNIQUE INDEX environment_live_network_slot ON environment (platform_id, network_slot)
    WHERE network_slot IS NOT NULL AND state NOT IN ('rejected', 'cancelled', 'expired', 'torn_down');
