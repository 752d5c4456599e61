//! The cost estimate shown before a request is submitted, from the price table shipped with
//! Slipway: AWS on-demand list prices (Linux, eu-west-1, as published in 2026) for the node
//! instance types, the EKS control plane, and a per-size hourly figure for each data service
//! (the nodes and volumes its operator typically runs). It is an estimate, labelled as such:
//! no discounts, no data transfer, no storage growth.

use serde::Serialize;

use crate::define::blueprint::Size;

/// Hours in an average month (365 × 24 / 12).
pub const HOURS_PER_MONTH: i64 = 730;
/// The EKS control plane, per cluster-hour.
const EKS_CONTROL_PLANE_MICROS: i64 = 100_000;

/// Hourly on-demand price in micro-dollars per instance type.
const INSTANCE_PRICES: &[(&str, i64)] = &[
    ("t3.medium", 45_600),
    ("t3.large", 91_200),
    ("m6i.large", 107_000),
    ("m6i.xlarge", 214_000),
    ("m6i.2xlarge", 428_000),
    ("m6i.4xlarge", 856_000),
    ("m7i.large", 112_100),
    ("m7i.xlarge", 224_200),
    ("m7i.2xlarge", 448_400),
    ("c6i.large", 96_400),
    ("c6i.xlarge", 192_800),
    ("c6i.2xlarge", 385_600),
    ("r6i.large", 141_100),
    ("r6i.xlarge", 282_200),
    ("r6i.2xlarge", 564_400),
];

/// Hourly micro-dollars of a data service at a size.
fn data_service_price(service: &str, size: Size) -> i64 {
    let (small, medium, large) = match service {
        "mongodb" => (250_000, 600_000, 1_400_000),
        "scylladb" => (450_000, 1_100_000, 2_600_000),
        "kafka" => (300_000, 750_000, 1_700_000),
        _ => (0, 0, 0),
    };
    match size {
        Size::Small => small,
        Size::Medium => medium,
        Size::Large => large,
    }
}

/// The hourly price of `instance_type`, if Slipway knows it.
pub fn instance_price(instance_type: &str) -> Option<i64> {
    INSTANCE_PRICES
        .iter()
        .find(|(name, _)| *name == instance_type)
        .map(|(_, micros)| *micros)
}

/// An amount of US dollars in micro-dollars: exact integer arithmetic, rounded only for display.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Micros(pub i64);

impl Micros {
    pub fn usd(self) -> f64 {
        // Cents are what people read; the rounding happens once, here.
        (self.0 as f64 / 10_000.0).round() / 100.0
    }

    /// `$1,234.56`.
    pub fn display(self) -> String {
        let cents = (self.0 + 5_000) / 10_000;
        let dollars = cents / 100;
        let mut grouped = String::new();
        let digits = dollars.to_string();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(c);
        }
        format!("${grouped}.{:02}", cents % 100)
    }
}

/// One line of the estimate, for the breakdown shown beside the form.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CostLine {
    pub item: String,
    pub hourly_usd: f64,
}

/// The estimate of one environment: at its minimum node count (what it costs idle) and at its
/// maximum (what it may cost under load).
#[derive(Debug, Clone)]
pub struct Estimate {
    pub hourly: Micros,
    pub max_hourly: Micros,
    pub lines: Vec<CostLine>,
}

impl Estimate {
    pub fn monthly(&self) -> Micros {
        Micros(self.hourly.0 * HOURS_PER_MONTH)
    }

    pub fn max_monthly(&self) -> Micros {
        Micros(self.max_hourly.0 * HOURS_PER_MONTH)
    }

    /// The cost over a TTL at the maximum node count (ephemeral environments).
    pub fn over_hours(&self, hours: u32) -> Micros {
        Micros(self.max_hourly.0 * i64::from(hours))
    }
}

/// Estimates a cluster of `min_nodes`..`max_nodes` nodes of `instance_type` with the given data
/// services (name and size). Unknown instance types count as zero: validation refuses them
/// before an estimate is shown.
pub fn estimate(
    instance_type: &str,
    min_nodes: u32,
    max_nodes: u32,
    data_services: &[(String, Size)],
) -> Estimate {
    let node = instance_price(instance_type).unwrap_or(0);
    let mut lines = vec![
        CostLine {
            item: "EKS control plane".into(),
            hourly_usd: Micros(EKS_CONTROL_PLANE_MICROS).usd(),
        },
        CostLine {
            item: format!("{min_nodes}–{max_nodes} × {instance_type} nodes"),
            hourly_usd: Micros(node * i64::from(min_nodes)).usd(),
        },
    ];
    let mut services = 0;
    for (name, size) in data_services {
        let price = data_service_price(name, *size);
        services += price;
        lines.push(CostLine {
            item: format!("{name} ({})", size_name(*size)),
            hourly_usd: Micros(price).usd(),
        });
    }
    let fixed = EKS_CONTROL_PLANE_MICROS + services;
    Estimate {
        hourly: Micros(fixed + node * i64::from(min_nodes)),
        max_hourly: Micros(fixed + node * i64::from(max_nodes)),
        lines,
    }
}

fn size_name(size: Size) -> &'static str {
    match size {
        Size::Small => "small",
        Size::Medium => "medium",
        Size::Large => "large",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_instance_type_a_blueprint_may_name_has_a_price() {
        for name in crate::define::blueprint::INSTANCE_TYPES {
            assert!(instance_price(name).is_some(), "{name} has no price");
        }
    }

    #[test]
    fn estimates_add_up_exactly_and_display_in_dollars() {
        let e = estimate("m6i.large", 2, 6, &[("kafka".into(), Size::Medium)]);
        // 0.10 control plane + 0.75 kafka + 2 × 0.107 nodes
        assert_eq!(e.hourly, Micros(100_000 + 750_000 + 214_000));
        assert_eq!(e.max_hourly, Micros(100_000 + 750_000 + 642_000));
        assert_eq!(e.monthly().display(), "$776.72");
        assert_eq!(Micros(1_234_567_890).display(), "$1,234.57");
        assert_eq!(e.hourly.usd(), 1.06);
    }
}
