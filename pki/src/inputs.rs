//! [`PkiInputs`]: everything from the configuration that shapes the PKI, as a plain struct (this crate does not
//! depend on bosun-config), and the subject and SAN derivations of kubeadm-facts §1.2.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crate::key::KeyAlgorithm;
use crate::table::{CertSpec, ClientName, CommonName, Endpoint, KubeconfigSpec, SanRule, Usage};

/// Leaf and CA lifetimes (`certificateValidityPeriod`, `caCertificateValidityPeriod`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub leaf: Duration,
    pub ca: Duration,
}

impl Default for Validity {
    fn default() -> Self {
        Validity {
            leaf: Duration::from_secs(8760 * 3600),
            ca: Duration::from_secs(87600 * 3600),
        }
    }
}

/// How far certificates are backdated, to tolerate small clock differences between nodes.
pub const BACKDATE: Duration = Duration::from_secs(5 * 60);

/// The configuration values the PKI depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiInputs {
    /// `nodeRegistration.name`.
    pub node_name: String,
    /// `localAPIEndpoint.advertiseAddress`.
    pub advertise_address: IpAddr,
    /// `localAPIEndpoint.bindPort`.
    pub bind_port: u16,
    /// The first IP of the (first) service subnet: the `kubernetes` service VIP.
    pub service_vip: IpAddr,
    /// `networking.dnsDomain`.
    pub dns_domain: String,
    /// `controlPlaneEndpoint` as configured (`host`, `host:port`, `[v6]:port`), if any.
    pub control_plane_endpoint: Option<String>,
    /// `apiServer.certSANs`.
    pub apiserver_cert_sans: Vec<String>,
    /// `etcd.local.serverCertSANs`.
    pub etcd_server_cert_sans: Vec<String>,
    /// `etcd.local.peerCertSANs`.
    pub etcd_peer_cert_sans: Vec<String>,
    /// `clusterName`.
    pub cluster_name: String,
    /// `encryptionAlgorithm`.
    pub key_algorithm: KeyAlgorithm,
    pub validity: Validity,
    /// `etcd.external` is set: no etcd CA or etcd leaves.
    pub external_etcd: bool,
}

/// Subject alternative names: DNS names sorted and de-duplicated, IPs de-duplicated in first-seen order (as
/// kubeadm's RemoveDuplicateAltNames leaves them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AltNames {
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
}

impl AltNames {
    pub(crate) fn normalised(mut self) -> Self {
        self.dns_names.sort();
        self.dns_names.dedup();
        let mut seen = Vec::new();
        self.ip_addresses.retain(|address| {
            if seen.contains(address) {
                false
            } else {
                seen.push(*address);
                true
            }
        });
        self
    }

    pub fn is_empty(&self) -> bool {
        self.dns_names.is_empty() && self.ip_addresses.is_empty()
    }

    /// Every name as OpenSSL prints it (`DNS:kubernetes`, `IP Address:10.96.0.1`), DNS first.
    pub fn describe(&self) -> Vec<String> {
        self.dns_names
            .iter()
            .map(|name| format!("DNS:{name}"))
            .chain(
                self.ip_addresses
                    .iter()
                    .map(|address| format!("IP Address:{address}")),
            )
            .collect()
    }
}

/// What a certificate must say: subject, SANs and usages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRequest {
    /// Table name, for messages.
    pub name: String,
    pub common_name: String,
    pub organization: Vec<String>,
    pub alt_names: AltNames,
    pub usages: Vec<Usage>,
}

/// An extra SAN that is neither an IP nor an RFC-1123 DNS name; kubeadm drops it with this warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedSan {
    pub certificate: String,
    pub value: String,
}

impl std::fmt::Display for DroppedSan {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "{:?} was not added to the {} certificate's SANs because it is not a valid IP address or RFC-1123 DNS name",
            self.value, self.certificate
        )
    }
}

/// Classifies extra SANs as kubeadm's appendSANsToAltNames does.
pub fn classify_sans(
    certificate: &str,
    extra: &[String],
    into: &mut AltNames,
    dropped: &mut Vec<DroppedSan>,
) {
    for value in extra {
        if let Ok(address) = value.parse::<IpAddr>() {
            into.ip_addresses.push(address);
        } else if is_dns1123_subdomain(value) || is_wildcard_dns1123_subdomain(value) {
            into.dns_names.push(value.clone());
        } else {
            dropped.push(DroppedSan {
                certificate: certificate.to_owned(),
                value: value.clone(),
            });
        }
    }
}

