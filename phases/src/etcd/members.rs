//! Members: health survey, the quorum rule for removal, and replacement of a failed member.

use serde::Serialize;

use super::{member_id_hex, EtcdClient, EtcdError, Member};

/// One member with what its endpoint says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberReport {
    /// The id in hex, as etcdctl prints it.
    pub id: String,
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    pub is_learner: bool,
    pub healthy: bool,
    pub is_leader: bool,
    pub db_size: Option<i64>,
    pub version: Option<String>,
    pub revision: Option<i64>,
    /// Why the member is unhealthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip)]
    pub raw_id: u64,
}

/// Lists the members and asks each one, through its first client URL, for its status and health.
pub fn survey(client: &dyn EtcdClient) -> Result<Vec<MemberReport>, EtcdError> {
    let members = client.members()?;
    let mut reports = Vec::new();
    for member in members {
        let mut report = MemberReport {
            id: member_id_hex(member.id),
            name: member.name.clone(),
            peer_urls: member.peer_urls.clone(),
            client_urls: member.client_urls.clone(),
            is_learner: member.is_learner,
            healthy: false,
            is_leader: false,
            db_size: None,
            version: None,
            revision: None,
            error: None,
            raw_id: member.id,
        };
        match member.client_urls.first() {
            None => report.error = Some("the member has not started (no client URL)".to_owned()),
            Some(endpoint) => match client.status(endpoint) {
                Err(error) => report.error = Some(error.message),
                Ok(status) => {
                    report.is_leader = status.leader == member.id;
                    report.db_size = Some(status.db_size);
                    report.version = Some(status.version);
                    report.revision = Some(status.revision);
                    // A learner cannot serve linearizable reads; its status answering is its health.
                    let health = if member.is_learner {
                        Ok(())
                    } else {
                        client.health(endpoint)
                    };
                    match health {
                        Ok(()) if status.errors.is_empty() => report.healthy = true,
                        Ok(()) => report.error = Some(status.errors.join("; ")),
                        Err(error) => report.error = Some(error.message),
                    }
                }
            },
        }
        reports.push(report);
    }
    Ok(reports)
}

/// Finds a member by name or hex id.
pub fn find<'a>(reports: &'a [MemberReport], name_or_id: &str) -> Result<&'a MemberReport, String> {
    let wanted = name_or_id.trim().to_lowercase();
    let found: Vec<&MemberReport> = reports
        .iter()
        .filter(|report| report.name == name_or_id || report.id == wanted.trim_start_matches("0x"))
        .collect();
    match found.as_slice() {
        [one] => Ok(one),
        [] => Err(format!(
            "no etcd member is named or has the id {name_or_id:?}; the members are {}",
            reports
                .iter()
                .map(|report| format!(
                    "{} ({})",
                    if report.name.is_empty() {
                        "<unstarted>"
                    } else {
                        &report.name
                    },
                    report.id
                ))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        _ => Err(format!(
            "more than one etcd member matches {name_or_id:?}; give its id instead"
        )),
    }
}

/// Why a removal was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemovalRefused {
    #[error("{name} is the only voting member; removing it would destroy the cluster")]
    LastMember { name: String },
    #[error(
        "removing {name} would lose quorum: {healthy_after} healthy of {voters_after} voting members would remain, and \
         {quorum} are needed"
    )]
    Quorum {
        name: String,
        voters_after: usize,
        healthy_after: usize,
        quorum: usize,
    },
}

/// The quorum rule: after removing `target`, the healthy voting members must still be a majority of the voting
/// members. Learners do not vote and never count.
pub fn check_removal(
    reports: &[MemberReport],
    target: &MemberReport,
) -> Result<(), RemovalRefused> {
    let name = if target.name.is_empty() {
        target.id.clone()
    } else {
        target.name.clone()
    };
    if target.is_learner {
        return Ok(());
    }
    let remaining: Vec<&MemberReport> = reports
        .iter()
        .filter(|report| report.raw_id != target.raw_id && !report.is_learner)
        .collect();
    if remaining.is_empty() {
        return Err(RemovalRefused::LastMember { name });
    }
    let voters_after = remaining.len();
    let healthy_after = remaining.iter().filter(|report| report.healthy).count();
    let quorum = voters_after / 2 + 1;
    if healthy_after < quorum {
        return Err(RemovalRefused::Quorum {
            name,
            voters_after,
            healthy_after,
            quorum,
        });
    }
    Ok(())
}

