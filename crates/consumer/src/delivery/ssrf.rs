//! SSRF guard for org URLs: ELS must not become a way into its own network. Every address
//! a SIEM host name resolves to is checked at connect time (a `reqwest` DNS resolver, so DNS
//! rebinding between checks cannot slip through), and URLs with literal IPs are checked before
//! sending (reqwest skips the resolver for them). Refused: loopback, private, link-local,
//! unique-local, CGNAT, unspecified, broadcast, multicast, documentation, reserved and cloud
//! metadata addresses, including the IPv6 forms that embed or translate to an IPv4 address
//! (IPv4-mapped, IPv4-compatible, IPv4-translated, 6to4, NAT64 well-known prefix) when the
//! embedded address is refused; and IPv6 ranges that reach an IPv4 network ELS cannot tell:
//! local-use NAT64 (`64:ff9b:1::/48`, any prefix length) and Teredo (`2001::/32`).
//!
//! `ssrf_allow` (`ELS_SSRF_ALLOW`) lists host names, IPs or CIDRs that are allowed anyway,
//! for local demos and tests (`127.0.0.1,siem-sim`). Redirects are never followed and env
//! proxies never used (see [`super::siem`]).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// What `ssrf_allow` permits besides public addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SsrfPolicy {
    /// Host names (lower case) whose every address is allowed.
    names: Vec<String>,
    /// Addresses and networks allowed.
    nets: Vec<IpNet>,
}

/// A refused destination; `Display` is the reason shown in dead letters and test results.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Refused {
    /// The URL's host when it was a name (`localhost`), `None` for IP literals.
    pub host: Option<String>,
    pub ip: IpAddr,
    pub category: &'static str,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (ip, a, category) = (self.ip, article(self.category), self.category);
        match &self.host {
            Some(host) => write!(
                f,
                "refused: {host} resolves to {ip}, {a} {category} address (not in ssrf_allow)"
            ),
            None => write!(
                f,
                "refused: {ip} is {a} {category} address (not in ssrf_allow)"
            ),
        }
    }
}

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u', 'I']) && !word.starts_with("uni") {
        "an"
    } else {
        "a"
    }
}

impl SsrfPolicy {
    /// Parse `ssrf_allow` entries: host names, IP addresses or CIDRs.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        let mut policy = Self::default();
        for entry in entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
            let bare = entry.trim_start_matches('[').trim_end_matches(']');
            if let Ok(net) = bare.parse::<IpNet>() {
                policy.nets.push(net.trunc());
            } else if let Ok(ip) = bare.parse::<IpAddr>() {
                policy.nets.push(IpNet::from(ip));
            } else if entry.contains('/') || entry.contains(':') {
                return Err(format!("`{entry}` is neither a host name nor an IP/CIDR"));
            } else {
                policy.names.push(entry.to_ascii_lowercase());
            }
        }
        Ok(policy)
    }

    /// Whether the host name is allow-listed as a whole.
    pub fn allows_name(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.names.contains(&host)
    }

    /// Check one address `host` (a name, or `None` for literals) resolved to.
    pub fn check(&self, host: Option<&str>, ip: IpAddr) -> Result<(), Refused> {
        if host.is_some_and(|h| self.allows_name(h)) {
            return Ok(());
        }
        let Some(category) = classify(ip) else {
            return Ok(());
        };
        let embedded = embedded_v4(ip).map(IpAddr::V4);
        if self
            .nets
            .iter()
            .any(|n| n.contains(&ip) || embedded.is_some_and(|v4| n.contains(&v4)))
        {
            return Ok(());
        }
        Err(Refused {
            host: host.map(str::to_string),
            ip,
            category,
        })
    }

    /// Check a URL whose host is an IP literal (names are checked by the resolver).
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), Refused> {
        match url.host() {
            Some(url::Host::Ipv4(ip)) => self.check(None, IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => self.check(None, IpAddr::V6(ip)),
            _ => Ok(()),
        }
    }
}

