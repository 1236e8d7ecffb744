//! A read-only reader of etcd's bolt database, enough for `snapshot status`: hash, revision, total keys, size.
//!
//! The numbers are computed exactly as `etcdctl snapshot status` computes them, so the two can be compared: the hash
//! is CRC-32C over every top-level bucket name followed by each of its keys and values in key order, the revision is
//! the main revision of the last key in the `key` bucket, the key count counts the entries of the `key` bucket (every
//! revision of every key, as etcd 3.5 and later count it; etcd 3.4's etcdctl counted the entries of all buckets, which
//! [`DatabaseStats::total_entries`] gives), and the size is the database's page high-water mark.
//!
//! The reader asks its [`ReadAt`] source for one page at a time and holds only the pages on the path from the root
//! to the current leaf, so memory stays flat however large the database is.

use std::io;

/// Random access to the bytes of a database.
pub trait ReadAt {
    fn read_exact_at(&mut self, offset: u64, buffer: &mut [u8]) -> io::Result<()>;
    /// Reads the bytes that follow the previous read, if the source can do that more cheaply than a positioned read
    /// (a buffered stream can); `Ok(false)` when it cannot, and the caller reads by position instead.
    fn read_on(&mut self, _buffer: &mut [u8]) -> io::Result<bool> {
        Ok(false)
    }
}

impl<T: io::Read + io::Seek> ReadAt for T {
    fn read_exact_at(&mut self, offset: u64, buffer: &mut [u8]) -> io::Result<()> {
        self.seek(io::SeekFrom::Start(offset))?;
        self.read_exact(buffer)
    }
    fn read_on(&mut self, buffer: &mut [u8]) -> io::Result<bool> {
        self.read_exact(buffer).map(|()| true)
    }
}

/// What `etcdctl snapshot status` reports about a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DatabaseStats {
    /// CRC-32C (Castagnoli) of bucket names, keys and values.
    pub hash: u32,
    /// The newest revision in the database.
    pub revision: i64,
    /// Entries of the `key` bucket: every stored revision of every key (`etcdutl snapshot status`'s `totalKey`).
    pub total_keys: u64,
    /// Entries of every bucket (etcd 3.4 `etcdctl snapshot status`'s `totalKey`).
    pub total_entries: u64,
    /// Size of the database in bytes.
    pub total_size: u64,
}

/// A database that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum BoltError {
    #[error("cannot read the database: {0}")]
    Io(String),
    #[error("the data is not an etcd bolt database: {0}")]
    Corrupt(String),
}

const MAGIC: u32 = 0xED0C_DAED;
const PAGE_HEADER: usize = 16;
const ELEMENT: usize = 16;
const BRANCH_PAGE: u16 = 0x01;
const LEAF_PAGE: u16 = 0x02;
const BUCKET_LEAF: u32 = 0x01;
const BUCKET_HEADER: usize = 16;
/// Deep trees mean a damaged file; real databases are a handful of levels deep.
const MAX_DEPTH: usize = 64;

fn u16_at(bytes: &[u8], offset: usize) -> Result<u16, BoltError> {
    bytes
        .get(offset..offset + 2)
        .map(|slice| u16::from_le_bytes([slice[0], slice[1]]))
        .ok_or_else(|| corrupt("a page ends early"))
}

fn u32_at(bytes: &[u8], offset: usize) -> Result<u32, BoltError> {
    let slice = bytes
        .get(offset..offset + 4)
        .ok_or_else(|| corrupt("a page ends early"))?;
    Ok(u32::from_le_bytes([slice[0], slice[1], slice[2], slice[3]]))
}

fn u64_at(bytes: &[u8], offset: usize) -> Result<u64, BoltError> {
    let slice = bytes
        .get(offset..offset + 8)
        .ok_or_else(|| corrupt("a page ends early"))?;
    let mut array = [0u8; 8];
    array.copy_from_slice(slice);
    Ok(u64::from_le_bytes(array))
}

fn corrupt(reason: impl Into<String>) -> BoltError {
    BoltError::Corrupt(reason.into())
}

