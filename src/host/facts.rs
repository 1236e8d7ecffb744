#![expect(
    clippy::disallowed_methods,
    reason = "src/host is where bosun touches the machine"
)]
//! Facts about the local machine that configuration defaults depend on: hostname and default-route addresses.

use std::fs;
use std::net::IpAddr;

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
    let hostname = hostname();
    let default_ipv4 = fs::read_to_string("/proc/net/route")
        .ok()
        .and_then(|table| default_interface_v4(&table))
        .and_then(|interface| interface_address(&interface, false));
    let default_ipv6 = fs::read_to_string("/proc/net/ipv6_route")
        .ok()
        .and_then(|table| default_interface_v6(&table))
        .and_then(|interface| interface_address(&interface, true));
    MachineFacts {
        hostname,
        default_ipv4,
        default_ipv6,
        systemd_is_init: systemd_is_init(),
    }
}

/// The hostname, lower-cased as node names are; empty when unreadable.
fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|text| text.trim().to_lowercase())
        .unwrap_or_default()
}

/// Whether systemd runs as PID 1, the way `sd_booted()` decides it.
pub fn systemd_is_init() -> bool {
    std::path::Path::new("/run/systemd/system").is_dir()
}

/// Facts the node phases decide from (bosun_phases::node::NodeFacts): cgroups, init system, resources, swap, the
/// requested kernel parameters and ports. Anything unreadable is left at its empty value; preflight reports it.
pub fn node_facts(request: &bosun_phases::node::FactRequest) -> bosun_phases::node::NodeFacts {
    use bosun_phases::node::{CgroupVersion, NodeFacts};
    let read = |path: &str| fs::read_to_string(path).unwrap_or_default();
    let (cgroup_version, cgroup_controllers) = cgroup_facts();
    let sysctls = request
        .sysctls
        .iter()
        .filter_map(|name| {
            let path = format!("/proc/sys/{}", name.replace('.', "/"));
            fs::read_to_string(path)
                .ok()
                .map(|value| (name.clone(), value.trim().to_owned()))
        })
        .collect();
    let listening = listening_ports(&read("/proc/net/tcp"))
        .into_iter()
        .chain(listening_ports(&read("/proc/net/tcp6")))
        .collect::<Vec<u16>>();
    let hostname = hostname();
    let resolve_name = if request.hostname.is_empty() {
        hostname.clone()
    } else {
        request.hostname.clone()
    };
    let hostname_resolves = {
        use std::net::ToSocketAddrs;
        (resolve_name.as_str(), 0u16)
            .to_socket_addrs()
            .map(|mut addresses| addresses.next().is_some())
            .unwrap_or(false)
    };
    let proxy_env = [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
    ]
    .iter()
    .filter_map(|name| {
        std::env::var(name)
            .ok()
            .map(|value| ((*name).to_owned(), value))
    })
    .collect();
    NodeFacts {
        gathered: true,
        hostname,
        is_root: effective_uid(&read("/proc/self/status")) == Some(0),
        cpus: std::thread::available_parallelism()
            .map(|count| u32::try_from(count.get()).unwrap_or(u32::MAX))
            .unwrap_or(0),
        memory_mib: meminfo_kib(&read("/proc/meminfo"), "MemTotal") / 1024,
        swap_kib: swap_kib(&read("/proc/swaps")),
        systemd_is_init: systemd_is_init(),
        systemd_resolved: read("/etc/resolv.conf")
            .lines()
            .any(|line| line.trim() == "nameserver 127.0.0.53"),
        cgroup_version: match cgroup_version {
            Some(true) => CgroupVersion::V2,
            Some(false) => CgroupVersion::V1,
            None => CgroupVersion::Unknown,
        },
        cgroup_controllers,
        sysctls,
        ports_in_use: request
            .ports
            .iter()
            .copied()
            .filter(|port| listening.contains(port))
            .collect(),
        hostname_resolves,
        kernel_release: read("/proc/sys/kernel/osrelease").trim().to_owned(),
        proxy_env,
    }
}

/// (Some(true) for cgroup v2 only, Some(false) for v1 or hybrid, None if no cgroup fs), and the controllers.
fn cgroup_facts() -> (Option<bool>, Vec<String>) {
    if let Ok(controllers) = fs::read_to_string("/sys/fs/cgroup/cgroup.controllers") {
        return (
            Some(true),
            controllers.split_whitespace().map(str::to_owned).collect(),
        );
    }
    match fs::read_to_string("/proc/cgroups") {
        Ok(table) => (Some(false), enabled_v1_controllers(&table)),
        Err(_) => (None, Vec::new()),
    }
}

