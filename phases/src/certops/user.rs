//! `kubeconfig user`: a kubeconfig for a new user with a client certificate signed by the cluster CA, printed rather
//! than written (kubeadm's `kubeconfig user`). The server is the control-plane endpoint, the cluster name is
//! `clusterName`, the context is `<user>@<cluster>`.
//!
//! Read-only on the node: it reads the CA certificate and key and writes nothing.

use std::time::{Duration, SystemTime};

use bosun_config::Config;
use bosun_pki::{issue, AltNames, CertRequest, Kubeconfig, PrivateKey, Usage};

use super::{kubeconfig_ca, CaOnNode, CertopsError, Locations};
use crate::certs::pki_inputs;
use crate::host::Files;

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRequest {
    /// The certificate's CN: the user name the API server sees.
    pub client_name: String,
    /// The certificate's O values: the user's groups.
    pub organizations: Vec<String>,
    /// `None`: the configured `certificateValidityPeriod`.
    pub validity: Option<Duration>,
}

/// Makes the kubeconfig text.
pub fn user_kubeconfig(
    files: &dyn Files,
    config: &Config,
    locations: &Locations,
    request: &UserRequest,
    now: SystemTime,
) -> Result<String, CertopsError> {
    if request.client_name.trim().is_empty() {
        return Err(CertopsError::failed("--client-name must not be empty"));
    }
    let inputs = pki_inputs(config).map_err(|error| CertopsError::failed(error.to_string()))?;
    let ca = CaOnNode::load(files, locations, kubeconfig_ca()?)?;
    let (ca_certificate, ca_key) = ca.signer(
        files,
        &format!("a client certificate for {}", request.client_name),
    )?;
    let key = PrivateKey::generate(inputs.key_algorithm)?;
    let certificate_request = CertRequest {
        name: format!("the kubeconfig of {}", request.client_name),
        common_name: request.client_name.clone(),
        organization: request.organizations.clone(),
        alt_names: AltNames::default(),
        usages: vec![Usage::ClientAuth],
    };
    let lifetime = request.validity.unwrap_or(inputs.validity.leaf);
    let certificate = issue::issue_leaf(
        &certificate_request,
        &key,
        &ca_certificate,
        &ca_key,
        now,
        lifetime,
    )?;
    let kubeconfig = Kubeconfig::with_client_certificate(
        &inputs.cluster_name,
        &inputs.control_plane_endpoint_url(),
        &ca_certificate.to_pem(),
        &request.client_name,
        &certificate.to_pem(),
        &key.to_pem(),
    );
    bosun_config::yaml::to_string(&kubeconfig)
        .map_err(|error| CertopsError::failed(format!("cannot render the kubeconfig: {error}")))
}
