//! The certificate table and the kubeconfig table, declared once (kubeadm's certlist.go and kubeconfig.go, v1.29+
//! subjects). Code iterates these tables; nothing else names a certificate.

/// An extended key usage kubeadm puts on certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Usage {
    ServerAuth,
    ClientAuth,
}

impl Usage {
    /// The name OpenSSL prints (`TLS Web Server Authentication`).
    pub fn openssl_name(self) -> &'static str {
        match self {
            Usage::ServerAuth => "TLS Web Server Authentication",
            Usage::ClientAuth => "TLS Web Client Authentication",
        }
    }
}

impl std::fmt::Display for Usage {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            Usage::ServerAuth => "server auth",
            Usage::ClientAuth => "client auth",
        })
    }
}

/// Where a certificate's common name comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommonName {
    Fixed(&'static str),
    /// `nodeRegistration.name` (etcd server and peer).
    NodeName,
}

/// Which subject alternative names a certificate carries (kubeadm-facts §1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SanRule {
    None,
    /// CAs carry their common name as a DNS name.
    CommonName,
    /// Node name, kubernetes.default.svc.<domain> and friends, the service VIP, the advertise address, the
    /// control-plane endpoint host and `apiServer.certSANs`.
    ApiServer,
    /// Node name, localhost, the advertise address, 127.0.0.1, ::1 and `etcd.local.serverCertSANs`.
    EtcdServer,
    /// As [`SanRule::EtcdServer`] with `etcd.local.peerCertSANs`.
    EtcdPeer,
}

/// Who signs a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signer {
    /// A self-signed CA.
    SelfSigned,
    /// A leaf signed by the CA of this table name.
    Ca(&'static str),
}

/// One row of the certificate table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertSpec {
    /// The phase and renewal name (`apiserver-etcd-client`).
    pub name: &'static str,
    /// kubeadm's long name, used in help and renewal messages.
    pub long_name: &'static str,
    /// The file base under the certificate directory (`etcd/server` → `etcd/server.crt`, `etcd/server.key`).
    pub base: &'static str,
    pub signer: Signer,
    pub common_name: CommonName,
    pub organization: &'static [&'static str],
    pub usages: &'static [Usage],
    pub sans: SanRule,
    /// Part of the local etcd PKI, left out when etcd is external.
    pub etcd: bool,
}

impl CertSpec {
    pub fn is_ca(&self) -> bool {
        self.signer == Signer::SelfSigned
    }

    /// The CA's table row, for a leaf.
    pub fn ca(&self) -> Option<&'static CertSpec> {
        match self.signer {
            Signer::SelfSigned => None,
            Signer::Ca(name) => cert_spec(name),
        }
    }

    /// `<base>.crt`, relative to the certificate directory.
    pub fn cert_file(&self) -> String {
        format!("{}.crt", self.base)
    }

    /// `<base>.key`, relative to the certificate directory.
    pub fn key_file(&self) -> String {
        format!("{}.key", self.base)
    }

    /// `<base>.csr`, relative to the CSR directory.
    pub fn csr_file(&self) -> String {
        format!("{}.csr", self.base)
    }
}

const CLUSTER_ADMINS: &str = "kubeadm:cluster-admins";

