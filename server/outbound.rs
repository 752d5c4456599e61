//! Outgoing requests to addresses that people type in (platform webhooks). Slipway must not
//! become a way to reach what only it can reach: the cloud metadata service, its own database,
//! the internal network. Loopback, private, link-local, carrier-grade NAT and other
//! special-purpose addresses are refused unless an admin allows a range
//! (`webhook_allowed_ranges`). IPv4 written as one number or in hex is already an address once
//! the URL is parsed (WHATWG rules), IPv4-mapped and -embedded IPv6 are judged by their IPv4
//! address, and names are judged by what they resolve to: when saved, and again when sent, by
//! the resolver the connection then uses (so the address checked is the address connected to).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, LazyLock};

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Never contacted unless allowed. Besides the private and loopback ranges: "this network"
/// (0.0.0.0 reaches the local host), carrier-grade NAT, link-local (169.254.169.254 and
/// fd00:ec2::254 are the metadata services), benchmarking, multicast and reserved ranges.
const REFUSED: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "224.0.0.0/4",
    "240.0.0.0/4",
    // Unspecified, loopback and the deprecated IPv4-compatible addresses.
    "::/96",
    "100::/64",
    "fc00::/7",
    "fe80::/10",
    "fec0::/10",
    "ff00::/8",
];

static REFUSED_NETS: LazyLock<Vec<IpNet>> = LazyLock::new(|| {
    REFUSED
        .iter()
        .map(|n| n.parse().expect("the refused ranges are valid CIDR"))
        .collect()
});

/// Parses the admin setting: CIDR ranges or single addresses, comma-separated. The error is the
/// entry that is neither.
pub fn parse_ranges(text: &str) -> Result<Vec<IpNet>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map(|n| n.trunc())
                .map_err(|_| s.to_owned())
        })
        .collect()
}

/// The IPv4 address an IPv6 address stands for: IPv4-mapped (`::ffff:a.b.c.d`), NAT64
/// (`64:ff9b::a.b.c.d`) and 6to4 (`2002:aabb:ccdd::`).
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = v6.segments();
    let low = |a: u16, b: u16| Ipv4Addr::new((a >> 8) as u8, a as u8, (b >> 8) as u8, b as u8);
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(low(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return Some(low(s[1], s[2]));
    }
    None
}

/// Whether Slipway refuses to send to `ip`, given the ranges an admin allowed.
pub fn is_refused(ip: IpAddr, allowed: &[IpNet]) -> bool {
    let candidates: Vec<IpAddr> = match ip {
        IpAddr::V4(_) => vec![ip],
        IpAddr::V6(v6) => match embedded_v4(v6) {
            // A mapped address is the IPv4 one; NAT64 and 6to4 must pass as both.
            Some(v4) if v6.to_ipv4_mapped().is_some() => vec![IpAddr::V4(v4)],
            Some(v4) => vec![ip, IpAddr::V4(v4)],
            None => vec![ip],
        },
    };
    candidates.iter().any(|ip| {
        !allowed.iter().any(|n| n.contains(ip)) && REFUSED_NETS.iter().any(|n| n.contains(ip))
    })
}

/// Names that mean this host whatever DNS says (RFC 6761).
fn is_local_name(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost" || host.ends_with(".localhost")
}

/// Why a URL is refused, in words for the person who typed it.
fn refusal(host: &str, ip: Option<IpAddr>) -> String {
    match ip {
        Some(ip) if ip.to_string() != host => format!(
            "{host} resolves to {ip}, a loopback, private or link-local address; Slipway sends \
             webhooks only to public addresses unless an admin allows the range \
             (webhook_allowed_ranges)."
        ),
        _ => format!(
            "{host} is a loopback, private or link-local address; Slipway sends webhooks only \
             to public addresses unless an admin allows the range (webhook_allowed_ranges)."
        ),
    }
}

