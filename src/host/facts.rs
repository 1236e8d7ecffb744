#![expect(
    clippy::disallowed_methods,
    reason = "src/host is where bosun touches the machine"
)]
//! Facts about the local machine that configuration defaults depend on: hostname and default-route addresses.

use std::fs;
use std::net::IpAddr;
use std::process::Command;

/// What the machine tells us.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MachineFacts {
    pub hostname: String,
    pub default_ipv4: Option<IpAddr>,
    pub default_ipv6: Option<IpAddr>,
    /// Whether systemd is PID 1 (it decides the cgroup driver and the service backend).
    pub systemd_is_init: bool,
}

/// Reads the facts; anything unreadable is left empty rather than failing, and defaulting reports what is missing.
pub fn gather() -> MachineFacts {
    let hostname = fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|text| text.trim().to_lowercase())
        .unwrap_or_default();
    let default_ipv4 = fs::read_to_string("/proc/net/route")
        .ok()
        .and_then(|table| default_interface_v4(&table))
        .and_then(|interface| interface_address(&interface, "-4"));
    let default_ipv6 = fs::read_to_string("/proc/net/ipv6_route")
        .ok()
        .and_then(|table| default_interface_v6(&table))
        .and_then(|interface| interface_address(&interface, "-6"));
    MachineFacts {
        hostname,
        default_ipv4,
        default_ipv6,
        systemd_is_init: systemd_is_init(),
    }
}

/// Whether systemd runs as PID 1, the way `sd_booted()` decides it.
pub fn systemd_is_init() -> bool {
    std::path::Path::new("/run/systemd/system").is_dir()
}

/// The interface of the IPv4 default route with the lowest metric, from `/proc/net/route`.
fn default_interface_v4(table: &str) -> Option<String> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let is_default =
                fields.get(1) == Some(&"00000000") && fields.get(7) == Some(&"00000000");
            let metric: u32 = fields.get(6)?.parse().ok()?;
            is_default.then(|| (metric, fields[0].to_owned()))
        })
        .min()
        .map(|(_, interface)| interface)
}

/// The interface of the IPv6 default route, from `/proc/net/ipv6_route`.
fn default_interface_v6(table: &str) -> Option<String> {
    table
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let is_default = fields.first() == Some(&"00000000000000000000000000000000")
                && fields.get(1) == Some(&"00");
            let interface = fields.get(9)?;
            (is_default && *interface != "lo").then(|| interface.to_string())
        })
        .next()
}

/// The first global address of an interface, from `ip -o <family> addr show dev <interface> scope global`.
fn interface_address(interface: &str, family: &str) -> Option<IpAddr> {
    let output = Command::new("ip")
        .args([
            "-o", family, "addr", "show", "dev", interface, "scope", "global",
        ])
        .output()
        .ok()?;
    parse_ip_addr_output(&String::from_utf8_lossy(&output.stdout))
}

fn parse_ip_addr_output(text: &str) -> Option<IpAddr> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        words.find(|word| *word == "inet" || *word == "inet6")?;
        let address = words.next()?;
        address.split('/').next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lowest_metric_default_route_wins() {
        let table =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                     eth1\t00000000\t0100A8C0\t0003\t0\t0\t200\t00000000\t0\t0\t0\n\
                     eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
                     eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        assert_eq!(default_interface_v4(table).as_deref(), Some("eth0"));
    }

    #[test]
    fn addresses_are_read_from_ip_output() {
        let text = "2: eth0    inet 10.0.2.15/24 brd 10.0.2.255 scope global eth0\\       valid_lft forever\n";
        assert_eq!(
            parse_ip_addr_output(text),
            Some("10.0.2.15".parse().expect("ip"))
        );
        assert_eq!(parse_ip_addr_output(""), None);
    }
}
