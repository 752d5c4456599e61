//! An environment's own VPC, as an AWS landing zone would build it: private subnets for nodes
//! and public ones for load balancers in two availability zones that EKS supports, an internet
//! gateway, one NAT gateway for the private subnets' way out, route tables, and the tags the AWS
//! Load Balancer Controller discovers subnets by. Every piece carries the environment's owner tag
//! and a `Name`, and is found by them before it is made, so a re-run after a crash at any point
//! makes nothing twice; teardown deletes exactly what carries the tag.

use ipnet::Ipv4Net;

use super::cloud::{CloudError, OWNER_TAG, Tags};
use super::ec2::{Ec2, Item, tag_specification};

/// Availability zones (by zone id, the same in every account) where EKS cannot place a cluster:
/// subnets there make `CreateCluster` fail with `UnsupportedAvailabilityZoneException`.
const EKS_UNSUPPORTED_ZONES: [&str; 3] = ["use1-az3", "usw1-az2", "cac1-az3"];

/// How many zones an environment spans: the fewest EKS accepts.
pub const ZONES: usize = 2;

/// What the network step asks for: the environment's range and the names to tag with.
#[derive(Debug, Clone)]
pub struct VpcRequest {
    pub cidr: Ipv4Net,
    /// The cluster's name: `Name` tags are `<name>-private-a` and the like.
    pub name: String,
    /// The environment's tags (the owner tag among them).
    pub tags: Tags,
    /// Idempotency token for the NAT gateway (EC2 `ClientToken`), derived from the job.
    pub request_token: String,
}

/// The VPC as built: what the cluster and its nodes use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vpc {
    pub id: String,
    pub private_subnets: Vec<String>,
    pub public_subnets: Vec<String>,
}

/// An availability zone as EC2 describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    pub name: String,
    pub id: String,
}

/// The first [`ZONES`] zones EKS supports, by name; an error names the zones there are.
pub fn choose_zones(mut zones: Vec<Zone>) -> Result<Vec<Zone>, CloudError> {
    zones.sort_by(|a, b| a.name.cmp(&b.name));
    let all: Vec<String> = zones.iter().map(|z| z.name.clone()).collect();
    let usable: Vec<Zone> = zones
        .into_iter()
        .filter(|z| !EKS_UNSUPPORTED_ZONES.contains(&z.id.as_str()))
        .take(ZONES)
        .collect();
    if usable.len() < ZONES {
        return Err(CloudError::Permanent(format!(
            "EKS needs subnets in {ZONES} availability zones it supports, and the region offers {} ({})",
            usable.len(),
            all.join(", ")
        )));
    }
    Ok(usable)
}

/// The subnet ranges of an environment range, per zone: the first half holds the private
/// subnets (one quarter of the range each, for nodes and pods), the next eighth the public ones
/// (a sixteenth each, for load balancers and the NAT gateway); the rest is left for later.
pub fn subnet_ranges(cidr: Ipv4Net) -> Result<Vec<(Ipv4Net, Ipv4Net)>, CloudError> {
    let quarters: Vec<Ipv4Net> = cidr
        .subnets(cidr.prefix_len() + 2)
        .map_err(|_| CloudError::Permanent(format!("{cidr} is too small for a VPC")))?
        .collect();
    let public: Vec<Ipv4Net> = quarters[2]
        .subnets(cidr.prefix_len() + 4)
        .map_err(|_| CloudError::Permanent(format!("{cidr} is too small for a VPC")))?
        .collect();
    Ok((0..ZONES).map(|z| (quarters[z], public[z])).collect())
}

fn letter(zone: usize) -> char {
    char::from(b'a' + zone as u8)
}

