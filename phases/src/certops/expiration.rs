//! `certs check-expiration`: kubeadm's two tables and its `CertificateExpirationInfo` document (output API
//! `output.kubeadm.k8s.io/v1alpha3`).
//!
//! Rows, as kubeadm lists them: every leaf certificate of the table and the client certificates embedded in
//! admin.conf, super-admin.conf, controller-manager.conf and scheduler.conf (the renewable set; kubelet.conf is rotated
//! by the kubelet), sorted by name; then the CAs, sorted by name. A missing file is a `!MISSING!` row. A certificate
//! whose CA has `ca.crt` without `ca.key` is externally managed. With external etcd the etcd rows are left out.
//!
//! Read-only: this takes no lock and writes nothing.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use bosun_pki::expiry::{format_expiry, residual_seconds, short_human_duration};
use bosun_pki::table::{certificate_authorities, CERTIFICATES, KUBECONFIGS};
use serde::Serialize;
use time::OffsetDateTime;

use super::{
    kubeconfig_ca, kubeconfig_client_certificate, read_certificate, read_kubeconfig, CaOnNode,
    CertopsError, Locations,
};
use crate::host::Files;

/// One row of either table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// `apiserver`, `admin.conf`, `etcd-ca`.
    pub name: String,
    /// The node path the row was read from.
    pub path: PathBuf,
    /// `None` when the file is missing.
    pub not_after: Option<OffsetDateTime>,
    /// Whole seconds left (negative once expired); 0 when missing.
    pub residual_seconds: i64,
    /// The signing CA's table name; empty for CAs.
    pub ca_name: String,
    pub externally_managed: bool,
    pub missing: bool,
}

impl Row {
    /// Whether the certificate expires within `window` (an expired one does; a missing one does not).
    pub fn expires_within(&self, window: Duration) -> bool {
        !self.missing && i128::from(self.residual_seconds) <= i128::from(window.as_secs())
    }
}

/// Both tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiration {
    pub certificates: Vec<Row>,
    pub authorities: Vec<Row>,
}

impl Expiration {
    /// Every present certificate and CA that expires within `window`, by name.
    pub fn expiring_within(&self, window: Duration) -> Vec<&Row> {
        self.certificates
            .iter()
            .chain(&self.authorities)
            .filter(|row| row.expires_within(window))
            .collect()
    }
}

/// Reads every row from the node.
///
/// Errors: a certificate or kubeconfig that exists but cannot be parsed stops the check with its path (kubeadm does
/// the same); missing files are rows, not errors.
pub fn check(
    files: &dyn Files,
    locations: &Locations,
    external_etcd: bool,
    now: SystemTime,
) -> Result<Expiration, CertopsError> {
    let now = OffsetDateTime::from(now);
    let mut authorities = Vec::new();
    let mut external = std::collections::BTreeMap::new();
    for spec in certificate_authorities().filter(|spec| !(spec.etcd && external_etcd)) {
        let ca = CaOnNode::load(files, locations, spec)?;
        external.insert(spec.name, ca.is_external());
        authorities.push(row(
            spec.name,
            ca.cert_path.clone(),
            ca.certificate.as_ref(),
            String::new(),
            ca.is_external(),
            now,
        ));
    }
    let mut certificates = Vec::new();
    for spec in CERTIFICATES
        .iter()
        .filter(|spec| !(spec.is_ca() || (spec.etcd && external_etcd)))
    {
        let ca_name = spec.ca().map(|ca| ca.name).unwrap_or_default();
        let path = locations.cert(spec);
        let certificate = read_certificate(files, &path)?;
        let externally_managed = external.get(ca_name).copied().unwrap_or(false);
        certificates.push(row(
            spec.name,
            path,
            certificate.as_ref(),
            ca_name.to_owned(),
            externally_managed,
            now,
        ));
    }
    let kubeconfig_ca = kubeconfig_ca()?;
    for spec in KUBECONFIGS.iter().filter(|spec| spec.renewable) {
        let path = locations.kubeconfig(spec);
        let certificate = match read_kubeconfig(files, &path)? {
            None => None,
            Some(kubeconfig) => Some(kubeconfig_client_certificate(files, &path, &kubeconfig)?),
        };
        let externally_managed = external.get(kubeconfig_ca.name).copied().unwrap_or(false);
        certificates.push(row(
            spec.file,
            path,
            certificate.as_ref(),
            kubeconfig_ca.name.to_owned(),
            externally_managed,
            now,
        ));
    }
    certificates.sort_by(|left, right| left.name.cmp(&right.name));
    authorities.sort_by(|left, right| left.name.cmp(&right.name));
    Ok(Expiration {
        certificates,
        authorities,
    })
}

fn row(
    name: &str,
    path: PathBuf,
    certificate: Option<&bosun_pki::Certificate>,
    ca_name: String,
    externally_managed: bool,
    now: OffsetDateTime,
) -> Row {
    Row {
        name: name.to_owned(),
        path,
        not_after: certificate.map(|certificate| certificate.not_after),
        residual_seconds: certificate.map_or(0, |certificate| {
            residual_seconds(certificate.not_after, now)
        }),
        // kubeadm leaves the CA and the external flag out of a missing row.
        ca_name: if certificate.is_some() {
            ca_name
        } else {
            String::new()
        },
        externally_managed: certificate.is_some() && externally_managed,
        missing: certificate.is_none(),
    }
}