/// FNV-1a (64-bit), bolt's checksum of a meta page.
pub(super) fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

struct Meta {
    page_size: u32,
    root: u64,
    high_water: u64,
    txid: u64,
}

fn parse_meta(page: &[u8]) -> Option<Meta> {
    let meta = page.get(PAGE_HEADER..PAGE_HEADER + 64)?;
    let magic = u32_at(meta, 0).ok()?;
    let version = u32_at(meta, 4).ok()?;
    let checksum = u64_at(meta, 56).ok()?;
    if magic != MAGIC || version != 2 || fnv1a64(&meta[..56]) != checksum {
        return None;
    }
    Some(Meta {
        page_size: u32_at(meta, 8).ok()?,
        root: u64_at(meta, 16).ok()?,
        high_water: u64_at(meta, 40).ok()?,
        txid: u64_at(meta, 48).ok()?,
    })
}

/// Called with (key, value, element flags) for every leaf element.
type Visitor<'visit> = dyn FnMut(&[u8], &[u8], u32) -> Result<(), BoltError> + 'visit;

struct Reader<'source> {
    source: &'source mut dyn ReadAt,
    page_size: u64,
    length: u64,
}

impl Reader<'_> {
    fn read(&mut self, offset: u64, length: usize) -> Result<Vec<u8>, BoltError> {
        if offset.saturating_add(length as u64) > self.length {
            return Err(corrupt(format!(
                "a page at byte {offset} lies beyond the end of the database ({} bytes)",
                self.length
            )));
        }
        let mut buffer = vec![0u8; length];
        self.source
            .read_exact_at(offset, &mut buffer)
            .map_err(|error| BoltError::Io(error.to_string()))?;
        Ok(buffer)
    }

    fn page(&mut self, id: u64) -> Result<Vec<u8>, BoltError> {
        let offset = id
            .checked_mul(self.page_size)
            .ok_or_else(|| corrupt("a page number is out of range"))?;
        let mut page = self.read(offset, PAGE_HEADER)?;
        let overflow = u64::from(u32_at(&page, 12)?);
        let length = (overflow + 1)
            .checked_mul(self.page_size)
            .and_then(|length| usize::try_from(length).ok())
            .ok_or_else(|| corrupt("a page's overflow count is out of range"))?;
        // The rest of the page continues the header's read, so a buffered source does not seek back.
        let rest = self.read(offset + PAGE_HEADER as u64, length - PAGE_HEADER)?;
        page.extend_from_slice(&rest);
        Ok(page)
    }

    /// Calls `visit(key, value, flags)` for every leaf element under `page`, in key order.
    fn walk(
        &mut self,
        page: &[u8],
        depth: usize,
        visit: &mut Visitor<'_>,
    ) -> Result<(), BoltError> {
        if depth > MAX_DEPTH {
            return Err(corrupt("the tree is deeper than any real database"));
        }
        let flags = u16_at(page, 8)?;
        let count = usize::from(u16_at(page, 10)?);
        for index in 0..count {
            let element = PAGE_HEADER + index * ELEMENT;
            if flags & BRANCH_PAGE != 0 {
                let child = u64_at(page, element + 8)?;
                let child_page = self.page(child)?;
                self.walk(&child_page, depth + 1, visit)?;
            } else if flags & LEAF_PAGE != 0 {
                let element_flags = u32_at(page, element)?;
                let position = u32_at(page, element + 4)? as usize;
                let key_length = u32_at(page, element + 8)? as usize;
                let value_length = u32_at(page, element + 12)? as usize;
                let key_start = element + position;
                let key = page
                    .get(key_start..key_start + key_length)
                    .ok_or_else(|| corrupt("a key lies outside its page"))?;
                let value_start = key_start + key_length;
                let value = page
                    .get(value_start..value_start + value_length)
                    .ok_or_else(|| corrupt("a value lies outside its page"))?;
                visit(key, value, element_flags)?;
            } else {
                return Err(corrupt(format!("a tree page has flags {flags:#x}")));
            }
        }
        Ok(())
    }

    /// Walks a bucket given its 16-byte header value (and inline page, if any).
    fn walk_bucket(&mut self, value: &[u8], visit: &mut Visitor<'_>) -> Result<(), BoltError> {
        let root = u64_at(value, 0)?;
        if root == 0 {
            let inline = value
                .get(BUCKET_HEADER..)
                .ok_or_else(|| corrupt("an inline bucket is empty"))?
                .to_vec();
            self.walk(&inline, 1, visit)
        } else {
            let page = self.page(root)?;
            self.walk(&page, 1, visit)
        }
    }
}