/// The IPv4 address an IPv6 address embeds, where the embedding has a fixed place:
/// IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`), IPv4-translated
/// (`::ffff:0:a.b.c.d`, RFC 2765), NAT64 with the well-known prefix (`64:ff9b::a.b.c.d`,
/// RFC 6052) and 6to4 (`2002:aabb:ccdd::/48`, RFC 3056). The address is reached through it.
fn embedded_v4(ip: IpAddr) -> Option<Ipv4Addr> {
    let IpAddr::V6(v6) = ip else { return None };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = v6.segments();
    let v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        // `::` and `::1` are classified as IPv6 themselves.
        [0, 0, 0, 0, 0, 0, hi, lo] if hi != 0 || lo > 1 => Some(v4(hi, lo)),
        [0, 0, 0, 0, 0xffff, 0, hi, lo] | [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(v4(hi, lo)),
        [0x2002, hi, lo, ..] => Some(v4(hi, lo)),
        _ => None,
    }
}

/// Why an address must not be reached, `None` for ordinary public addresses.
pub fn classify(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        // Embedded forms reach the embedded IPv4 address.
        IpAddr::V6(v6) => match embedded_v4(ip) {
            Some(v4) => classify_v4(v4),
            None => classify_v6(v6),
        },
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    Some(match o {
        [169, 254, 169, 254] => "cloud metadata",
        [127, ..] => "loopback",
        [0, 0, 0, 0] => "unspecified",
        [0, ..] => "\"this network\" (0/8)",
        [10, ..] | [192, 168, ..] => "private",
        [172, b, ..] if (16..32).contains(&b) => "private",
        [100, b, ..] if (64..128).contains(&b) => "shared (CGNAT)",
        [169, 254, ..] => "link-local",
        [192, 0, 0, _] => "IETF protocol",
        [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _] => "documentation",
        [198, b, ..] if b == 18 || b == 19 => "benchmarking",
        [255, 255, 255, 255] => "broadcast",
        [a, ..] if (224..240).contains(&a) => "multicast",
        [a, ..] if a >= 240 => "reserved",
        _ => return None,
    })
}

fn classify_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    Some(if ip.is_loopback() {
        "loopback"
    } else if ip.is_unspecified() {
        "unspecified"
    } else if s == [0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254] {
        "cloud metadata"
    } else if s[0] & 0xfe00 == 0xfc00 {
        "unique-local"
    } else if s[0] & 0xffc0 == 0xfe80 {
        "link-local"
    } else if s[0] & 0xffc0 == 0xfec0 {
        "site-local"
    } else if s[0] & 0xff00 == 0xff00 {
        "multicast"
    } else if s[..3] == [0x64, 0xff9b, 1] {
        // RFC 8215: translators of one network, the IPv4 address anywhere in the next bits.
        "local-use NAT64"
    } else if s[..2] == [0x2001, 0] {
        // RFC 4380: tunnels to an IPv4 host (its address obfuscated in the last 32 bits).
        "Teredo"
    } else if s[..3] == [0x2001, 2, 0] {
        "benchmarking"
    } else if s[..4] == [0x100, 0, 0, 0] {
        "discard-only"
    } else if (s[0] == 0x2001 && s[1] == 0x0db8) || s[0] & 0xfff0 == 0x3ff0 {
        // 2001:db8::/32 (RFC 3849) and 3fff::/20 (RFC 9637).
        "documentation"
    } else {
        return None;
    })
}

/// The DNS resolver of the SIEM client: resolves with the system resolver, then keeps only
/// addresses the policy allows; none left is an error carrying the [`Refused`] reason.
pub struct GuardedResolver {
    policy: Arc<SsrfPolicy>,
}