/// Checks the host of `url` when it is saved: addresses as written, names as they resolve now.
/// A name that does not resolve yet is accepted; delivery checks it again anyway.
pub async fn check_target(url: &reqwest::Url, allowed: &[IpNet]) -> Result<(), String> {
    let port = url.port_or_known_default().unwrap_or(443);
    let Some(host) = url.host_str() else {
        return Err("Use a URL with a host.".into());
    };
    // The URL parser has already turned `2130706433`, `0x7f000001` or `127.1` into an address.
    if let Some(ip) = literal_ip(url) {
        return check_ip(host, ip, allowed);
    }
    if is_local_name(host) && is_refused(IpAddr::V4(Ipv4Addr::LOCALHOST), allowed) {
        return Err(refusal(host, None));
    }
    let Ok(addrs) = tokio::net::lookup_host((host, port)).await else {
        return Ok(());
    };
    for addr in addrs {
        check_ip(host, addr.ip(), allowed)?;
    }
    Ok(())
}

/// The address of a URL whose host is written as one (delivery checks these itself: no
/// resolver is asked about them).
pub fn literal_ip(url: &reqwest::Url) -> Option<IpAddr> {
    url.host_str()?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

fn check_ip(host: &str, ip: IpAddr, allowed: &[IpNet]) -> Result<(), String> {
    if is_refused(ip, allowed) {
        Err(refusal(host, Some(ip)))
    } else {
        Ok(())
    }
}

/// The error of a name whose every address is refused. Delivery finds it in the error chain.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// The system resolver, as the resolver under [`GuardedResolver`].
struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// A resolver that drops refused addresses, for an HTTP client: the client connects only to what
/// this returns, so a name cannot be checked against one address and connected to another.
pub struct GuardedResolver {
    allowed: Arc<Vec<IpNet>>,
    inner: Arc<dyn Resolve>,
}

impl GuardedResolver {
    pub fn new(allowed: Vec<IpNet>) -> Self {
        Self::over(allowed, Arc::new(SystemResolver))
    }

    /// Over another resolver (tests make names resolve where they want).
    pub fn over(allowed: Vec<IpNet>, inner: Arc<dyn Resolve>) -> Self {
        GuardedResolver {
            allowed: Arc::new(allowed),
            inner,
        }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let allowed = self.allowed.clone();
        let resolving = self.inner.resolve(name);
        Box::pin(async move {
            let all: Vec<SocketAddr> = resolving.await?.collect();
            let usable: Vec<SocketAddr> = all
                .iter()
                .copied()
                .filter(|a| !is_refused(a.ip(), &allowed))
                .collect();
            if usable.is_empty() {
                let first = all.first().map(SocketAddr::ip);
                return Err(Box::new(Refused(refusal(&host, first))) as _);
            }
            Ok(Box::new(usable.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_ranges_are_refused_and_allowed_ranges_pass() {
        for ip in [
            "127.0.0.1",
            "127.1.2.3",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::",
            "::1",
            "fd00:ec2::254",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "::127.0.0.1",
            "224.0.0.1",
            "255.255.255.255",
        ] {
            assert!(is_refused(ip.parse().unwrap(), &[]), "{ip}");
        }
        for ip in ["8.8.8.8", "172.32.0.1", "100.128.0.1", "2606:4700::1111"] {
            assert!(!is_refused(ip.parse().unwrap(), &[]), "{ip}");
        }
        let allowed = parse_ranges("127.0.0.1, 10.20.0.0/16").unwrap();
        assert!(!is_refused("127.0.0.1".parse().unwrap(), &allowed));
        assert!(!is_refused("::ffff:127.0.0.1".parse().unwrap(), &allowed));
        assert!(is_refused("127.0.0.2".parse().unwrap(), &allowed));
        assert!(!is_refused("10.20.3.4".parse().unwrap(), &allowed));
        assert!(is_refused("10.21.3.4".parse().unwrap(), &allowed));
        assert!(parse_ranges("10.0.0.0/33").is_err());
        assert!(parse_ranges("example.com").is_err());
    }
}