/// The environment's VPC in the account: each piece found by its tags, or made.
pub async fn ensure(ec2: &Ec2, request: &VpcRequest) -> Result<Vpc, CloudError> {
    let owner = owner(&request.tags)?;
    let tags = |name: &str| -> Vec<(String, String)> {
        let mut tags: Vec<(String, String)> = request
            .tags
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        tags.push(("Name".into(), format!("{}-{name}", request.name)));
        tags
    };
    let spec = |kind: &str, name: &str| {
        let tags = tags(name);
        let pairs: Vec<(&str, &str)> = tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        tag_specification(kind, &pairs)
    };
    let zones = choose_zones(zones(ec2).await?)?;
    let ranges = subnet_ranges(request.cidr)?;

    let mut params = vec![("CidrBlock".to_owned(), request.cidr.to_string())];
    params.extend(spec("vpc", "vpc"));
    let vpc = found_or_made(
        ec2,
        &owner,
        &request.name,
        "vpc",
        VPCS,
        ("CreateVpc", &params),
    )
    .await?;
    // Private endpoints and node registration need the VPC's DNS names (one attribute a call).
    for attribute in ["EnableDnsSupport", "EnableDnsHostnames"] {
        let params = [
            ("VpcId".to_owned(), vpc.clone()),
            (format!("{attribute}.Value"), "true".to_owned()),
        ];
        ec2.act("ModifyVpcAttribute", &params, &[]).await?;
    }

    let mut private_subnets = vec![];
    let mut public_subnets = vec![];
    for (z, (zone, (private, public))) in zones.iter().zip(&ranges).enumerate() {
        for (tier, range, elb_role) in [
            ("private", private, "kubernetes.io/role/internal-elb"),
            ("public", public, "kubernetes.io/role/elb"),
        ] {
            let name = format!("{tier}-{}", letter(z));
            let mut all = tags(&name);
            all.push((elb_role.to_owned(), "1".to_owned()));
            let pairs: Vec<(&str, &str)> =
                all.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let mut params = vec![
                ("VpcId".to_owned(), vpc.clone()),
                ("CidrBlock".to_owned(), range.to_string()),
                ("AvailabilityZone".to_owned(), zone.name.clone()),
            ];
            params.extend(tag_specification("subnet", &pairs));
            let id = found_or_made(
                ec2,
                &owner,
                &request.name,
                &name,
                SUBNETS,
                ("CreateSubnet", &params),
            )
            .await?;
            if tier == "public" {
                let params = [
                    ("SubnetId".to_owned(), id.clone()),
                    ("MapPublicIpOnLaunch.Value".to_owned(), "true".to_owned()),
                ];
                ec2.act("ModifySubnetAttribute", &params, &[]).await?;
                public_subnets.push(id);
            } else {
                private_subnets.push(id);
            }
        }
    }

    let gateway = found_or_made(
        ec2,
        &owner,
        &request.name,
        "igw",
        GATEWAYS,
        ("CreateInternetGateway", &spec("internet-gateway", "igw")),
    )
    .await?;
    ec2.act(
        "AttachInternetGateway",
        &[
            ("InternetGatewayId".to_owned(), gateway.clone()),
            ("VpcId".to_owned(), vpc.clone()),
        ],
        &["Resource.AlreadyAssociated"],
    )
    .await?;

    let mut params = vec![("Domain".to_owned(), "vpc".to_owned())];
    params.extend(spec("elastic-ip", "nat"));
    let address = found_or_made(
        ec2,
        &owner,
        &request.name,
        "nat",
        ADDRESSES,
        ("AllocateAddress", &params),
    )
    .await?;
    let nat = match live_nat(ec2, &owner, &request.name).await? {
        Some(id) => id,
        None => {
            let mut params = vec![
                ("SubnetId".to_owned(), public_subnets[0].clone()),
                ("AllocationId".to_owned(), address),
                ("ClientToken".to_owned(), request.request_token.clone()),
            ];
            params.extend(spec("natgateway", "nat"));
            // Its ClientToken makes a repeat return the first one. Where it does not (moto),
            // a repeat finds the address taken by the gateway the first call made, in the
            // public subnet of this VPC, which only Slipway uses: that one is ours.
            match ec2
                .create_with_token_unless(
                    "CreateNatGateway",
                    &params,
                    &["natGateway", "natGatewayId"],
                    &["Resource.AlreadyAssociated"],
                )
                .await?
            {
                Some(id) => id,
                None => nat_in_subnet(ec2, &public_subnets[0]).await?.ok_or_else(|| {
                    CloudError::Transient(format!(
                        "the NAT gateway's Elastic IP is taken, but no NAT gateway of {} in {} holds it yet",
                        request.name, public_subnets[0]
                    ))
                })?,
            }
        }
    };

    for (tier, subnets, target, via) in [
        ("public", &public_subnets, "GatewayId", &gateway),
        ("private", &private_subnets, "NatGatewayId", &nat),
    ] {
        let name = format!("{tier}-routes");
        let mut params = vec![("VpcId".to_owned(), vpc.clone())];
        params.extend(spec("route-table", &name));
        let table = found_or_made(
            ec2,
            &owner,
            &request.name,
            &name,
            ROUTE_TABLES,
            ("CreateRouteTable", &params),
        )
        .await?;
        ec2.act(
            "CreateRoute",
            &[
                ("RouteTableId".to_owned(), table.clone()),
                ("DestinationCidrBlock".to_owned(), "0.0.0.0/0".to_owned()),
                (target.to_owned(), via.clone()),
            ],
            &["RouteAlreadyExists"],
        )
        .await?;
        for subnet in subnets {
            ec2.act(
                "AssociateRouteTable",
                &[
                    ("RouteTableId".to_owned(), table.clone()),
                    ("SubnetId".to_owned(), subnet.clone()),
                ],
                &["Resource.AlreadyAssociated"],
            )
            .await?;
        }
    }
    Ok(Vpc {
        id: vpc,
        private_subnets,
        public_subnets,
    })
}