/// Every certificate kubeadm makes, in generation order (= `init phase certs` sub-phase order).
pub const CERTIFICATES: [CertSpec; 10] = [
    CertSpec {
        name: "ca",
        long_name: "Kubernetes CA (self-signed) that signs the API server, kubelet and component certificates",
        base: "ca",
        signer: Signer::SelfSigned,
        common_name: CommonName::Fixed("kubernetes"),
        organization: &[],
        usages: &[],
        sans: SanRule::CommonName,
        etcd: false,
    },
    CertSpec {
        name: "apiserver",
        long_name: "API server's serving certificate",
        base: "apiserver",
        signer: Signer::Ca("ca"),
        common_name: CommonName::Fixed("kube-apiserver"),
        organization: &[],
        usages: &[Usage::ServerAuth],
        sans: SanRule::ApiServer,
        etcd: false,
    },
    CertSpec {
        name: "apiserver-kubelet-client",
        long_name: "API server's client certificate for kubelets",
        base: "apiserver-kubelet-client",
        signer: Signer::Ca("ca"),
        common_name: CommonName::Fixed("kube-apiserver-kubelet-client"),
        organization: &[CLUSTER_ADMINS],
        usages: &[Usage::ClientAuth],
        sans: SanRule::None,
        etcd: false,
    },
    CertSpec {
        name: "front-proxy-ca",
        long_name: "front-proxy CA (self-signed) for the aggregation layer",
        base: "front-proxy-ca",
        signer: Signer::SelfSigned,
        common_name: CommonName::Fixed("front-proxy-ca"),
        organization: &[],
        usages: &[],
        sans: SanRule::CommonName,
        etcd: false,
    },
    CertSpec {
        name: "front-proxy-client",
        long_name: "front-proxy client certificate of the API server",
        base: "front-proxy-client",
        signer: Signer::Ca("front-proxy-ca"),
        common_name: CommonName::Fixed("front-proxy-client"),
        organization: &[],
        usages: &[Usage::ClientAuth],
        sans: SanRule::None,
        etcd: false,
    },
    CertSpec {
        name: "etcd-ca",
        long_name: "etcd CA (self-signed) for etcd servers, peers and clients",
        base: "etcd/ca",
        signer: Signer::SelfSigned,
        common_name: CommonName::Fixed("etcd-ca"),
        organization: &[],
        usages: &[],
        sans: SanRule::CommonName,
        etcd: true,
    },
    CertSpec {
        name: "etcd-server",
        long_name: "etcd serving certificate",
        base: "etcd/server",
        signer: Signer::Ca("etcd-ca"),
        common_name: CommonName::NodeName,
        organization: &[],
        // etcd 3.2+ also wants ClientAuth on its serving certificate.
        usages: &[Usage::ServerAuth, Usage::ClientAuth],
        sans: SanRule::EtcdServer,
        etcd: true,
    },
    CertSpec {
        name: "etcd-peer",
        long_name: "etcd peer certificate for traffic between members",
        base: "etcd/peer",
        signer: Signer::Ca("etcd-ca"),
        common_name: CommonName::NodeName,
        organization: &[],
        usages: &[Usage::ServerAuth, Usage::ClientAuth],
        sans: SanRule::EtcdPeer,
        etcd: true,
    },
    CertSpec {
        name: "etcd-healthcheck-client",
        long_name: "etcd client certificate of health checks",
        base: "etcd/healthcheck-client",
        signer: Signer::Ca("etcd-ca"),
        common_name: CommonName::Fixed("kube-etcd-healthcheck-client"),
        organization: &[],
        usages: &[Usage::ClientAuth],
        sans: SanRule::None,
        etcd: true,
    },
    CertSpec {
        name: "apiserver-etcd-client",
        long_name: "API server's client certificate for etcd",
        base: "apiserver-etcd-client",
        signer: Signer::Ca("etcd-ca"),
        common_name: CommonName::Fixed("kube-apiserver-etcd-client"),
        organization: &[],
        usages: &[Usage::ClientAuth],
        sans: SanRule::None,
        etcd: true,
    },
];

/// The service-account signing key pair (`sa.key`, `sa.pub`); not a certificate.
pub const SERVICE_ACCOUNT: ServiceAccountSpec = ServiceAccountSpec {
    name: "sa",
    long_name: "service-account signing key and its public key",
    private_key_file: "sa.key",
    public_key_file: "sa.pub",
};

/// The service-account key pair's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceAccountSpec {
    pub name: &'static str,
    pub long_name: &'static str,
    pub private_key_file: &'static str,
    pub public_key_file: &'static str,
}

/// A certificate's row by table name.
pub fn cert_spec(name: &str) -> Option<&'static CertSpec> {
    CERTIFICATES.iter().find(|spec| spec.name == name)
}

/// The CAs, in table order.
pub fn certificate_authorities() -> impl Iterator<Item = &'static CertSpec> {
    CERTIFICATES.iter().filter(|spec| spec.is_ca())
}

