//! Proxies the edge trusts to say who their clients are
//! (`--trusted-proxy`): behind one, every client comes from the proxy's
//! address, so the per-address budgets (requests, tasks, registers and
//! logins) would hold for all clients together. A request whose peer is a
//! trusted proxy is counted against the client address its
//! `X-Forwarded-For` names instead: the rightmost address there that is
//! not itself a trusted proxy (what a client sends in the header is to the
//! left of what the proxies appended, so it cannot choose its address).
//! Connections from a trusted proxy are not capped per address.

use std::net::IpAddr;

/// Address ranges (CIDR) of trusted proxies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl TrustedProxies {
    /// Ranges like `10.0.0.0/8`, `fd00::/8` or a single `127.0.0.1`.
    pub fn parse<'a>(ranges: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut out = Vec::new();
        for range in ranges.into_iter().map(str::trim).filter(|r| !r.is_empty()) {
            let (ip, bits) = match range.split_once('/') {
                Some((ip, bits)) => (ip, Some(bits)),
                None => (range, None),
            };
            let ip: IpAddr = ip
                .parse()
                .map_err(|_| format!("{range:?} is not an address or CIDR range"))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                None => max,
                Some(b) => b
                    .parse::<u8>()
                    .ok()
                    .filter(|b| *b <= max)
                    .ok_or_else(|| format!("{range:?}: the prefix is 0 to {max} bits"))?,
            };
            out.push((ip, bits));
        }
        Ok(Self(out))
    }

    /// Whether any proxy is trusted.
    pub fn any(&self) -> bool {
        !self.0.is_empty()
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0
            .iter()
            .any(|(net, bits)| match (canonical(*net), ip) {
                (IpAddr::V4(n), IpAddr::V4(a)) => prefix(
                    u128::from(u32::from(n)) << 96,
                    u128::from(u32::from(a)) << 96,
                    *bits,
                ),
                (IpAddr::V6(n), IpAddr::V6(a)) => prefix(u128::from(n), u128::from(a), *bits),
                _ => false,
            })
    }

    /// The client a request from `peer` is for: `peer` itself, unless it
    /// is a trusted proxy and `forwarded` (`X-Forwarded-For`) names one.
    pub fn client(&self, peer: IpAddr, forwarded: Option<&str>) -> IpAddr {
        if !self.contains(peer) {
            return peer;
        }
        let Some(list) = forwarded else {
            return peer;
        };
        let hops: Vec<IpAddr> = list
            .split(',')
            .map_while(|h| h.trim().parse::<IpAddr>().ok())
            .collect();
        // The rightmost hop that is not a proxy of ours; if every hop is
        // one, the leftmost.
        hops.iter()
            .rev()
            .find(|h| !self.contains(**h))
            .or(hops.first())
            .copied()
            .unwrap_or(peer)
    }
}

/// An IPv4-mapped IPv6 address as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether the first `bits` bits of `a` and `b` are equal.
fn prefix(a: u128, b: u128, bits: u8) -> bool {
    bits == 0 || (a ^ b) >> (128 - u32::from(bits)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_trusted_proxys_client_is_the_rightmost_hop_it_does_not_trust() {
        let t = TrustedProxies::parse(["10.0.0.0/8", " 192.168.1.7", "fd00::/8"]).unwrap();
        assert!(t.contains(ip("10.1.2.3")) && t.contains(ip("192.168.1.7")));
        assert!(t.contains(ip("::ffff:10.9.9.9")) && t.contains(ip("fd12::1")));
        assert!(!t.contains(ip("192.168.1.8")) && !t.contains(ip("11.0.0.1")));
        // Not a proxy: what it says is not believed.
        assert_eq!(
            t.client(ip("203.0.113.9"), Some("1.2.3.4")),
            ip("203.0.113.9")
        );
        // A proxy: the client it appended, whatever the client sent before.
        assert_eq!(
            t.client(ip("10.0.0.2"), Some("6.6.6.6, 198.51.100.4")),
            ip("198.51.100.4")
        );
        // Two proxies of ours in a row.
        assert_eq!(
            t.client(ip("10.0.0.2"), Some("198.51.100.4, 10.0.0.3")),
            ip("198.51.100.4")
        );
        assert_eq!(t.client(ip("10.0.0.2"), None), ip("10.0.0.2"));
        assert_eq!(t.client(ip("10.0.0.2"), Some("garbage")), ip("10.0.0.2"));
        assert!(TrustedProxies::parse(["10.0.0.0/33"]).is_err());
        assert!(TrustedProxies::parse(["ten"]).is_err());
        assert!(!TrustedProxies::parse([""]).unwrap().any());
        let all = TrustedProxies::parse(["0.0.0.0/0"]).unwrap();
        assert!(all.contains(ip("8.8.8.8")));
    }
}
