#![expect(
    clippy::disallowed_methods,
    reason = "src/host is where bosun touches the machine: it streams large files here"
)]
//! The etcd API through `etcd-client` (gRPC over TLS), and streamed files under the node root.
//!
//! [`LocalEtcd`] implements `bosun_phases::etcd::EtcdClient` with a single-threaded tokio runtime: every call blocks
//! on one request with a timeout, connecting to exactly the endpoint it names, so a member that restarts (as in a
//! restore) is reached again on the next call. [`RootStreams`] implements `StreamStore` for files too large to hold in
//! memory: temporary file in the target directory, `fsync`, rename, directory `fsync`.

use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bosun_phases::etcd::{
    Alarm, EndpointStatus, EtcdClient, EtcdError, Member, ReadFile, StagedFile, StreamStore,
};
use bosun_phases::host::HostError;
use bosun_phases::join::etcd::{EtcdConnector, EtcdMembership, EtcdTls};
use etcd_client::{
    AlarmAction, AlarmType, Certificate, Client, ConnectOptions, Identity, MemberAddOptions,
    SnapshotStreaming, TlsOptions,
};
use tokio::runtime::Runtime;

use super::local::LocalFiles;

/// Client certificate material, as PEM bytes.
#[derive(Clone)]
pub struct TlsMaterial {
    pub ca: Vec<u8>,
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
}

/// The etcd API of a cluster, reached through the given endpoints.
pub struct LocalEtcd {
    runtime: Runtime,
    endpoints: Vec<String>,
    tls: Option<TlsMaterial>,
    timeout: Duration,
}

fn etcd_error(endpoint: &str, error: impl std::fmt::Display) -> EtcdError {
    let mut message = error.to_string();
    // tonic's errors repeat themselves; keep the informative first part.
    if let Some(index) = message.find(", details: ") {
        message.truncate(index);
    }
    EtcdError {
        endpoint: endpoint.to_owned(),
        message,
    }
}