/// Controllers of /proc/cgroups that are attached to a v1 hierarchy and enabled.
fn enabled_v1_controllers(table: &str) -> Vec<String> {
    table
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let attached = fields.get(1).is_some_and(|hierarchy| *hierarchy != "0");
            let enabled = fields.get(3) == Some(&"1");
            (attached && enabled).then(|| fields[0].to_owned())
        })
        .collect()
}

/// Local ports in LISTEN state (0A) in a /proc/net/tcp table.
fn listening_ports(table: &str) -> Vec<u16> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local = fields.get(1)?;
            if fields.get(3) != Some(&"0A") {
                return None;
            }
            u16::from_str_radix(local.rsplit(':').next()?, 16).ok()
        })
        .collect()
}

fn effective_uid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .and_then(|id| id.parse().ok())
}

fn meminfo_kib(meminfo: &str, key: &str) -> u64 {
    meminfo
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .unwrap_or(0)
}

fn swap_kib(swaps: &str) -> u64 {
    swaps
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().nth(2)?.parse::<u64>().ok())
        .sum()
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

/// The first global address of an interface (IPv6 or IPv4), as `ip addr show dev <interface> scope global` lists
/// them, read with getifaddrs(3) rather than by running `ip`.
fn interface_address(interface: &str, ipv6: bool) -> Option<IpAddr> {
    let addresses = nix::ifaddrs::getifaddrs().ok()?;
    first_global(
        addresses
            .filter(|entry| entry.interface_name == interface)
            .filter_map(|entry| entry.address)
            .filter_map(|address| {
                if ipv6 {
                    address
                        .as_sockaddr_in6()
                        .map(|socket| IpAddr::V6(socket.ip()))
                } else {
                    address
                        .as_sockaddr_in()
                        .map(|socket| IpAddr::V4(socket.ip()))
                }
            }),
    )
}

/// The first address of global scope: not loopback, link-local or unspecified.
fn first_global(addresses: impl IntoIterator<Item = IpAddr>) -> Option<IpAddr> {
    addresses.into_iter().find(|address| match address {
        IpAddr::V4(v4) => !(v4.is_loopback() || v4.is_link_local() || v4.is_unspecified()),
        IpAddr::V6(v6) => !(v6.is_loopback() || v6.is_unicast_link_local() || v6.is_unspecified()),
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
    fn node_facts_parsers_read_proc_formats() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue\n   0: 0100007F:0929 00000000:0000 0A 00000000:00000000\n   1: 0100007F:1A0B 0100007F:0929 01 00000000:00000000\n";
        assert_eq!(listening_ports(tcp), [2345]);
        let cgroups = "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t3\t90\t1\nhugetlb\t0\t1\t1\nmemory\t5\t100\t1\n";
        assert_eq!(enabled_v1_controllers(cgroups), ["cpu", "memory"]);
        assert_eq!(effective_uid("Name:\tx\nUid:\t1000\t0\t0\t0\n"), Some(0));
        assert_eq!(
            meminfo_kib("MemTotal:       24576000 kB\nMemFree: 1 kB\n", "MemTotal"),
            24_576_000
        );
        assert_eq!(
            swap_kib("Filename Type Size Used Priority\n/swap file 1024 0 -2\n"),
            1024
        );
        assert_eq!(swap_kib("Filename Type Size Used Priority\n"), 0);
    }

    #[test]
    fn the_first_global_address_is_chosen() {
        let addresses: Vec<IpAddr> = ["169.254.1.1", "127.0.0.2", "10.0.2.15", "10.0.2.16"]
            .iter()
            .map(|text| text.parse().expect("ip"))
            .collect();
        assert_eq!(
            first_global(addresses),
            Some("10.0.2.15".parse().expect("ip"))
        );
        let v6: Vec<IpAddr> = ["fe80::1", "::1", "fd00::5", "2001:db8::1"]
            .iter()
            .map(|text| text.parse().expect("ip"))
            .collect();
        assert_eq!(first_global(v6), Some("fd00::5".parse().expect("ip")));
        assert_eq!(first_global(Vec::new()), None);
    }

    #[test]
    fn the_loopback_interface_has_no_global_address() {
        assert_eq!(interface_address("lo", false), None);
    }
}
