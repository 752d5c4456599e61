//! The pinned versions of everything Slipway installs into a cluster, in one table: the
//! manifests take their images from here, and Maintain compares these rows against upstream.

use serde::Serialize;

/// The minor of a Kubernetes version `1.NN`.
pub fn minor_of(version: &str) -> Option<u32> {
    version.strip_prefix("1.")?.parse().ok()
}

/// How a component gets into the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Install {
    /// An EKS add-on that Slipway asks AWS for, with its configuration values (JSON), if any.
    EksAddon { configuration: Option<&'static str> },
    /// Manifests that Slipway generates and server-side applies (`manifests::operators` and
    /// `manifests::environment`).
    Manifests,
    /// Run by an operator from a custom resource that Slipway applies; the operator is the row
    /// of that name.
    Operator(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Component {
    pub name: &'static str,
    pub version: &'static str,
    /// Container images with their tags; the first is the component's own.
    pub images: &'static [&'static str],
    pub install: Install,
}

impl Component {
    /// The component's own image.
    pub fn image(&self) -> &'static str {
        self.images[0]
    }
}

/// EKS picks the add-on version that matches the cluster's Kubernetes version.
const EKS_DEFAULT: &str = "default for the cluster version";

const fn eks_addon(name: &'static str, configuration: Option<&'static str>) -> Component {
    Component {
        name,
        version: EKS_DEFAULT,
        images: &[],
        install: Install::EksAddon { configuration },
    }
}