impl LocalEtcd {
    /// A client for `endpoints`; `tls` is required for `https://` endpoints.
    pub fn new(
        endpoints: Vec<String>,
        tls: Option<TlsMaterial>,
        timeout: Duration,
    ) -> Result<Self, EtcdError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| {
                etcd_error("local", format!("cannot start the I/O runtime: {error}"))
            })?;
        if endpoints.is_empty() {
            return Err(etcd_error("(none)", "no endpoint was given"));
        }
        Ok(LocalEtcd {
            runtime,
            endpoints,
            tls,
            timeout,
        })
    }

    fn options(&self, with_timeout: bool) -> ConnectOptions {
        let mut options = ConnectOptions::new().with_connect_timeout(Duration::from_secs(3));
        if with_timeout {
            options = options.with_timeout(self.timeout);
        }
        if let Some(tls) = &self.tls {
            options = options.with_tls(
                TlsOptions::new()
                    .ca_certificate(Certificate::from_pem(&tls.ca))
                    .identity(Identity::from_pem(&tls.cert, &tls.key)),
            );
        }
        options
    }

    fn connect(&self, endpoint: &str, with_timeout: bool) -> Result<Client, EtcdError> {
        let options = self.options(with_timeout);
        self.runtime
            .block_on(async {
                tokio::time::timeout(self.timeout, Client::connect([endpoint], Some(options))).await
            })
            .map_err(|_| etcd_error(endpoint, "timed out connecting"))?
            .map_err(|error| etcd_error(endpoint, error))
    }

    /// Runs one request against `endpoint` with the client timeout.
    fn call<T, F, Fut>(&self, endpoint: &str, request: F) -> Result<T, EtcdError>
    where
        F: FnOnce(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        let client = self.connect(endpoint, true)?;
        self.runtime
            .block_on(async { tokio::time::timeout(self.timeout, request(client)).await })
            .map_err(|_| {
                etcd_error(
                    endpoint,
                    format!("no answer within {}s", self.timeout.as_secs()),
                )
            })?
            .map_err(|error| etcd_error(endpoint, error))
    }

    fn first(&self) -> &str {
        self.endpoints
            .first()
            .map(String::as_str)
            .unwrap_or_default()
    }

    /// Runs a cluster-wide request on the first endpoint that answers.
    fn any<T, F, Fut>(&self, request: F) -> Result<T, EtcdError>
    where
        F: Fn(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        let mut last = None;
        for endpoint in &self.endpoints {
            match self.call(endpoint, &request) {
                Ok(value) => return Ok(value),
                Err(error) => last = Some(error),
            }
        }
        Err(last.unwrap_or_else(|| etcd_error("(none)", "no endpoint was given")))
    }

    /// Writes key-value pairs in transactions of up to 100 puts over one connection; returns the last revision. For
    /// tests and benchmarks that need data in etcd (bosun's commands never write keys).
    pub fn put_many(&self, pairs: &[(String, Vec<u8>)]) -> Result<i64, EtcdError> {
        use etcd_client::{Txn, TxnOp};
        let endpoint = self.first().to_owned();
        let mut client = self.connect(&endpoint, false)?;
        self.runtime.block_on(async {
            let mut revision = 0;
            for batch in pairs.chunks(100) {
                let operations: Vec<TxnOp> = batch
                    .iter()
                    .map(|(key, value)| TxnOp::put(key.as_str(), value.clone(), None))
                    .collect();
                let response = client
                    .txn(Txn::new().and_then(operations))
                    .await
                    .map_err(|error| etcd_error(&endpoint, error))?;
                revision = response
                    .header()
                    .map(|header| header.revision())
                    .unwrap_or(0);
            }
            Ok(revision)
        })
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

/// `bosun join --control-plane`'s member operations (`bosun_phases::join::etcd`) on the same client: a learner is
/// added and promoted through whichever endpoint answers first.
impl EtcdMembership for LocalEtcd {
    fn members(&self) -> Result<Vec<Member>, EtcdError> {
        EtcdClient::members(self)
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

/// Connects `bosun join`'s etcd phase through [`LocalEtcd`].
#[derive(Debug, Default, Clone, Copy)]
pub struct JoinEtcdConnector;

impl EtcdConnector for JoinEtcdConnector {
    fn connect(
        &self,
        endpoints: &[String],
        tls: &EtcdTls,
        timeout: Duration,
    ) -> Result<Box<dyn EtcdMembership>, EtcdError> {
        let material = TlsMaterial {
            ca: tls.ca.clone(),
            cert: tls.cert.clone(),
            key: tls.key.clone(),
        };
        Ok(Box::new(LocalEtcd::new(
            endpoints.to_vec(),
            Some(material),
            timeout,
        )?))
    }
}

struct SnapshotReader<'runtime> {
    runtime: &'runtime Runtime,
    stream: SnapshotStreaming,
    buffer: Vec<u8>,
    position: usize,
    endpoint: String,
    idle_timeout: Duration,
}

impl Read for SnapshotReader<'_> {
    fn read(&mut self, output: &mut [u8]) -> io::Result<usize> {
        while self.position == self.buffer.len() {
            let next = self
                .runtime
                .block_on(async {
                    tokio::time::timeout(self.idle_timeout, self.stream.message()).await
                })
                .map_err(|_| {
                    io::Error::other(format!(
                        "{} sent nothing for {}s",
                        self.endpoint,
                        self.idle_timeout.as_secs()
                    ))
                })?
                .map_err(|error| io::Error::other(etcd_error(&self.endpoint, error).to_string()))?;
            match next {
                Some(message) => {
                    self.buffer.clear();
                    self.buffer.extend_from_slice(message.blob());
                    self.position = 0;
                }
                None => return Ok(0),
            }
        }
        let count = output.len().min(self.buffer.len() - self.position);
        output[..count].copy_from_slice(&self.buffer[self.position..self.position + count]);
        self.position += count;
        Ok(count)
    }
}

impl EtcdClient for LocalEtcd {
    fn endpoints(&self) -> Vec<String> {
        self.endpoints.clone()
    }

    fn snapshot(&self) -> Result<Box<dyn Read + Send + '_>, EtcdError> {
        let endpoint = self.first().to_owned();
        // No overall deadline: a large snapshot takes as long as it takes; a stalled one fails on the idle timeout.
        let mut client = self.connect(&endpoint, false)?;
        let stream = self
            .runtime
            .block_on(async { tokio::time::timeout(self.timeout, client.snapshot()).await })
            .map_err(|_| etcd_error(&endpoint, "the snapshot did not start"))?
            .map_err(|error| etcd_error(&endpoint, error))?;
        Ok(Box::new(SnapshotReader {
            runtime: &self.runtime,
            stream,
            buffer: Vec::new(),
            position: 0,
            endpoint,
            idle_timeout: self.timeout.max(Duration::from_secs(30)),
        }))
    }

    fn status(&self, endpoint: &str) -> Result<EndpointStatus, EtcdError> {
        let response = self.call(endpoint, |mut client| async move { client.status().await })?;
        let header = response.header();
        Ok(EndpointStatus {
            endpoint: endpoint.to_owned(),
            member_id: header.map(|header| header.member_id()).unwrap_or(0),
            leader: response.leader(),
            version: response.version().to_owned(),
            db_size: response.db_size(),
            db_size_in_use: response.raft_used_db_size(),
            raft_term: response.raft_term(),
            raft_index: response.raft_index(),
            revision: header.map(|header| header.revision()).unwrap_or(0),
            is_learner: response.is_learner(),
            errors: response.errors().to_vec(),
        })
    }

    fn health(&self, endpoint: &str) -> Result<(), EtcdError> {
        match self.call(endpoint, |mut client| async move {
            client.get("health", None).await
        }) {
            Ok(_) => Ok(()),
            // etcdctl counts "permission denied" as healthy: the member answered a linearizable request.
            Err(error) if error.message.contains("permission denied") => Ok(()),
            Err(error) => Err(error),
        }
    }

    fn members(&self) -> Result<Vec<Member>, EtcdError> {
        let response = self.any(|mut client| async move { client.member_list().await })?;
        Ok(response.members().iter().map(member).collect())
    }

    fn remove_member(&self, id: u64) -> Result<(), EtcdError> {
        self.any(|mut client| async move { client.member_remove(id).await })
            .map(|_| ())
    }

    fn add_member(&self, peer_urls: &[String]) -> Result<(Member, Vec<Member>), EtcdError> {
        let urls = peer_urls.to_vec();
        let response = self.any(|mut client| {
            let urls = urls.clone();
            async move { client.member_add(urls, None).await }
        })?;
        let added = response
            .member()
            .map(member)
            .ok_or_else(|| etcd_error(self.first(), "the member add answer names no member"))?;
        Ok((added, response.member_list().iter().map(member).collect()))
    }

    fn alarms(&self) -> Result<Vec<Alarm>, EtcdError> {
        let response = self.any(|mut client| async move {
            client.alarm(AlarmAction::Get, AlarmType::None, None).await
        })?;
        Ok(response
            .alarms()
            .iter()
            .map(|alarm| Alarm {
                member_id: alarm.member_id(),
                alarm: format!("{:?}", alarm.alarm()).to_uppercase(),
            })
            .collect())
    }

    fn defragment(&self, endpoint: &str) -> Result<(), EtcdError> {
        // Defragmenting a large database takes longer than an ordinary request.
        let client = self.connect(endpoint, false)?;
        self.runtime
            .block_on(async {
                tokio::time::timeout(Duration::from_secs(600), async move {
                    let mut client = client;
                    client.defragment().await
                })
                .await
            })
            .map_err(|_| etcd_error(endpoint, "defragmentation took more than 600s"))?
            .map(|_| ())
            .map_err(|error| etcd_error(endpoint, error))
    }
}

