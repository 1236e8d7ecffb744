//! The little DER needed to move keys between PKCS#8 (what the crypto backend produces) and the traditional forms
//! kubeadm writes (PKCS#1 `RSA PRIVATE KEY`, SEC1 `EC PRIVATE KEY`), plus PEM armour.

use base64::Engine as _;

pub(crate) const TAG_INTEGER: u8 = 0x02;
pub(crate) const TAG_BIT_STRING: u8 = 0x03;
pub(crate) const TAG_OCTET_STRING: u8 = 0x04;
pub(crate) const TAG_OID: u8 = 0x06;
pub(crate) const TAG_UTF8_STRING: u8 = 0x0c;
pub(crate) const TAG_PRINTABLE_STRING: u8 = 0x13;
pub(crate) const TAG_SEQUENCE: u8 = 0x30;
pub(crate) const TAG_SET: u8 = 0x31;
pub(crate) const TAG_CONTEXT_0: u8 = 0xa0;
pub(crate) const TAG_CONTEXT_1: u8 = 0xa1;

/// rsaEncryption, 1.2.840.113549.1.1.1 (content bytes of the OID).
pub(crate) const OID_RSA_ENCRYPTION: &[u8] =
    &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// id-ecPublicKey, 1.2.840.10045.2.1.
pub(crate) const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// id-at-commonName, 2.5.4.3.
pub(crate) const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
/// id-at-organizationName, 2.5.4.10.
pub(crate) const OID_ORGANIZATION: &[u8] = &[0x55, 0x04, 0x0a];

/// One tag-length-value element.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Element<'a> {
    pub tag: u8,
    pub value: &'a [u8],
    /// The whole encoding, tag and length included.
    pub raw: &'a [u8],
}

/// Reads one element from the front of `input`; returns it and the rest.
pub(crate) fn read(input: &[u8]) -> Option<(Element<'_>, &[u8])> {
    let (&tag, after_tag) = input.split_first()?;
    let (&first, after_first) = after_tag.split_first()?;
    let (length, after_length) = if first < 0x80 {
        (usize::from(first), after_first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || after_first.len() < count {
            return None;
        }
        let length = after_first[..count]
            .iter()
            .fold(0usize, |total, byte| (total << 8) | usize::from(*byte));
        (length, &after_first[count..])
    };
    if after_length.len() < length {
        return None;
    }
    let header = input.len() - after_length.len();
    let (value, rest) = after_length.split_at(length);
    Some((
        Element {
            tag,
            value,
            raw: &input[..header + length],
        },
        rest,
    ))
}

/// Reads every element inside a constructed value.
pub(crate) fn children(mut value: &[u8]) -> Option<Vec<Element<'_>>> {
    let mut elements = Vec::new();
    while !value.is_empty() {
        let (element, rest) = read(value)?;
        elements.push(element);
        value = rest;
    }
    Some(elements)
}

/// Encodes one element.
pub(crate) fn write(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let length = value.len();
    if length < 0x80 {
        out.push(length as u8);
    } else {
        let bytes = length.to_be_bytes();
        let skip = bytes.iter().take_while(|byte| **byte == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(value);
    out
}

/// PEM armour with 64-character lines, as Go's encoding/pem writes it.
pub(crate) fn pem_encode(label: &str, der: &[u8]) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in encoded.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// One PEM block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PemBlock {
    pub label: String,
    pub der: Vec<u8>,
}

/// Every PEM block in `text`, in order. Text outside blocks is ignored, as Go's pem.Decode does.
pub(crate) fn pem_decode_all(text: &[u8]) -> Result<Vec<PemBlock>, String> {
    let text = std::str::from_utf8(text).map_err(|_| "the file is not text".to_owned())?;
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after_begin = &rest[start + "-----BEGIN ".len()..];
        let label_end = after_begin
            .find("-----")
            .ok_or_else(|| "a BEGIN line is not terminated".to_owned())?;
        let label = &after_begin[..label_end];
        let body_start = &after_begin[label_end + 5..];
        let end_marker = format!("-----END {label}-----");
        let body_end = body_start
            .find(&end_marker)
            .ok_or_else(|| format!("the {label} block has no END line"))?;
        let body: String = body_start[..body_end]
            .chars()
            .filter(|character| !character.is_whitespace())
            .collect();
        if body.contains(':') {
            return Err(format!("the {label} block is encrypted or has headers"));
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .map_err(|error| format!("the {label} block is not valid base64 ({error})"))?;
        blocks.push(PemBlock {
            label: label.to_owned(),
            der,
        });
        rest = &body_start[body_end + end_marker.len()..];
    }
    Ok(blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lengths_round_trip() {
        let value = vec![7u8; 300];
        let encoded = write(TAG_OCTET_STRING, &value);
        assert_eq!(&encoded[..4], &[0x04, 0x82, 0x01, 0x2c]);
        let (element, rest) = read(&encoded).expect("parse");
        assert!(rest.is_empty());
        assert_eq!(element.value, &value[..]);
        assert_eq!(element.raw, &encoded[..]);
    }

    #[test]
    fn truncated_input_is_refused() {
        assert!(read(&[0x30, 0x05, 0x01]).is_none());
        assert!(read(&[0x30]).is_none());
    }

    #[test]
    fn pem_round_trips_and_skips_text() {
        let pem = pem_encode("CERTIFICATE", &[1, 2, 3, 4, 5]);
        let text = format!("subject=foo\n{pem}trailing\n{pem}");
        let blocks = pem_decode_all(text.as_bytes()).expect("decode");
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].label, "CERTIFICATE");
        assert_eq!(blocks[1].der, vec![1, 2, 3, 4, 5]);
    }

    #[test]
    fn corrupt_base64_is_an_error() {
        let text = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        let error = pem_decode_all(text.as_bytes()).expect_err("corrupt");
        assert!(error.contains("base64"), "{error}");
    }
}