/// Which API server URL a kubeconfig points at (kubeadm-facts §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `https://` + controlPlaneEndpoint, else the advertise address.
    ControlPlane,
    /// Always `https://<advertiseAddress>:<bindPort>`.
    Local,
}

/// Where a kubeconfig's client name comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientName {
    Fixed(&'static str),
    /// `system:node:<nodeName>`.
    Node,
}

/// One row of the kubeconfig table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KubeconfigSpec {
    /// The phase name (`controller-manager`).
    pub name: &'static str,
    pub long_name: &'static str,
    /// The file name in /etc/kubernetes.
    pub file: &'static str,
    pub client_name: ClientName,
    pub organization: &'static [&'static str],
    pub endpoint: Endpoint,
    /// Whether `certs renew` renews it (kubelet.conf is rotated by the kubelet instead).
    pub renewable: bool,
}

/// Every kubeconfig `init` writes, in phase order. Client certificates are signed by `ca` with ClientAuth.
pub const KUBECONFIGS: [KubeconfigSpec; 5] = [
    KubeconfigSpec {
        name: "admin",
        long_name: "administrator's kubeconfig file (group kubeadm:cluster-admins)",
        file: "admin.conf",
        client_name: ClientName::Fixed("kubernetes-admin"),
        organization: &[CLUSTER_ADMINS],
        endpoint: Endpoint::ControlPlane,
        renewable: true,
    },
    KubeconfigSpec {
        name: "super-admin",
        long_name: "break-glass kubeconfig file (group system:masters)",
        file: "super-admin.conf",
        client_name: ClientName::Fixed("kubernetes-super-admin"),
        organization: &["system:masters"],
        endpoint: Endpoint::ControlPlane,
        renewable: true,
    },
    KubeconfigSpec {
        name: "kubelet",
        long_name:
            "kubelet's kubeconfig file for the first node, until its client certificate rotates",
        file: "kubelet.conf",
        client_name: ClientName::Node,
        organization: &["system:nodes"],
        endpoint: Endpoint::ControlPlane,
        renewable: false,
    },
    KubeconfigSpec {
        name: "controller-manager",
        long_name: "controller-manager's kubeconfig file",
        file: "controller-manager.conf",
        client_name: ClientName::Fixed("system:kube-controller-manager"),
        organization: &[],
        endpoint: Endpoint::Local,
        renewable: true,
    },
    KubeconfigSpec {
        name: "scheduler",
        long_name: "scheduler's kubeconfig file",
        file: "scheduler.conf",
        client_name: ClientName::Fixed("system:kube-scheduler"),
        organization: &[],
        endpoint: Endpoint::Local,
        renewable: true,
    },
];

/// The CA that signs kubeconfig client certificates.
pub const KUBECONFIG_CA: &str = "ca";

/// A kubeconfig's row by phase name.
pub fn kubeconfig_spec(name: &str) -> Option<&'static KubeconfigSpec> {
    KUBECONFIGS.iter().find(|spec| spec.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_leaf_names_a_ca_of_the_table_that_comes_before_it() {
        for (index, spec) in CERTIFICATES.iter().enumerate() {
            if let Signer::Ca(ca_name) = spec.signer {
                let ca_index = CERTIFICATES
                    .iter()
                    .position(|candidate| candidate.name == ca_name)
                    .expect("the CA is in the table");
                assert!(ca_index < index, "{} comes before its CA", spec.name);
                assert!(CERTIFICATES[ca_index].is_ca());
                assert_eq!(spec.etcd, CERTIFICATES[ca_index].etcd, "{}", spec.name);
                assert!(!spec.usages.is_empty(), "{} has no usages", spec.name);
            }
        }
    }

    #[test]
    fn subjects_follow_kubeadm_1_29() {
        let organization = |name: &str| cert_spec(name).expect("row").organization;
        assert_eq!(
            organization("apiserver-kubelet-client"),
            &["kubeadm:cluster-admins"]
        );
        assert!(organization("apiserver-etcd-client").is_empty());
        assert!(organization("etcd-healthcheck-client").is_empty());
        assert_eq!(
            kubeconfig_spec("super-admin").expect("row").organization,
            &["system:masters"]
        );
    }
}