/// Streamed files under a node root.
#[derive(Debug, Clone)]
pub struct RootStreams {
    files: LocalFiles,
}

impl RootStreams {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        RootStreams {
            files: LocalFiles::new(root),
        }
    }
}

struct LocalStaged {
    file: fs::File,
    temporary: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl Read for LocalStaged {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        self.file.read(buffer)
    }
}

impl Write for LocalStaged {
    fn write(&mut self, buffer: &[u8]) -> io::Result<usize> {
        self.file.write(buffer)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Seek for LocalStaged {
    fn seek(&mut self, position: SeekFrom) -> io::Result<u64> {
        self.file.seek(position)
    }
}

impl StagedFile for LocalStaged {
    fn commit(mut self: Box<Self>) -> Result<(), HostError> {
        self.file
            .sync_all()
            .map_err(|error| HostError::file("sync", &self.target, &error))?;
        fs::rename(&self.temporary, &self.target)
            .map_err(|error| HostError::file("replace", &self.target, &error))?;
        self.committed = true;
        if let Some(directory) = self.target.parent() {
            if let Ok(handle) = fs::File::open(directory) {
                let _ = handle.sync_all();
            }
        }
        Ok(())
    }
}

impl Drop for LocalStaged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.temporary);
        }
    }
}

impl StreamStore for RootStreams {
    fn create(&self, path: &Path, mode: u32) -> Result<Box<dyn StagedFile>, HostError> {
        let target = self.files.real_path(path);
        let directory = target.parent().ok_or_else(|| HostError::File {
            action: "write",
            path: target.clone(),
            reason: "it has no parent directory".to_owned(),
        })?;
        if !directory.is_dir() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(directory)
                .map_err(|error| HostError::file("create the directory", directory, &error))?;
        }
        let name = target
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temporary = directory.join(format!(".{name}.bosun-{}.tmp", std::process::id()));
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&temporary)
            .map_err(|error| HostError::file("create", &temporary, &error))?;
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|error| HostError::file("change the mode of", &temporary, &error))?;
        Ok(Box::new(LocalStaged {
            file,
            temporary,
            target,
            committed: false,
        }))
    }

    fn open(&self, path: &Path) -> Result<Box<dyn ReadFile>, HostError> {
        let real = self.files.real_path(path);
        let file = fs::File::open(&real).map_err(|error| HostError::file("open", &real, &error))?;
        Ok(Box::new(io::BufReader::with_capacity(1 << 20, file)))
    }

    fn remove_dir_all(&self, path: &Path) -> Result<bool, HostError> {
        let real = self.files.real_path(path);
        match fs::remove_dir_all(&real) {
            Ok(()) => Ok(true),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(error) => Err(HostError::file("remove", &real, &error)),
        }
    }

    fn host_path(&self, path: &Path) -> PathBuf {
        self.files.real_path(path)
    }
}

/// The path of the running bosun program, for schedules that run it again.
pub fn current_program() -> PathBuf {
    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/usr/local/bin/bosun"))
}