/// The CNI enforces NetworkPolicies only when asked to; without it every policy is ignored.
pub const VPC_CNI: Component = eks_addon("vpc-cni", Some(r#"{"enableNetworkPolicy":"true"}"#));
pub const COREDNS: Component = eks_addon("coredns", None);
pub const KUBE_PROXY: Component = eks_addon("kube-proxy", None);
pub const EBS_CSI_DRIVER: Component = eks_addon("aws-ebs-csi-driver", None);
/// Gives the `fluent-bit` and `otel-collector` ServiceAccounts their AWS credentials.
pub const POD_IDENTITY_AGENT: Component = eks_addon("eks-pod-identity-agent", None);
pub const METRICS_SERVER: Component = eks_addon("metrics-server", None);
pub const CERT_MANAGER: Component = eks_addon("cert-manager", None);

/// Istio's CRDs (the `base` chart's kinds, with Slipway's reduced schemas); no image.
pub const ISTIO_BASE: Component = Component {
    name: "istio-base",
    version: "1.28.1",
    images: &[],
    install: Install::Manifests,
};
/// The sidecar image is istiod's to inject; it is pinned here so both move together.
pub const ISTIOD: Component = Component {
    name: "istiod",
    version: "1.28.1",
    images: &[
        "docker.io/istio/pilot:1.28.1",
        "docker.io/istio/proxyv2:1.28.1",
    ],
    install: Install::Manifests,
};
/// MongoDB Controllers for Kubernetes (MCK). MongoDB archived its Community Operator in
/// December 2025 in favour of MCK, which still serves `mongodbcommunity.mongodb.com/v1
/// MongoDBCommunity`; the other images are the ones MCK puts into a MongoDBCommunity's pods.
pub const MONGODB_OPERATOR: Component = Component {
    name: "mongodb-kubernetes",
    version: "1.6.1",
    images: &[
        "quay.io/mongodb/mongodb-kubernetes:1.6.1",
        "quay.io/mongodb/mongodb-agent:108.0.2.8729-1",
        "quay.io/mongodb/mongodb-kubernetes-operator-version-upgrade-post-start-hook:1.0.10",
        "quay.io/mongodb/mongodb-kubernetes-readinessprobe:1.0.23",
    ],
    install: Install::Manifests,
};
pub const MONGODB: Component = Component {
    name: "mongodb",
    version: "8.0.12",
    images: &["quay.io/mongodb/mongodb-community-server:8.0.12-ubi8"],
    install: Install::Operator("mongodb-kubernetes"),
};
pub const SCYLLA_OPERATOR: Component = Component {
    name: "scylla-operator",
    version: "1.19.0",
    images: &["docker.io/scylladb/scylla-operator:1.19.0"],
    install: Install::Manifests,
};
pub const SCYLLADB: Component = Component {
    name: "scylladb",
    version: "2025.1.5",
    images: &["docker.io/scylladb/scylla:2025.1.5"],
    install: Install::Operator("scylla-operator"),
};
/// Strimzi 1.x serves only `kafka.strimzi.io/v1` (v1beta2 was removed in 1.0.0).
pub const STRIMZI: Component = Component {
    name: "strimzi",
    version: "1.2.0",
    images: &[
        "quay.io/strimzi/operator:1.2.0",
        "quay.io/strimzi/kafka:1.2.0-kafka-4.2.1",
    ],
    install: Install::Manifests,
};
pub const KAFKA: Component = Component {
    name: "kafka",
    version: "4.2.1",
    images: &["quay.io/strimzi/kafka:1.2.0-kafka-4.2.1"],
    install: Install::Operator("strimzi"),
};
pub const FLUENT_BIT: Component = Component {
    name: "fluent-bit",
    version: "4.2.0",
    images: &["cr.fluentbit.io/fluent/fluent-bit:4.2.0"],
    install: Install::Manifests,
};
/// The contrib distribution: the core one has none of the AWS or OpenSearch exporters.
pub const OTEL_COLLECTOR: Component = Component {
    name: "opentelemetry-collector-contrib",
    version: "0.140.1",
    images: &["docker.io/otel/opentelemetry-collector-contrib:0.140.1"],
    install: Install::Manifests,
};
/// The operator runs Halyard beside it to render Spinnaker's services.
pub const SPINNAKER_OPERATOR: Component = Component {
    name: "spinnaker-operator",
    version: "1.3.1",
    images: &[
        "docker.io/armory/spinnaker-operator:1.3.1",
        "docker.io/armory/halyard:operator-1.3.1",
    ],
    install: Install::Manifests,
};
pub const SPINNAKER: Component = Component {
    name: "spinnaker",
    version: "1.36.1",
    images: &[],
    install: Install::Operator("spinnaker-operator"),
};
/// Jenkins has no operator here: a Deployment (with its configuration reloader) and a Service.
pub const JENKINS: Component = Component {
    name: "jenkins",
    version: "2.528.2",
    images: &[
        "docker.io/jenkins/jenkins:2.528.2-lts-jdk21",
        // The Jenkins Helm chart's Configuration-as-Code reloader.
        "quay.io/kiwigrid/k8s-sidecar:1.30.5",
    ],
    install: Install::Manifests,
};
/// The DevOps cluster's Job saving a service's pipeline in Spinnaker runs curl.
pub const CURL: Component = Component {
    name: "curl",
    version: "8.17.0",
    images: &["docker.io/curlimages/curl:8.17.0"],
    install: Install::Manifests,
};

/// Every pinned component, EKS add-ons first (they exist before anything is applied).
pub const COMPONENTS: &[Component] = &[
    VPC_CNI,
    COREDNS,
    KUBE_PROXY,
    EBS_CSI_DRIVER,
    POD_IDENTITY_AGENT,
    METRICS_SERVER,
    CERT_MANAGER,
    ISTIO_BASE,
    ISTIOD,
    MONGODB_OPERATOR,
    MONGODB,
    SCYLLA_OPERATOR,
    SCYLLADB,
    STRIMZI,
    KAFKA,
    FLUENT_BIT,
    OTEL_COLLECTOR,
    SPINNAKER_OPERATOR,
    SPINNAKER,
    JENKINS,
    CURL,
];

/// The EKS add-ons every cluster gets.
pub fn eks_addons() -> impl Iterator<Item = &'static Component> {
    COMPONENTS
        .iter()
        .filter(|c| matches!(c.install, Install::EksAddon { .. }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_is_named_once_and_every_image_is_pinned_to_a_tag() {
        let mut names: Vec<&str> = COMPONENTS.iter().map(|c| c.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), COMPONENTS.len());
        for image in COMPONENTS.iter().flat_map(|c| c.images) {
            let tag = image.rsplit_once(':').map(|(_, tag)| tag);
            assert!(
                tag.is_some_and(|t| !t.contains('/') && t != "latest"),
                "{image} has a pinned tag"
            );
        }
        for c in COMPONENTS {
            if let Install::Operator(operator) = c.install {
                assert!(names.contains(&operator), "{} names its operator", c.name);
            }
        }
        assert_eq!(eks_addons().count(), 7);
    }
}