fn is_dns1123_label_chain(value: &str) -> bool {
    !value.is_empty()
        && value.split('.').all(|label| {
            let bytes = label.as_bytes();
            !bytes.is_empty()
                && bytes
                    .iter()
                    .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || *byte == b'-')
                && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
                && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        })
}

/// Kubernetes' IsDNS1123Subdomain: lowercase labels of `[a-z0-9-]`, alphanumeric at both ends, at most 253 bytes.
pub fn is_dns1123_subdomain(value: &str) -> bool {
    value.len() <= 253 && is_dns1123_label_chain(value)
}

/// Kubernetes' IsWildcardDNS1123Subdomain: `*.` followed by a DNS-1123 subdomain.
pub fn is_wildcard_dns1123_subdomain(value: &str) -> bool {
    value.len() <= 253 && value.strip_prefix("*.").is_some_and(is_dns1123_label_chain)
}

/// Splits `host`, `host:port`, `v6` or `[v6]:port` into host and port (like kubeadm's ParseHostPort).
pub fn split_host_port(endpoint: &str) -> (&str, Option<u16>) {
    if let Some(rest) = endpoint.strip_prefix('[') {
        if let Some(end) = rest.find(']') {
            let port = rest[end + 1..]
                .strip_prefix(':')
                .and_then(|port| port.parse().ok());
            return (&rest[..end], port);
        }
    }
    if endpoint.parse::<IpAddr>().is_ok() {
        return (endpoint, None);
    }
    match endpoint.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => (host, port.parse().ok()),
        _ => (endpoint, None),
    }
}

/// The host part of an endpoint.
pub fn endpoint_host(endpoint: &str) -> &str {
    split_host_port(endpoint).0
}