/// What deleting the environment's VPC still waits for (a NAT gateway being deleted), after one
/// pass of deleting what carries its owner tag; empty once everything is gone. Each pass does
/// what it can, so repeated passes converge whatever state a crash left.
pub async fn delete(ec2: &Ec2, tags: &Tags) -> Result<Vec<String>, CloudError> {
    let owner = owner(tags)?;
    let by_owner = [(format!("tag:{OWNER_TAG}"), owner.clone())];
    let filters: Vec<(&str, &str)> = by_owner
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut waiting = vec![];
    for nat in ec2
        .describe("DescribeNatGateways", "natGatewaySet", &filters)
        .await?
    {
        let id = nat.get("natGatewayId")?;
        match nat.get("state")?.as_str() {
            "deleted" => {}
            "deleting" => waiting.push(format!("NAT gateway {id} is being deleted")),
            _ => {
                ec2.act(
                    "DeleteNatGateway",
                    &[("NatGatewayId".to_owned(), id.clone())],
                    &["NatGatewayNotFound"],
                )
                .await?;
                waiting.push(format!("NAT gateway {id} is being deleted"));
            }
        }
    }
    if !waiting.is_empty() {
        // Its address and subnet stay in use until it is gone.
        return Ok(waiting);
    }
    for address in ec2
        .describe("DescribeAddresses", "addressesSet", &filters)
        .await?
    {
        ec2.act(
            "ReleaseAddress",
            &[("AllocationId".to_owned(), address.get("allocationId")?)],
            &["InvalidAllocationID.NotFound"],
        )
        .await?;
    }
    let vpcs = ec2.describe("DescribeVpcs", "vpcSet", &filters).await?;
    for gateway in ec2
        .describe("DescribeInternetGateways", "internetGatewaySet", &filters)
        .await?
    {
        let id = gateway.get("internetGatewayId")?;
        for vpc in &vpcs {
            ec2.act(
                "DetachInternetGateway",
                &[
                    ("InternetGatewayId".to_owned(), id.clone()),
                    ("VpcId".to_owned(), vpc.get("vpcId")?),
                ],
                &["Gateway.NotAttached", "InvalidInternetGatewayID.NotFound"],
            )
            .await?;
        }
        ec2.act(
            "DeleteInternetGateway",
            &[("InternetGatewayId".to_owned(), id)],
            &["InvalidInternetGatewayID.NotFound"],
        )
        .await?;
    }
    for subnet in ec2
        .describe("DescribeSubnets", "subnetSet", &filters)
        .await?
    {
        ec2.act(
            "DeleteSubnet",
            &[("SubnetId".to_owned(), subnet.get("subnetId")?)],
            &["InvalidSubnetID.NotFound"],
        )
        .await?;
    }
    for (table, associations) in ec2.route_tables(&filters).await? {
        // A table still associated cannot be deleted (a subnet's deletion may leave its
        // association behind).
        for association in associations {
            ec2.act(
                "DisassociateRouteTable",
                &[("AssociationId".to_owned(), association)],
                &["InvalidAssociationID.NotFound"],
            )
            .await?;
        }
        ec2.act(
            "DeleteRouteTable",
            &[("RouteTableId".to_owned(), table)],
            &["InvalidRouteTableID.NotFound"],
        )
        .await?;
    }
    for vpc in vpcs {
        ec2.act(
            "DeleteVpc",
            &[("VpcId".to_owned(), vpc.get("vpcId")?)],
            &["InvalidVpcID.NotFound"],
        )
        .await?;
    }
    Ok(vec![])
}