/// Keeps track of where the source stands, so a read that continues the previous one does not seek (a buffered
/// reader throws its buffer away on every seek).
struct Tracked<'source> {
    source: &'source mut dyn ReadAt,
    position: Option<u64>,
}

impl ReadAt for Tracked<'_> {
    fn read_exact_at(&mut self, offset: u64, buffer: &mut [u8]) -> io::Result<()> {
        let continued = if self.position == Some(offset) {
            // Continue where the last read ended.
            self.source.read_on(buffer)
        } else {
            Ok(false)
        };
        let result = match continued {
            Ok(true) => Ok(()),
            Ok(false) => self.source.read_exact_at(offset, buffer),
            Err(error) => Err(error),
        };
        self.position = result.as_ref().ok().map(|()| offset + buffer.len() as u64);
        result
    }
}

/// Opens the database: picks the valid meta page with the newest transaction and returns it with a reader bounded
/// by the database's size.
fn open<'source>(
    source: &'source mut dyn ReadAt,
    length: u64,
) -> Result<(Meta, Reader<'source>), BoltError> {
    let first_length = length.min(4096) as usize;
    if first_length < PAGE_HEADER + 64 {
        return Err(corrupt(format!("it is only {length} bytes long")));
    }
    let mut first = vec![0u8; first_length];
    source
        .read_exact_at(0, &mut first)
        .map_err(|error| BoltError::Io(error.to_string()))?;
    let meta_zero = parse_meta(&first);
    let page_size = match &meta_zero {
        Some(meta) => u64::from(meta.page_size),
        None => u64::from(u32_at(&first, PAGE_HEADER + 8)?),
    };
    if !(512..=1 << 20).contains(&page_size) {
        return Err(corrupt("it has no valid meta page"));
    }
    let meta_one = if length >= 2 * page_size {
        let mut second = vec![0u8; (PAGE_HEADER + 64).min(page_size as usize)];
        source
            .read_exact_at(page_size, &mut second)
            .map_err(|error| BoltError::Io(error.to_string()))?;
        parse_meta(&second)
    } else {
        None
    };
    let meta = match (meta_zero, meta_one) {
        (Some(zero), Some(one)) => {
            if one.txid > zero.txid {
                one
            } else {
                zero
            }
        }
        (Some(zero), None) => zero,
        (None, Some(one)) => one,
        (None, None) => return Err(corrupt("both meta pages are invalid")),
    };
    let total_size = meta.high_water.saturating_mul(page_size);
    let reader = Reader {
        source,
        page_size,
        length: length.min(total_size.max(2 * page_size)),
    };
    Ok((meta, reader))
}

/// A top-level bucket: its name and its header value (with the inline page, if any).
type NamedBucket = (Vec<u8>, Vec<u8>);

/// The top-level buckets under the root page.
fn top_level_buckets(reader: &mut Reader<'_>, root: u64) -> Result<Vec<NamedBucket>, BoltError> {
    let root_page = reader.page(root)?;
    let mut buckets: Vec<NamedBucket> = Vec::new();
    reader.walk(&root_page, 0, &mut |name, value, flags| {
        if flags & BUCKET_LEAF == 0 {
            return Err(corrupt(format!(
                "the top level holds a plain key {:?}, not a bucket",
                String::from_utf8_lossy(name)
            )));
        }
        buckets.push((name.to_vec(), value.to_vec()));
        Ok(())
    })?;
    Ok(buckets)
}