fn url_host(address: IpAddr) -> String {
    match address {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

impl PkiInputs {
    /// The common name a table row gets.
    pub fn common_name(&self, spec: &CertSpec) -> String {
        match spec.common_name {
            CommonName::Fixed(name) => name.to_owned(),
            CommonName::NodeName => self.node_name.clone(),
        }
    }

    /// The SANs a table row requires, and the extra SANs that had to be dropped.
    pub fn alt_names(&self, spec: &CertSpec) -> (AltNames, Vec<DroppedSan>) {
        let mut names = AltNames::default();
        let mut dropped = Vec::new();
        match spec.sans {
            SanRule::None => {}
            SanRule::CommonName => names.dns_names.push(self.common_name(spec)),
            SanRule::ApiServer => {
                names.dns_names.extend([
                    self.node_name.clone(),
                    "kubernetes".to_owned(),
                    "kubernetes.default".to_owned(),
                    "kubernetes.default.svc".to_owned(),
                    format!("kubernetes.default.svc.{}", self.dns_domain),
                ]);
                names
                    .ip_addresses
                    .extend([self.service_vip, self.advertise_address]);
                if let Some(endpoint) = self
                    .control_plane_endpoint
                    .as_deref()
                    .filter(|endpoint| !endpoint.is_empty())
                {
                    let host = endpoint_host(endpoint);
                    match host.parse::<IpAddr>() {
                        Ok(address) => names.ip_addresses.push(address),
                        Err(_) => names.dns_names.push(host.to_owned()),
                    }
                }
                classify_sans(
                    spec.name,
                    &self.apiserver_cert_sans,
                    &mut names,
                    &mut dropped,
                );
            }
            SanRule::EtcdServer | SanRule::EtcdPeer => {
                names
                    .dns_names
                    .extend([self.node_name.clone(), "localhost".to_owned()]);
                names.ip_addresses.extend([
                    self.advertise_address,
                    IpAddr::V4(Ipv4Addr::LOCALHOST),
                    IpAddr::V6(Ipv6Addr::LOCALHOST),
                ]);
                let extra = if spec.sans == SanRule::EtcdServer {
                    &self.etcd_server_cert_sans
                } else {
                    &self.etcd_peer_cert_sans
                };
                classify_sans(spec.name, extra, &mut names, &mut dropped);
            }
        }
        (names.normalised(), dropped)
    }

    /// Subject, SANs and usages of a table row.
    pub fn cert_request(&self, spec: &CertSpec) -> (CertRequest, Vec<DroppedSan>) {
        let (alt_names, dropped) = self.alt_names(spec);
        (
            CertRequest {
                name: spec.name.to_owned(),
                common_name: self.common_name(spec),
                organization: spec.organization.iter().map(|o| (*o).to_owned()).collect(),
                alt_names,
                usages: spec.usages.to_vec(),
            },
            dropped,
        )
    }

    /// The table rows this configuration makes (without the etcd rows when etcd is external).
    pub fn certificates(&self) -> impl Iterator<Item = &'static CertSpec> + '_ {
        crate::table::CERTIFICATES
            .iter()
            .filter(|spec| !(spec.etcd && self.external_etcd))
    }

    /// `https://<advertiseAddress>:<bindPort>`.
    pub fn local_endpoint_url(&self) -> String {
        format!(
            "https://{}:{}",
            url_host(self.advertise_address),
            self.bind_port
        )
    }

    /// `https://` + controlPlaneEndpoint (bindPort appended when it has none), else the local endpoint.
    pub fn control_plane_endpoint_url(&self) -> String {
        match self
            .control_plane_endpoint
            .as_deref()
            .filter(|endpoint| !endpoint.is_empty())
        {
            None => self.local_endpoint_url(),
            Some(endpoint) => {
                let (host, port) = split_host_port(endpoint);
                let port = port.unwrap_or(self.bind_port);
                match host.parse::<IpAddr>() {
                    Ok(address) => format!("https://{}:{port}", url_host(address)),
                    Err(_) => format!("https://{host}:{port}"),
                }
            }
        }
    }

    /// The server URL of a kubeconfig row.
    pub fn kubeconfig_server(&self, spec: &KubeconfigSpec) -> String {
        match spec.endpoint {
            Endpoint::ControlPlane => self.control_plane_endpoint_url(),
            Endpoint::Local => self.local_endpoint_url(),
        }
    }

    /// The client certificate a kubeconfig row embeds.
    pub fn kubeconfig_request(&self, spec: &KubeconfigSpec) -> CertRequest {
        let common_name = match spec.client_name {
            ClientName::Fixed(name) => name.to_owned(),
            ClientName::Node => format!("system:node:{}", self.node_name),
        };
        CertRequest {
            name: spec.file.to_owned(),
            common_name,
            organization: spec.organization.iter().map(|o| (*o).to_owned()).collect(),
            alt_names: AltNames::default(),
            usages: vec![Usage::ClientAuth],
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::table::{cert_spec, kubeconfig_spec};

    pub(crate) fn sample_inputs() -> PkiInputs {
        PkiInputs {
            node_name: "cp-1".to_owned(),
            advertise_address: "192.168.10.5".parse().expect("ip"),
            bind_port: 6443,
            service_vip: "10.96.0.1".parse().expect("ip"),
            dns_domain: "cluster.local".to_owned(),
            control_plane_endpoint: None,
            apiserver_cert_sans: Vec::new(),
            etcd_server_cert_sans: Vec::new(),
            etcd_peer_cert_sans: Vec::new(),
            cluster_name: "kubernetes".to_owned(),
            key_algorithm: KeyAlgorithm::EcdsaP256,
            validity: Validity::default(),
            external_etcd: false,
        }
    }

    #[test]
    fn apiserver_sans_are_sorted_with_ips_in_first_seen_order() {
        let mut inputs = sample_inputs();
        inputs.control_plane_endpoint = Some("lb.example.com:6443".to_owned());
        inputs.apiserver_cert_sans = vec![
            "10.0.0.9".to_owned(),
            "a.example.com".to_owned(),
            "*.apps.example.com".to_owned(),
            "Not_Valid".to_owned(),
            "192.168.10.5".to_owned(),
            "kubernetes".to_owned(),
        ];
        let (names, dropped) = inputs.alt_names(cert_spec("apiserver").expect("row"));
        assert_eq!(
            names.dns_names,
            vec![
                "*.apps.example.com",
                "a.example.com",
                "cp-1",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
                "lb.example.com",
            ]
        );
        let ips: Vec<String> = names.ip_addresses.iter().map(ToString::to_string).collect();
        assert_eq!(ips, vec!["10.96.0.1", "192.168.10.5", "10.0.0.9"]);
        assert_eq!(dropped.len(), 1);
        assert_eq!(dropped[0].value, "Not_Valid");
        assert!(dropped[0].to_string().contains("apiserver"));
    }

    #[test]
    fn etcd_sans_include_loopbacks_and_their_own_extra_list() {
        let mut inputs = sample_inputs();
        inputs.etcd_server_cert_sans = vec!["etcd.example.com".to_owned()];
        inputs.etcd_peer_cert_sans = vec!["10.1.1.1".to_owned()];
        let (server, _) = inputs.alt_names(cert_spec("etcd-server").expect("row"));
        assert_eq!(
            server.dns_names,
            vec!["cp-1", "etcd.example.com", "localhost"]
        );
        let ips: Vec<String> = server
            .ip_addresses
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(ips, vec!["192.168.10.5", "127.0.0.1", "::1"]);
        let (peer, _) = inputs.alt_names(cert_spec("etcd-peer").expect("row"));
        assert_eq!(peer.dns_names, vec!["cp-1", "localhost"]);
        assert_eq!(peer.ip_addresses.len(), 4);
    }

    #[test]
    fn cas_carry_their_common_name_and_etcd_rows_follow_the_node_name() {
        let inputs = sample_inputs();
        let (names, _) = inputs.alt_names(cert_spec("front-proxy-ca").expect("row"));
        assert_eq!(names.dns_names, vec!["front-proxy-ca"]);
        assert_eq!(
            inputs.common_name(cert_spec("etcd-peer").expect("row")),
            "cp-1"
        );
    }

    #[test]
    fn external_etcd_leaves_out_the_etcd_rows() {
        let mut inputs = sample_inputs();
        assert_eq!(inputs.certificates().count(), 10);
        inputs.external_etcd = true;
        let names: Vec<&str> = inputs.certificates().map(|spec| spec.name).collect();
        assert_eq!(
            names,
            vec![
                "ca",
                "apiserver",
                "apiserver-kubelet-client",
                "front-proxy-ca",
                "front-proxy-client"
            ]
        );
    }

    #[test]
    fn endpoints_follow_kubeadm() {
        let mut inputs = sample_inputs();
        assert_eq!(
            inputs.control_plane_endpoint_url(),
            "https://192.168.10.5:6443"
        );
        inputs.control_plane_endpoint = Some("lb.example.com".to_owned());
        assert_eq!(
            inputs.control_plane_endpoint_url(),
            "https://lb.example.com:6443"
        );
        inputs.control_plane_endpoint = Some("lb.example.com:8443".to_owned());
        assert_eq!(
            inputs.control_plane_endpoint_url(),
            "https://lb.example.com:8443"
        );
        inputs.control_plane_endpoint = Some("[fd00::1]:8443".to_owned());
        assert_eq!(
            inputs.control_plane_endpoint_url(),
            "https://[fd00::1]:8443"
        );
        inputs.control_plane_endpoint = Some("fd00::1".to_owned());
        assert_eq!(
            inputs.control_plane_endpoint_url(),
            "https://[fd00::1]:6443"
        );
        let scheduler = kubeconfig_spec("scheduler").expect("row");
        assert_eq!(
            inputs.kubeconfig_server(scheduler),
            "https://192.168.10.5:6443"
        );
        let kubelet = inputs.kubeconfig_request(kubeconfig_spec("kubelet").expect("row"));
        assert_eq!(kubelet.common_name, "system:node:cp-1");
        assert_eq!(kubelet.organization, vec!["system:nodes"]);
    }

    #[test]
    fn dns_1123_rules() {
        assert!(is_dns1123_subdomain("a-b.c1"));
        assert!(!is_dns1123_subdomain("-a"));
        assert!(!is_dns1123_subdomain("A.b"));
        assert!(!is_dns1123_subdomain("a..b"));
        assert!(is_wildcard_dns1123_subdomain("*.a.b"));
        assert!(!is_wildcard_dns1123_subdomain("*a.b"));
    }
}