/// What of any environment's network is still in the account: VPCs, NAT gateways that are
/// not deleted, and Elastic IPs, each carrying [`OWNER_TAG`] (a pooled account's check that it
/// is empty).
pub async fn leftovers(ec2: &Ec2) -> Result<Vec<String>, CloudError> {
    let owned = [("tag-key", OWNER_TAG)];
    let mut left = vec![];
    for vpc in ec2.describe("DescribeVpcs", "vpcSet", &owned).await? {
        left.push(format!("VPC {}", vpc.get("vpcId")?));
    }
    for nat in ec2
        .describe("DescribeNatGateways", "natGatewaySet", &owned)
        .await?
    {
        if nat.get("state")? != "deleted" {
            left.push(format!("NAT gateway {}", nat.get("natGatewayId")?));
        }
    }
    for address in ec2
        .describe("DescribeAddresses", "addressesSet", &owned)
        .await?
    {
        left.push(format!("Elastic IP {}", address.get("allocationId")?));
    }
    Ok(left)
}

fn owner(tags: &Tags) -> Result<String, CloudError> {
    tags.get(OWNER_TAG)
        .cloned()
        .ok_or_else(|| CloudError::Permanent("the VPC's tags have no owner tag".into()))
}

async fn zones(ec2: &Ec2) -> Result<Vec<Zone>, CloudError> {
    ec2.describe(
        "DescribeAvailabilityZones",
        "availabilityZoneInfo",
        &[("state", "available"), ("zone-type", "availability-zone")],
    )
    .await?
    .iter()
    .map(|z| {
        Ok(Zone {
            name: z.get("zoneName")?,
            id: z.get("zoneId")?,
        })
    })
    .collect()
}

