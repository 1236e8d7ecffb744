//! The etcd member operations of `bosun join --control-plane` (`bosun_phases::join::etcd`): list, add as learner,
//! promote, through `etcd-client` over mutual TLS. Each call tries the endpoints in turn on a single-threaded tokio
//! runtime and carries the client timeout, so a dead member is reported rather than waited for.

use std::time::Duration;

use bosun_phases::etcd::{EtcdError, Member};
use bosun_phases::join::etcd::{EtcdConnector, EtcdMembership, EtcdTls};
use etcd_client::{Certificate, Client, ConnectOptions, Identity, MemberAddOptions, TlsOptions};
use tokio::runtime::Runtime;

fn etcd_error(endpoint: &str, error: impl std::fmt::Display) -> EtcdError {
    let mut message = error.to_string();
    if let Some(index) = message.find(", details: ") {
        message.truncate(index);
    }
    EtcdError {
        endpoint: endpoint.to_owned(),
        message,
    }
}

fn member(from: &etcd_client::Member) -> Member {
    Member {
        id: from.id(),
        name: from.name().to_owned(),
        peer_urls: from.peer_urls().to_vec(),
        client_urls: from.client_urls().to_vec(),
        is_learner: from.is_learner(),
    }
}

/// The real connector.
#[derive(Debug, Default, Clone, Copy)]
pub struct JoinEtcdConnector;

impl EtcdConnector for JoinEtcdConnector {
    fn connect(
        &self,
        endpoints: &[String],
        tls: &EtcdTls,
        timeout: Duration,
    ) -> Result<Box<dyn EtcdMembership>, EtcdError> {
        if endpoints.is_empty() {
            return Err(etcd_error("(none)", "no etcd endpoint is known"));
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| {
                etcd_error("local", format!("cannot start the I/O runtime: {error}"))
            })?;
        Ok(Box::new(JoinEtcd {
            runtime,
            endpoints: endpoints.to_vec(),
            options: ConnectOptions::new()
                .with_connect_timeout(Duration::from_secs(5))
                .with_timeout(timeout)
                .with_tls(
                    TlsOptions::new()
                        .ca_certificate(Certificate::from_pem(&tls.ca))
                        .identity(Identity::from_pem(&tls.cert, &tls.key)),
                ),
            timeout,
        }))
    }
}

struct JoinEtcd {
    runtime: Runtime,
    endpoints: Vec<String>,
    options: ConnectOptions,
    timeout: Duration,
}

impl JoinEtcd {
    /// Runs one request on the first endpoint that answers.
    fn any<T, F, Fut>(&self, request: F) -> Result<T, EtcdError>
    where
        F: Fn(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        let mut last = None;
        for endpoint in &self.endpoints {
            let attempt = self.runtime.block_on(async {
                let client = tokio::time::timeout(
                    self.timeout,
                    Client::connect([endpoint.as_str()], Some(self.options.clone())),
                )
                .await
                .map_err(|_| etcd_error(endpoint, "timed out connecting"))?
                .map_err(|error| etcd_error(endpoint, error))?;
                tokio::time::timeout(self.timeout, request(client))
                    .await
                    .map_err(|_| {
                        etcd_error(
                            endpoint,
                            format!("no answer within {}s", self.timeout.as_secs()),
                        )
                    })?
                    .map_err(|error| etcd_error(endpoint, error))
            });
            match attempt {
                Ok(value) => return Ok(value),
                Err(error) => last = Some(error),
            }
        }
        Err(last.unwrap_or_else(|| etcd_error("(none)", "no etcd endpoint is known")))
    }
}

impl EtcdMembership for JoinEtcd {
    fn members(&self) -> Result<Vec<Member>, EtcdError> {
        let response = self.any(|mut client| async move { client.member_list().await })?;
        Ok(response.members().iter().map(member).collect())
    }

    fn add_learner(&self, peer_urls: &[String]) -> Result<Vec<Member>, EtcdError> {
        let urls = peer_urls.to_vec();
        let response = self.any(|mut client| {
            let urls = urls.clone();
            async move {
                client
                    .member_add(urls, Some(MemberAddOptions::new().with_is_learner()))
                    .await
            }
        })?;
        Ok(response.member_list().iter().map(member).collect())
    }

    fn promote(&self, id: u64) -> Result<(), EtcdError> {
        self.any(|mut client| async move { client.member_promote(id).await })
            .map(|_| ())
    }
}