/// What [`scan`] meets, in order: each top-level bucket, then its entries in key order, then its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanEvent<'data> {
    /// A top-level bucket begins; `sequence` is its `NextSequence` counter.
    Bucket { name: &'data [u8], sequence: u64 },
    /// A key and value of the current bucket (`nested` when the value is a bucket, which etcd never makes).
    Entry {
        key: &'data [u8],
        value: &'data [u8],
        nested: bool,
    },
    /// The current bucket ends.
    EndBucket,
}

/// The layout of a database, as [`scan`] found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub page_size: u32,
}

/// The layout of the database from its valid meta page (the newest whose checksum holds), read before any scan.
pub fn layout(source: &mut dyn ReadAt, length: u64) -> Result<Layout, BoltError> {
    let (meta, _) = open(source, length)?;
    Ok(Layout {
        page_size: meta.page_size,
    })
}

/// Streams every top-level bucket of the database and its entries in key order to `visit`, holding only the pages
/// on the current path in memory.
pub fn scan(
    source: &mut dyn ReadAt,
    length: u64,
    visit: &mut dyn FnMut(ScanEvent<'_>) -> Result<(), BoltError>,
) -> Result<Layout, BoltError> {
    let mut tracked = Tracked {
        source,
        position: None,
    };
    let (meta, mut reader) = open(&mut tracked, length)?;
    for (name, header) in top_level_buckets(&mut reader, meta.root)? {
        let sequence = u64_at(&header, 8)?;
        visit(ScanEvent::Bucket {
            name: &name,
            sequence,
        })?;
        reader.walk_bucket(&header, &mut |key, value, flags| {
            visit(ScanEvent::Entry {
                key,
                value,
                nested: flags & BUCKET_LEAF != 0,
            })
        })?;
        visit(ScanEvent::EndBucket)?;
    }
    Ok(Layout {
        page_size: meta.page_size,
    })
}

/// Reads the statistics of the bolt database in the first `length` bytes of `source`.
pub fn stats(source: &mut dyn ReadAt, length: u64) -> Result<DatabaseStats, BoltError> {
    let mut tracked = Tracked {
        source,
        position: None,
    };
    let (meta, mut reader) = open(&mut tracked, length)?;
    let total_size = meta.high_water.saturating_mul(reader.page_size);
    let mut crc: u32 = 0;
    let mut revision: i64 = 0;
    let mut total_keys: u64 = 0;
    let mut total_entries: u64 = 0;
    for (name, header) in top_level_buckets(&mut reader, meta.root)? {
        crc = crc32c::crc32c_append(crc, &name);
        let is_key_bucket = name == b"key";
        reader.walk_bucket(&header, &mut |key, value, flags| {
            crc = crc32c::crc32c_append(crc, key);
            // A nested bucket shows as a key with no value, as bolt's ForEach reports it.
            if flags & BUCKET_LEAF == 0 {
                crc = crc32c::crc32c_append(crc, value);
            }
            if is_key_bucket && key.len() >= 8 {
                let mut main = [0u8; 8];
                main.copy_from_slice(&key[..8]);
                revision = i64::from_be_bytes(main);
            }
            if is_key_bucket {
                total_keys += 1;
            }
            total_entries += 1;
            Ok(())
        })?;
    }
    Ok(DatabaseStats {
        hash: crc,
        revision,
        total_keys,
        total_entries,
        total_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a minimal bolt file by hand: two meta pages, a root leaf with one inline bucket `key`, and a page size of
    /// 4096. Real databases are checked against `etcdctl snapshot status` in the integration tests.
    fn tiny_database(revisions: &[u64]) -> Vec<u8> {
        let page_size = 4096usize;
        let mut file = vec![0u8; page_size * 3];
        // Inline bucket page: a leaf with one element per revision.
        let mut inline = vec![0u8; PAGE_HEADER];
        inline[8..10].copy_from_slice(&LEAF_PAGE.to_le_bytes());
        inline[10..12].copy_from_slice(&(revisions.len() as u16).to_le_bytes());
        let elements_end = PAGE_HEADER + revisions.len() * ELEMENT;
        inline.resize(elements_end, 0);
        let mut data = Vec::new();
        for (index, revision) in revisions.iter().enumerate() {
            let element = PAGE_HEADER + index * ELEMENT;
            let mut key = revision.to_be_bytes().to_vec();
            key.push(b'_');
            key.extend_from_slice(&0u64.to_be_bytes());
            let value = format!("value-{revision}").into_bytes();
            let position = (elements_end + data.len() - element) as u32;
            inline[element + 4..element + 8].copy_from_slice(&position.to_le_bytes());
            inline[element + 8..element + 12].copy_from_slice(&(key.len() as u32).to_le_bytes());
            inline[element + 12..element + 16].copy_from_slice(&(value.len() as u32).to_le_bytes());
            data.extend_from_slice(&key);
            data.extend_from_slice(&value);
        }
        inline.extend_from_slice(&data);
        let mut bucket_value = vec![0u8; BUCKET_HEADER];
        bucket_value.extend_from_slice(&inline);
        // Root leaf at page 2 holding the bucket.
        let root = &mut file[2 * page_size..3 * page_size];
        root[0..8].copy_from_slice(&2u64.to_le_bytes());
        root[8..10].copy_from_slice(&LEAF_PAGE.to_le_bytes());
        root[10..12].copy_from_slice(&1u16.to_le_bytes());
        let element = PAGE_HEADER;
        root[element..element + 4].copy_from_slice(&BUCKET_LEAF.to_le_bytes());
        root[element + 4..element + 8].copy_from_slice(&(ELEMENT as u32).to_le_bytes());
        root[element + 8..element + 12].copy_from_slice(&3u32.to_le_bytes());
        root[element + 12..element + 16]
            .copy_from_slice(&(bucket_value.len() as u32).to_le_bytes());
        let key_start = element + ELEMENT;
        root[key_start..key_start + 3].copy_from_slice(b"key");
        root[key_start + 3..key_start + 3 + bucket_value.len()].copy_from_slice(&bucket_value);
        for (page, txid) in [(0usize, 4u64), (1, 5)] {
            let meta_start = page * page_size + PAGE_HEADER;
            let meta = &mut file[meta_start..meta_start + 64];
            meta[0..4].copy_from_slice(&MAGIC.to_le_bytes());
            meta[4..8].copy_from_slice(&2u32.to_le_bytes());
            meta[8..12].copy_from_slice(&(page_size as u32).to_le_bytes());
            meta[16..24].copy_from_slice(&2u64.to_le_bytes());
            meta[40..48].copy_from_slice(&3u64.to_le_bytes());
            meta[48..56].copy_from_slice(&txid.to_le_bytes());
            let checksum = fnv1a64(&meta[..56]);
            meta[56..64].copy_from_slice(&checksum.to_le_bytes());
        }
        file
    }

    #[test]
    fn stats_follow_etcdctl_definitions() {
        let file = tiny_database(&[2, 3, 9]);
        let stats = stats(&mut std::io::Cursor::new(&file), file.len() as u64).expect("stats");
        assert_eq!(stats.revision, 9);
        assert_eq!(stats.total_keys, 3);
        assert_eq!(stats.total_entries, 3);
        assert_eq!(stats.total_size, 3 * 4096);
        let mut expected = crc32c::crc32c(b"key");
        for revision in [2u64, 3, 9] {
            let mut key = revision.to_be_bytes().to_vec();
            key.push(b'_');
            key.extend_from_slice(&0u64.to_be_bytes());
            expected = crc32c::crc32c_append(expected, &key);
            expected = crc32c::crc32c_append(expected, format!("value-{revision}").as_bytes());
        }
        assert_eq!(stats.hash, expected);
    }

    #[test]
    fn damaged_meta_pages_are_refused_not_panicked_on() {
        let mut file = tiny_database(&[2]);
        file[PAGE_HEADER] ^= 0xff;
        file[4096 + PAGE_HEADER] ^= 0xff;
        let error =
            stats(&mut std::io::Cursor::new(&file), file.len() as u64).expect_err("no valid meta");
        assert!(error.to_string().contains("meta"), "{error}");
        let garbage = vec![0x5au8; 10_000];
        assert!(stats(&mut std::io::Cursor::new(&garbage), 10_000).is_err());
    }
}
