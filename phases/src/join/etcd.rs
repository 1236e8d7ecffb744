//! Stacked etcd on a joining control-plane node (kubeadm's phases/etcd/local.go `CreateStackedEtcdStaticPodManifestFile`
//! and etcdutil's learner handling).
//!
//! Steps: 1. ask the existing members whether this node's peer URL is already a member; if not, add it as a
//! **learner** (it receives the log but does not vote, so a slow or failed start cannot cost the cluster its quorum);
//! 2. write the etcd manifest with `--initial-cluster` listing every member and `--initial-cluster-state=existing`;
//! 3. once the kubelet runs it and it has caught up with the leader, promote it to a voting member.
//!
//! Guarantees: each step finds the state the previous run left (member added, started, promoted) and continues from
//! there, so an interrupted join is finished by running it again. Caveats: between 1 and 3 the cluster has a learner
//! that counts for nothing; if the node never starts it, remove it with `bosun etcd members remove`.

use std::time::{Duration, Instant};

use crate::etcd::{member_id_hex, EtcdError, Member};
use crate::host::Outcome;
use crate::node::manifests::EtcdMember;

/// The member operations `etcd-join` needs.
pub trait EtcdMembership {
    fn members(&self) -> Result<Vec<Member>, EtcdError>;
    /// Adds a learner with these peer URLs; returns the member list after the change.
    fn add_learner(&self, peer_urls: &[String]) -> Result<Vec<Member>, EtcdError>;
    /// Promotes a learner to a voting member. etcd refuses while the learner lags behind the leader.
    fn promote(&self, id: u64) -> Result<(), EtcdError>;
}

/// Client TLS material (PEM) for etcd: the cluster's etcd CA and a client certificate it signed.
pub struct EtcdTls {
    pub ca: Vec<u8>,
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
}

/// Makes etcd connections; the binary supplies the etcd-client one.
pub trait EtcdConnector: Send + Sync {
    fn connect(
        &self,
        endpoints: &[String],
        tls: &EtcdTls,
        timeout: Duration,
    ) -> Result<Box<dyn EtcdMembership>, EtcdError>;
}

/// What [`ensure_member`] found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub id: u64,
    /// `Created` when this run added the learner.
    pub outcome: Outcome,
    /// Whether the member already votes.
    pub voting: bool,
    /// Whether the member has started (etcd knows its name).
    pub started: bool,
    /// The `--initial-cluster` members, this node included, sorted by name.
    pub initial_cluster: Vec<EtcdMember>,
    /// Members left out of `--initial-cluster` because they have not started either (no name yet).
    pub unnamed: Vec<String>,
}

/// Makes sure this node's peer URL is a member, adding it as a learner when it is not.
pub fn ensure_member(
    client: &dyn EtcdMembership,
    node_name: &str,
    peer_url: &str,
) -> Result<Membership, EtcdError> {
    let ours = |member: &Member| member.peer_urls.iter().any(|url| url == peer_url);
    let mut members = client.members()?;
    let mut outcome = Outcome::Unchanged;
    if !members.iter().any(ours) {
        members = client.add_learner(&[peer_url.to_owned()])?;
        outcome = Outcome::Created;
    }
    let Some(own) = members.iter().find(|member| ours(member)).cloned() else {
        return Err(EtcdError {
            endpoint: "etcd".to_owned(),
            message: format!("the member list does not show the member just added for {peer_url}"),
        });
    };
    let mut initial_cluster = Vec::new();
    let mut unnamed = Vec::new();
    for member in &members {
        let Some(url) = member.peer_urls.first() else {
            continue;
        };
        if ours(member) {
            initial_cluster.push(EtcdMember {
                name: node_name.to_owned(),
                peer_url: peer_url.to_owned(),
            });
        } else if member.name.is_empty() {
            unnamed.push(member_id_hex(member.id));
        } else {
            initial_cluster.push(EtcdMember {
                name: member.name.clone(),
                peer_url: url.clone(),
            });
        }
    }
    initial_cluster.sort_by(|left, right| left.name.cmp(&right.name));
    Ok(Membership {
        id: own.id,
        outcome,
        voting: !own.is_learner,
        started: !own.name.is_empty(),
        initial_cluster,
        unnamed,
    })
}

/// Promotes learner `id` once it is in sync, asking every `interval` until `timeout`. Returns `Unchanged` when it
/// already votes.
pub fn promote_when_in_sync(
    client: &dyn EtcdMembership,
    id: u64,
    timeout: Duration,
    interval: Duration,
) -> Result<Outcome, EtcdError> {
    let deadline = Instant::now() + timeout;
    loop {
        let members = client.members()?;
        let Some(member) = members.iter().find(|member| member.id == id) else {
            return Err(EtcdError {
                endpoint: "etcd".to_owned(),
                message: format!(
                    "member {} is no longer in the cluster; was it removed?",
                    member_id_hex(id)
                ),
            });
        };
        if !member.is_learner {
            return Ok(Outcome::Unchanged);
        }
        let last = match client.promote(id) {
            Ok(()) => return Ok(Outcome::Updated),
            Err(error) => error,
        };
        if Instant::now() >= deadline {
            return Err(EtcdError {
                endpoint: last.endpoint,
                message: format!(
                    "the learner {} did not catch up with the leader within {}s: {}",
                    member_id_hex(id),
                    timeout.as_secs(),
                    last.message
                ),
            });
        }
        std::thread::sleep(interval);
    }
}