fn yes_no(value: bool) -> &'static str {
    if value {
        "yes"
    } else {
        "no"
    }
}

/// The text kubeadm prints: the certificate table, a blank line, the CA table, aligned as Go's tabwriter with
/// minwidth 10, tab width 4, padding 3 aligns them (including its trailing spaces).
pub fn render_table(expiration: &Expiration) -> String {
    let mut lines: Vec<String> = vec![
        "CERTIFICATE\tEXPIRES\tRESIDUAL TIME\tCERTIFICATE AUTHORITY\tEXTERNALLY MANAGED".to_owned(),
    ];
    for row in &expiration.certificates {
        lines.push(match row.not_after {
            None => format!("!MISSING! {}\t\t\t\t", row.name),
            Some(not_after) => format!(
                "{}\t{}\t{}\t{}\t{:<8}",
                row.name,
                format_expiry(not_after),
                short_human_duration(row.residual_seconds),
                row.ca_name,
                yes_no(row.externally_managed)
            ),
        });
    }
    lines.push(String::new());
    lines.push("CERTIFICATE AUTHORITY\tEXPIRES\tRESIDUAL TIME\tEXTERNALLY MANAGED".to_owned());
    for row in &expiration.authorities {
        lines.push(match row.not_after {
            None => format!("!MISSING! {}\t\t\t", row.name),
            Some(not_after) => format!(
                "{}\t{}\t{}\t{:<8}",
                row.name,
                format_expiry(not_after),
                short_human_duration(row.residual_seconds),
                yes_no(row.externally_managed)
            ),
        });
    }
    tabwriter(&lines, 10, 3)
}

/// Go's text/tabwriter for tab-terminated cells with a space pad character and no flags: a column block is a run of
/// adjacent lines that have a cell in that column; each cell is padded to the widest cell of its block plus
/// `padding`, and to at least `min_width`. The text after a line's last tab is not aligned.
pub fn tabwriter(lines: &[String], min_width: usize, padding: usize) -> String {
    let cells: Vec<Vec<&str>> = lines
        .iter()
        .map(|line| line.split('\t').collect())
        .collect();
    let mut widths: Vec<Vec<usize>> = cells.iter().map(|line| vec![0; line.len()]).collect();
    fn format_block(
        cells: &[Vec<&str>],
        widths: &mut [Vec<usize>],
        start: usize,
        end: usize,
        column: usize,
        min_width: usize,
        padding: usize,
    ) {
        let mut line = start;
        while line < end {
            // Only tab-terminated cells (all but the last of a line) are aligned.
            if column + 1 >= cells[line].len() {
                line += 1;
                continue;
            }
            let block_start = line;
            let mut width = min_width;
            while line < end && column + 1 < cells[line].len() {
                width = width.max(cells[line][column].chars().count() + padding);
                line += 1;
            }
            for row in widths.iter_mut().take(line).skip(block_start) {
                row[column] = width;
            }
            format_block(
                cells,
                widths,
                block_start,
                line,
                column + 1,
                min_width,
                padding,
            );
        }
    }
    format_block(&cells, &mut widths, 0, cells.len(), 0, min_width, padding);
    let mut text = String::new();
    for (line, line_widths) in cells.iter().zip(&widths) {
        for (index, cell) in line.iter().enumerate() {
            if index + 1 < line.len() {
                text.push_str(cell);
                let pad = line_widths[index].saturating_sub(cell.chars().count());
                text.extend(std::iter::repeat_n(' ', pad));
            } else {
                text.push_str(cell);
            }
        }
        text.push('\n');
    }
    text
}

/// kubeadm's `Certificate` of the output API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputCertificate {
    pub name: String,
    /// RFC 3339 in UTC; `null` when the file is missing (a zero `metav1.Time`).
    pub expiration_date: Option<String>,
    /// Seconds left.
    pub residual_time: i64,
    pub externally_managed: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ca_name: String,
    pub missing: bool,
}

/// kubeadm's `CertificateExpirationInfo` (`output.kubeadm.k8s.io/v1alpha3`), for `-o json|yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateExpirationInfo {
    pub kind: String,
    pub api_version: String,
    pub certificates: Vec<OutputCertificate>,
    pub certificate_authorities: Vec<OutputCertificate>,
}

fn output_row(row: &Row) -> OutputCertificate {
    OutputCertificate {
        name: row.name.clone(),
        expiration_date: row.not_after.map(|not_after| {
            let utc = not_after.to_offset(time::UtcOffset::UTC);
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                utc.year(),
                u8::from(utc.month()),
                utc.day(),
                utc.hour(),
                utc.minute(),
                utc.second()
            )
        }),
        residual_time: row.residual_seconds,
        externally_managed: row.externally_managed,
        ca_name: row.ca_name.clone(),
        missing: row.missing,
    }
}

/// The output document.
pub fn output_document(expiration: &Expiration) -> CertificateExpirationInfo {
    CertificateExpirationInfo {
        kind: "CertificateExpirationInfo".to_owned(),
        api_version: "output.kubeadm.k8s.io/v1alpha3".to_owned(),
        certificates: expiration.certificates.iter().map(output_row).collect(),
        certificate_authorities: expiration.authorities.iter().map(output_row).collect(),
    }
}