/// How a kind of piece is looked up, and where its id is: the Describe call, its result set and
/// id field, and the id's path in the answer to its creation.
struct Lookup {
    action: &'static str,
    set: &'static str,
    id: &'static str,
    created: [&'static str; 2],
}

const VPCS: Lookup = Lookup {
    action: "DescribeVpcs",
    set: "vpcSet",
    id: "vpcId",
    created: ["vpc", "vpcId"],
};
const SUBNETS: Lookup = Lookup {
    action: "DescribeSubnets",
    set: "subnetSet",
    id: "subnetId",
    created: ["subnet", "subnetId"],
};
const GATEWAYS: Lookup = Lookup {
    action: "DescribeInternetGateways",
    set: "internetGatewaySet",
    id: "internetGatewayId",
    created: ["internetGateway", "internetGatewayId"],
};
const ADDRESSES: Lookup = Lookup {
    action: "DescribeAddresses",
    set: "addressesSet",
    id: "allocationId",
    created: ["allocationId", ""],
};
const ROUTE_TABLES: Lookup = Lookup {
    action: "DescribeRouteTables",
    set: "routeTableSet",
    id: "routeTableId",
    created: ["routeTable", "routeTableId"],
};

/// The id of the piece `<cluster>-<name>`: found by its tags, else made by `create` (an action
/// and its parameters). A creation that failed transiently, its answer lost say, may still have
/// happened: the piece is looked for again before each new try (three at most), so none is made
/// twice.
async fn found_or_made(
    ec2: &Ec2,
    owner: &str,
    cluster: &str,
    name: &str,
    lookup: Lookup,
    (action, params): (&str, &[(String, String)]),
) -> Result<String, CloudError> {
    let path: Vec<&str> = lookup
        .created
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect();
    let mut tries = 1;
    loop {
        if let Some(item) = find(ec2, lookup.action, lookup.set, owner, cluster, name).await? {
            return item.get(lookup.id);
        }
        match ec2.create(action, params, &path).await {
            Err(CloudError::Transient(_)) if tries < 3 => {
                tokio::time::sleep(std::time::Duration::from_millis(500 * tries)).await;
                tries += 1;
            }
            made => return made,
        }
    }
}

/// The piece of the environment's VPC named `<cluster>-<name>`, if it exists.
async fn find(
    ec2: &Ec2,
    action: &str,
    set: &str,
    owner: &str,
    cluster: &str,
    name: &str,
) -> Result<Option<Item>, CloudError> {
    let name = format!("{cluster}-{name}");
    Ok(ec2
        .describe(
            action,
            set,
            &[(&format!("tag:{OWNER_TAG}"), owner), ("tag:Name", &name)],
        )
        .await?
        .into_iter()
        .next())
}

/// The live NAT gateway in `subnet`, whatever its tags.
async fn nat_in_subnet(ec2: &Ec2, subnet: &str) -> Result<Option<String>, CloudError> {
    live_nat_with(ec2, &[("subnet-id", subnet)]).await
}

/// The environment's NAT gateway unless it is failed or deleted (those are replaced).
async fn live_nat(ec2: &Ec2, owner: &str, cluster: &str) -> Result<Option<String>, CloudError> {
    let name = format!("{cluster}-nat");
    live_nat_with(
        ec2,
        &[(&format!("tag:{OWNER_TAG}"), owner), ("tag:Name", &name)],
    )
    .await
}

/// The first NAT gateway `filters` find that is not failed or deleted.
async fn live_nat_with(ec2: &Ec2, filters: &[(&str, &str)]) -> Result<Option<String>, CloudError> {
    for nat in ec2
        .describe("DescribeNatGateways", "natGatewaySet", filters)
        .await?
    {
        if !matches!(
            nat.get("state")?.as_str(),
            "failed" | "deleting" | "deleted"
        ) {
            return Ok(Some(nat.get("natGatewayId")?));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(name: &str, id: &str) -> Zone {
        Zone {
            name: name.into(),
            id: id.into(),
        }
    }

    #[test]
    fn the_zones_are_two_that_eks_supports() {
        // us-east-1's zone names map to ids per account; use1-az3 is the one EKS refuses.
        let zones = vec![
            zone("us-east-1b", "use1-az1"),
            zone("us-east-1a", "use1-az3"),
            zone("us-east-1c", "use1-az2"),
        ];
        let chosen: Vec<String> = choose_zones(zones)
            .unwrap()
            .into_iter()
            .map(|z| z.name)
            .collect();
        assert_eq!(chosen, ["us-east-1b", "us-east-1c"]);
        let Err(CloudError::Permanent(message)) = choose_zones(vec![
            zone("ca-central-1a", "cac1-az1"),
            zone("ca-central-1d", "cac1-az3"),
        ]) else {
            panic!("one supported zone is not enough")
        };
        assert!(
            message.contains("offers 1 (ca-central-1a, ca-central-1d)"),
            "{message}"
        );
    }

    #[test]
    fn subnets_split_the_range_without_overlap() {
        let ranges = subnet_ranges("10.64.0.0/16".parse().unwrap()).unwrap();
        let shown: Vec<(String, String)> = ranges
            .iter()
            .map(|(private, public)| (private.to_string(), public.to_string()))
            .collect();
        assert_eq!(
            shown,
            [
                ("10.64.0.0/18".to_owned(), "10.64.128.0/20".to_owned()),
                ("10.64.64.0/18".to_owned(), "10.64.144.0/20".to_owned()),
            ]
        );
        let smallest = subnet_ranges("10.64.0.0/24".parse().unwrap()).unwrap();
        assert_eq!(smallest[1].1.to_string(), "10.64.0.144/28");
    }
}