impl GuardedResolver {
    pub fn new(policy: Arc<SsrfPolicy>) -> Self {
        Self { policy }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut allowed = Vec::with_capacity(found.len());
            let mut first_refusal = None;
            for addr in found {
                match policy.check(Some(&host), addr.ip()) {
                    Ok(()) => allowed.push(addr),
                    Err(r) => {
                        first_refusal.get_or_insert(r);
                    }
                }
            }
            if allowed.is_empty() {
                if let Some(refused) = first_refusal {
                    return Err(Box::new(refused) as Box<dyn std::error::Error + Send + Sync>);
                }
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// The [`Refused`] inside an error chain (e.g. a `reqwest` connect error from the resolver).
pub fn find_refusal<'e>(error: &'e (dyn std::error::Error + 'static)) -> Option<&'e Refused> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(r) = e.downcast_ref::<Refused>() {
            return Some(r);
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .unwrap()
    }

    #[test]
    fn classification_matrix() {
        let refused = [
            ("127.0.0.1", "loopback"),
            ("127.8.9.10", "loopback"),
            ("[::1]", "loopback"),
            ("[::ffff:127.0.0.1]", "loopback"),
            ("[::127.0.0.1]", "loopback"),
            ("[64:ff9b::7f00:1]", "loopback"),
            ("169.254.169.254", "cloud metadata"),
            ("[::ffff:169.254.169.254]", "cloud metadata"),
            ("[fd00:ec2::254]", "cloud metadata"),
            ("169.254.1.1", "link-local"),
            ("[fe80::1]", "link-local"),
            ("10.0.0.1", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("[::ffff:10.0.0.1]", "private"),
            ("0.0.0.0", "unspecified"),
            ("[::]", "unspecified"),
            ("100.64.0.1", "shared (CGNAT)"),
            ("100.127.255.254", "shared (CGNAT)"),
            ("[fd00::1]", "unique-local"),
            ("[fc00::1]", "unique-local"),
            ("255.255.255.255", "broadcast"),
            ("224.0.0.1", "multicast"),
            ("[ff02::1]", "multicast"),
            ("192.0.2.1", "documentation"),
            ("[2001:db8::1]", "documentation"),
            ("240.0.0.1", "reserved"),
            // IPv4-translated (RFC 2765): the embedded address decides.
            ("[::ffff:0:127.0.0.1]", "loopback"),
            ("[::ffff:0:a9fe:a9fe]", "cloud metadata"),
            ("[::ffff:0:10.1.2.3]", "private"),
            // 6to4 (RFC 3056): the IPv4 address in bits 16-47 decides.
            ("[2002:7f00:1::]", "loopback"),
            ("[2002:7f00:1:ffff::1]", "loopback"),
            ("[2002:a9fe:a9fe::]", "cloud metadata"),
            ("[2002:c0a8:101::1]", "private"),
            ("[2002::]", "unspecified"),
            // NAT64, well-known prefix (RFC 6052): the embedded address decides.
            ("[64:ff9b::a9fe:a9fe]", "cloud metadata"),
            ("[64:ff9b::10.0.0.1]", "private"),
            // Local-use NAT64 (RFC 8215): any prefix length, refused whatever follows.
            ("[64:ff9b:1::7f00:1]", "local-use NAT64"),
            ("[64:ff9b:1::808:808]", "local-use NAT64"),
            ("[64:ff9b:1:ffff:ffff::]", "local-use NAT64"),
            // Teredo (RFC 4380): server and (obfuscated) client IPv4 addresses inside.
            ("[2001::]", "Teredo"),
            ("[2001:0:4136:e378:8000:63bf:80ff:fffe]", "Teredo"),
            ("[2001:0:ffff:ffff:ffff:ffff:ffff:ffff]", "Teredo"),
            ("[2001:2::1]", "benchmarking"),
            ("[100::1]", "discard-only"),
            ("[3fff::1]", "documentation"),
        ];
        for (addr, want) in refused {
            assert_eq!(classify(ip(addr)), Some(want), "{addr}");
        }
        for public in [
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "1.1.1.1",
            "[2606:4700::1111]",
            "[64:ff9b::808:808]",
            "[::ffff:8.8.8.8]",
            "[::ffff:0:8.8.8.8]",
            // 6to4 of a public address, and the neighbours of the refused ranges.
            "[2002:808:808::1]",
            "[64:ff9b:2::1]",
            "[64:ff9a:ffff:ffff:ffff:ffff:ffff:ffff]",
            "[2001:1::1]",
            "[2001:4860:4860::8888]",
            "[2003::1]",
            "[101::1]",
            "[4000::1]",
        ] {
            assert_eq!(classify(ip(public)), None, "{public}");
        }
    }

    #[test]
    fn refusal_reasons_read_well() {
        let policy = SsrfPolicy::default();
        let err = policy.check(None, ip("127.0.0.1")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "refused: 127.0.0.1 is a loopback address (not in ssrf_allow)"
        );
        let err = policy
            .check(Some("localhost"), ip("::ffff:127.0.0.1"))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "refused: localhost resolves to ::ffff:127.0.0.1, a loopback address (not in ssrf_allow)"
        );
        let err = policy.check(None, ip("100.64.0.1")).unwrap_err();
        assert!(err.to_string().contains("is a shared (CGNAT) address"));
        let err = policy.check(None, ip("fd00::1")).unwrap_err();
        assert!(err.to_string().contains("is a unique-local address"));
    }

    #[test]
    fn allow_list_by_ip_cidr_and_name() {
        let policy = SsrfPolicy::parse(&[
            "127.0.0.1".into(),
            "10.1.0.0/16".into(),
            "[fd00::1]".into(),
            "SIEM-Sim".into(),
        ])
        .unwrap();
        assert!(policy.check(None, ip("127.0.0.1")).is_ok());
        assert!(
            policy.check(None, ip("::ffff:127.0.0.1")).is_ok(),
            "mapped form of an allowed v4"
        );
        assert!(policy.check(None, ip("2002:7f00:1::")).is_ok(), "6to4 form");
        assert!(
            policy.check(None, ip("::ffff:0:127.0.0.1")).is_ok(),
            "translated form"
        );
        // Local-use NAT64 has no fixed place for the IPv4 address: only CIDRs allow it.
        assert!(policy.check(None, ip("64:ff9b:1::7f00:1")).is_err());
        assert!(policy.check(None, ip("127.0.0.2")).is_err());
        assert!(policy.check(None, ip("10.1.200.3")).is_ok());
        assert!(policy.check(None, ip("10.2.0.1")).is_err());
        assert!(policy.check(None, ip("fd00::1")).is_ok());
        assert!(policy.check(Some("siem-sim"), ip("172.18.0.5")).is_ok());
        assert!(policy.check(Some("other"), ip("172.18.0.5")).is_err());
        assert!(policy.check(None, ip("169.254.169.254")).is_err());
        assert!(SsrfPolicy::parse(&["10.0.0.0/99".into()]).is_err());
        assert!(SsrfPolicy::parse(&["host:80".into()]).is_err());
        assert_eq!(
            SsrfPolicy::parse(&[" ".into()]).unwrap(),
            SsrfPolicy::default()
        );
    }

    #[test]
    fn literal_urls_are_checked() {
        let policy = SsrfPolicy::default();
        for url in [
            "http://127.0.0.1:8088/x",
            "http://[::1]/x",
            "http://[::ffff:127.0.0.1]/x",
            "http://169.254.169.254/latest/meta-data",
            "http://10.0.0.1/",
            "http://0.0.0.0/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://[::ffff:0:127.0.0.1]/x",
            "http://[2002:7f00:1::]/x",
            "http://[64:ff9b:1::7f00:1]/x",
            "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/x",
        ] {
            let url = reqwest::Url::parse(url).unwrap();
            assert!(policy.check_url(&url).is_err(), "{url}");
        }
        let url = reqwest::Url::parse("https://siem.example.com/x").unwrap();
        assert!(policy.check_url(&url).is_ok());
    }

    #[tokio::test]
    async fn resolver_refuses_localhost_unless_allowed() {
        let strict = Arc::new(SsrfPolicy::default());
        let resolver = GuardedResolver::new(strict);
        let name: Name = "localhost".parse().unwrap();
        let err = match resolver.resolve(name).await {
            Ok(_) => panic!("localhost must be refused"),
            Err(e) => e,
        };
        let refusal = find_refusal(err.as_ref()).expect("a Refused");
        assert_eq!(refusal.category, "loopback");
        assert!(refusal
            .to_string()
            .starts_with("refused: localhost resolves to "));

        let allowed = Arc::new(SsrfPolicy::parse(&["localhost".into()]).unwrap());
        let resolver = GuardedResolver::new(allowed);
        let addrs: Vec<SocketAddr> = resolver
            .resolve("localhost".parse().unwrap())
            .await
            .map_err(|e| e.to_string())
            .unwrap()
            .collect();
        assert!(!addrs.is_empty());
    }
}