/// Adds a voting member. etcd refuses an addition with "unhealthy cluster" until every started member has been
/// connected for a few seconds (its strict reconfiguration check), as happens right after a removal; bosun retries that
/// refusal until `timeout` passes.
pub fn add_member(
    client: &dyn EtcdClient,
    peer_url: &str,
    timeout: std::time::Duration,
    sleep: &dyn Fn(std::time::Duration),
) -> Result<(Member, Vec<Member>), EtcdError> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match client.add_member(&[peer_url.to_owned()]) {
            Err(error)
                if error.message.contains("unhealthy cluster")
                    && std::time::Instant::now() < deadline =>
            {
                sleep(std::time::Duration::from_millis(500));
            }
            result => return result,
        }
    }
}

/// How to start a member that was just added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinInstructions {
    pub id: String,
    pub name: String,
    pub peer_url: String,
    /// `--initial-cluster`: every member, the new one included.
    pub initial_cluster: String,
    pub initial_cluster_state: String,
    /// The flags to start the new member with (besides its certificates and listen addresses).
    pub flags: Vec<String>,
}

/// The `--initial-cluster` value and flags for a new member named `name` at `peer_url`, from the list after adding.
pub fn join_instructions(
    added: &Member,
    members: &[Member],
    name: &str,
    peer_url: &str,
) -> JoinInstructions {
    let mut parts: Vec<String> = Vec::new();
    for member in members {
        let member_name = if member.id == added.id {
            name
        } else {
            member.name.as_str()
        };
        if member_name.is_empty() {
            continue;
        }
        for url in &member.peer_urls {
            parts.push(format!("{member_name}={url}"));
        }
    }
    let initial_cluster = parts.join(",");
    JoinInstructions {
        id: member_id_hex(added.id),
        name: name.to_owned(),
        peer_url: peer_url.to_owned(),
        flags: vec![
            format!("--name={name}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster={initial_cluster}"),
            "--initial-cluster-state=existing".to_owned(),
        ],
        initial_cluster,
        initial_cluster_state: "existing".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(id: u64, name: &str, healthy: bool, learner: bool) -> MemberReport {
        MemberReport {
            id: member_id_hex(id),
            name: name.to_owned(),
            peer_urls: vec![format!("https://{name}:2380")],
            client_urls: vec![],
            is_learner: learner,
            healthy,
            is_leader: false,
            db_size: None,
            version: None,
            revision: None,
            error: None,
            raw_id: id,
        }
    }

    #[test]
    fn removing_a_stopped_member_of_three_keeps_quorum() {
        let members = [
            report(1, "a", true, false),
            report(2, "b", true, false),
            report(3, "c", false, false),
        ];
        assert_eq!(check_removal(&members, &members[2]), Ok(()));
    }

    #[test]
    fn removing_a_healthy_member_while_another_is_down_loses_quorum() {
        let members = [
            report(1, "a", true, false),
            report(2, "b", true, false),
            report(3, "c", false, false),
        ];
        assert_eq!(
            check_removal(&members, &members[0]),
            Err(RemovalRefused::Quorum {
                name: "a".to_owned(),
                voters_after: 2,
                healthy_after: 1,
                quorum: 2
            })
        );
    }

    #[test]
    fn learners_neither_vote_nor_block_and_the_last_voter_stays() {
        let members = [report(1, "a", true, false), report(2, "l", false, true)];
        assert_eq!(check_removal(&members, &members[1]), Ok(()));
        assert!(matches!(
            check_removal(&members, &members[0]),
            Err(RemovalRefused::LastMember { .. })
        ));
    }

    #[test]
    fn members_are_found_by_name_or_hex_id() {
        let members = [
            report(0x8e9e05c52164694d, "a", true, false),
            report(2, "b", true, false),
        ];
        assert_eq!(find(&members, "8e9e05c52164694d").expect("by id").name, "a");
        assert_eq!(find(&members, "b").expect("by name").raw_id, 2);
        assert!(find(&members, "zzz")
            .expect_err("none")
            .contains("a (8e9e05c52164694d)"));
    }

    #[test]
    fn join_instructions_name_every_member_and_the_new_one() {
        let added = Member {
            id: 9,
            name: String::new(),
            peer_urls: vec!["https://10.0.0.9:2380".to_owned()],
            client_urls: vec![],
            is_learner: false,
        };
        let existing = Member {
            id: 1,
            name: "a".to_owned(),
            peer_urls: vec!["https://10.0.0.1:2380".to_owned()],
            client_urls: vec![],
            is_learner: false,
        };
        let instructions = join_instructions(
            &added,
            &[existing, added.clone()],
            "d",
            "https://10.0.0.9:2380",
        );
        assert_eq!(
            instructions.initial_cluster,
            "a=https://10.0.0.1:2380,d=https://10.0.0.9:2380"
        );
        assert!(instructions
            .flags
            .contains(&"--initial-cluster-state=existing".to_owned()));
    }
}
