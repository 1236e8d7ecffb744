//! A writer of bolt databases, built in one pass from buckets and keys given in key order (the native restore uses
//! it to copy a snapshot while changing its membership).
//!
//! The file has bolt's version-2 layout, as `bbolt`'s `init()` starts it and its commits keep it: pages 0 and 1 are
//! meta pages (magic, version, page size, the root bucket, the freelist page, the page high-water mark, the
//! transaction id, and an FNV-1a checksum over the fields before it) with transaction ids 0 and 1; page 2 is an
//! empty freelist (every page of the file is in use); the trees follow. Every bucket is a separate tree (none is
//! inlined): leaves are filled in key order, each full page is written at once, and its first key goes up into
//! the branch level above it, so the trees grow bottom-up and only one page per level is in memory. An element
//! larger than a page gets a page of its own with overflow pages, as bolt does. The top-level tree holds the
//! bucket headers (root page, sequence) and is written last; then the meta pages are written over the reserved
//! first pages.
//!
//! Keys must come in strictly increasing order within a bucket and buckets in strictly increasing name order; the
//! writer refuses anything else, so a bug cannot produce a file bolt would misread. Nested buckets are not
//! supported (etcd never makes them).

use std::io::{self, Seek, SeekFrom, Write};

use super::bolt::fnv1a64;

const MAGIC: u32 = 0xED0C_DAED;
const VERSION: u32 = 2;
const PAGE_HEADER: usize = 16;
const ELEMENT: usize = 16;
const BRANCH_PAGE: u16 = 0x01;
const LEAF_PAGE: u16 = 0x02;
const META_PAGE: u16 = 0x04;
const FREELIST_PAGE: u16 = 0x10;
const BUCKET_LEAF: u32 = 0x01;
/// The first page that holds tree data (0 and 1 are meta pages, 2 the freelist).
const FIRST_DATA_PAGE: u64 = 3;

/// Why a database could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("cannot write the database: {0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Order(String),
}

/// One element waiting for its page: a leaf's key and value (with flags), or a branch's first key and child page.
struct Element {
    key: Vec<u8>,
    value: Vec<u8>,
    flags: u32,
    child: u64,
}

impl Element {
    fn size(&self) -> usize {
        ELEMENT + self.key.len() + self.value.len()
    }
}

/// One level of a tree being built: the elements of its current page.
#[derive(Default)]
struct Level {
    elements: Vec<Element>,
    size: usize,
    pages_written: u64,
}

/// A tree built bottom-up.
#[derive(Default)]
struct Tree {
    /// levels[0] is the leaf level.
    levels: Vec<Level>,
    last_key: Option<Vec<u8>>,
}

/// Writes a bolt database in one pass.
pub struct BoltWriter<W: Write + Seek> {
    out: W,
    page_size: usize,
    next_page: u64,
    /// Finished buckets: name, root page, sequence.
    buckets: Vec<(Vec<u8>, u64, u64)>,
    /// The bucket being written: name, sequence, tree.
    current: Option<(Vec<u8>, u64, Tree)>,
    page_buffer: Vec<u8>,
}

impl<W: Write + Seek> BoltWriter<W> {
    /// Starts a database with pages of `page_size` bytes (that of the source, usually 4096).
    pub fn new(mut out: W, page_size: u32) -> Result<Self, WriteError> {
        let page_size = page_size as usize;
        if !(1024..=1 << 16).contains(&page_size) || !page_size.is_power_of_two() {
            return Err(WriteError::Order(format!(
                "a page size of {page_size} bytes is not one bolt uses"
            )));
        }
        // Reserve the meta and freelist pages; they are written at the end.
        out.seek(SeekFrom::Start(0))?;
        out.write_all(&vec![0u8; page_size * FIRST_DATA_PAGE as usize])?;
        Ok(BoltWriter {
            out,
            page_size,
            next_page: FIRST_DATA_PAGE,
            buckets: Vec::new(),
            current: None,
            page_buffer: Vec::new(),
        })
    }

    /// Starts the next top-level bucket; names must increase.
    pub fn begin_bucket(&mut self, name: &[u8], sequence: u64) -> Result<(), WriteError> {
        if self.current.is_some() {
            return Err(WriteError::Order(
                "a bucket was begun before the previous one ended".to_owned(),
            ));
        }
        if let Some((last, _, _)) = self.buckets.last() {
            if name <= last.as_slice() {
                return Err(WriteError::Order(format!(
                    "the bucket {:?} does not come after {:?}",
                    String::from_utf8_lossy(name),
                    String::from_utf8_lossy(last)
                )));
            }
        }
        if name.is_empty() {
            return Err(WriteError::Order("a bucket name is empty".to_owned()));
        }
        self.current = Some((name.to_vec(), sequence, Tree::default()));
        Ok(())
    }

    /// Adds a key and value to the current bucket; keys must increase.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), WriteError> {
        let Some((name, _, tree)) = self.current.as_mut() else {
            return Err(WriteError::Order(
                "a key was given outside a bucket".to_owned(),
            ));
        };
        if key.is_empty() {
            return Err(WriteError::Order(format!(
                "an empty key in the bucket {:?}",
                String::from_utf8_lossy(name)
            )));
        }
        if let Some(last) = &tree.last_key {
            if key <= last.as_slice() {
                return Err(WriteError::Order(format!(
                    "the keys of the bucket {:?} are not in increasing order",
                    String::from_utf8_lossy(name)
                )));
            }
        }
        tree.last_key = Some(key.to_vec());
        let element = Element {
            key: key.to_vec(),
            value: value.to_vec(),
            flags: 0,
            child: 0,
        };
        let mut tree = std::mem::take(tree);
        let result = self.add(&mut tree, 0, element);
        if let Some((_, _, slot)) = self.current.as_mut() {
            *slot = tree;
        }
        result
    }

    /// Ends the current bucket.
    pub fn end_bucket(&mut self) -> Result<(), WriteError> {
        let Some((name, sequence, mut tree)) = self.current.take() else {
            return Err(WriteError::Order("a bucket was ended twice".to_owned()));
        };
        let root = self.finish_tree(&mut tree)?;
        self.buckets.push((name, root, sequence));
        Ok(())
    }

    /// Writes the top-level tree, the freelist and the meta pages; returns the output and the file's size.
    pub fn finish(mut self) -> Result<(W, u64), WriteError> {
        if self.current.is_some() {
            return Err(WriteError::Order(
                "the database was finished inside a bucket".to_owned(),
            ));
        }
        let mut top = Tree::default();
        for (name, root, sequence) in std::mem::take(&mut self.buckets) {
            let mut header = Vec::with_capacity(16);
            header.extend_from_slice(&root.to_le_bytes());
            header.extend_from_slice(&sequence.to_le_bytes());
            self.add(
                &mut top,
                0,
                Element {
                    key: name,
                    value: header,
                    flags: BUCKET_LEAF,
                    child: 0,
                },
            )?;
        }
        let root = self.finish_tree(&mut top)?;
        let high_water = self.next_page;
        // Freelist: empty, since every page is in use.
        let mut freelist = vec![0u8; self.page_size];
        freelist[0..8].copy_from_slice(&2u64.to_le_bytes());
        freelist[8..10].copy_from_slice(&FREELIST_PAGE.to_le_bytes());
        self.out.seek(SeekFrom::Start(2 * self.page_size as u64))?;
        self.out.write_all(&freelist)?;
        for (page, txid) in [(0u64, 0u64), (1, 1)] {
            let mut bytes = vec![0u8; self.page_size];
            bytes[0..8].copy_from_slice(&page.to_le_bytes());
            bytes[8..10].copy_from_slice(&META_PAGE.to_le_bytes());
            let meta = &mut bytes[PAGE_HEADER..PAGE_HEADER + 64];
            meta[0..4].copy_from_slice(&MAGIC.to_le_bytes());
            meta[4..8].copy_from_slice(&VERSION.to_le_bytes());
            meta[8..12].copy_from_slice(&(self.page_size as u32).to_le_bytes());
            // flags (12..16) stay 0; the root bucket's sequence (24..32) stays 0.
            meta[16..24].copy_from_slice(&root.to_le_bytes());
            meta[32..40].copy_from_slice(&2u64.to_le_bytes());
            meta[40..48].copy_from_slice(&high_water.to_le_bytes());
            meta[48..56].copy_from_slice(&txid.to_le_bytes());
            let checksum = fnv1a64(&meta[..56]);
            meta[56..64].copy_from_slice(&checksum.to_le_bytes());
            self.out
                .seek(SeekFrom::Start(page * self.page_size as u64))?;
            self.out.write_all(&bytes)?;
        }
        self.out.flush()?;
        Ok((self.out, high_water * self.page_size as u64))
    }

    /// Adds an element to `level` of `tree`, writing the level's page first when the element does not fit.
    fn add(&mut self, tree: &mut Tree, level: usize, element: Element) -> Result<(), WriteError> {
        if tree.levels.len() <= level {
            tree.levels.push(Level::default());
        }
        let size = element.size();
        let current = &tree.levels[level];
        if !current.elements.is_empty()
            && (current.size + size > self.page_size
                || current.elements.len() == usize::from(u16::MAX))
        {
            self.flush_level(tree, level)?;
        }
        let current = &mut tree.levels[level];
        if current.elements.is_empty() {
            current.size = PAGE_HEADER;
        }
        current.size += size;
        current.elements.push(element);
        Ok(())
    }

    /// Writes the page of `level` and puts its first key and page id into the level above.
    fn flush_level(&mut self, tree: &mut Tree, level: usize) -> Result<(), WriteError> {
        let elements = std::mem::take(&mut tree.levels[level].elements);
        tree.levels[level].size = PAGE_HEADER;
        tree.levels[level].pages_written += 1;
        let first_key = elements.first().map(|element| element.key.clone());
        let page = self.write_page(&elements, level == 0)?;
        self.add(
            tree,
            level + 1,
            Element {
                key: first_key.unwrap_or_default(),
                value: Vec::new(),
                flags: 0,
                child: page,
            },
        )
    }

    /// Writes what is left of every level and returns the root page.
    fn finish_tree(&mut self, tree: &mut Tree) -> Result<u64, WriteError> {
        if tree.levels.is_empty() {
            tree.levels.push(Level::default());
        }
        let mut level = 0;
        loop {
            let last = level + 1 == tree.levels.len();
            if last && tree.levels[level].pages_written == 0 {
                // Everything of this level fits in one page: the root.
                let elements = std::mem::take(&mut tree.levels[level].elements);
                return self.write_page(&elements, level == 0);
            }
            if !tree.levels[level].elements.is_empty() {
                self.flush_level(tree, level)?;
            }
            level += 1;
        }
    }

    /// Writes one page (with overflow pages when its elements need them) and returns its id.
    fn write_page(&mut self, elements: &[Element], leaf: bool) -> Result<u64, WriteError> {
        let id = self.next_page;
        let data: usize = elements.iter().map(Element::size).sum();
        let size = PAGE_HEADER + data;
        let pages = size.div_ceil(self.page_size).max(1);
        let overflow = u32::try_from(pages - 1).map_err(|_| {
            WriteError::Order("an element is larger than bolt can store".to_owned())
        })?;
        let buffer = &mut self.page_buffer;
        buffer.clear();
        buffer.resize(pages * self.page_size, 0);
        buffer[0..8].copy_from_slice(&id.to_le_bytes());
        let flags = if leaf { LEAF_PAGE } else { BRANCH_PAGE };
        buffer[8..10].copy_from_slice(&flags.to_le_bytes());
        buffer[10..12].copy_from_slice(&(elements.len() as u16).to_le_bytes());
        buffer[12..16].copy_from_slice(&overflow.to_le_bytes());
        let mut data_at = PAGE_HEADER + elements.len() * ELEMENT;
        for (index, element) in elements.iter().enumerate() {
            let at = PAGE_HEADER + index * ELEMENT;
            let position = (data_at - at) as u32;
            let key_length = element.key.len() as u32;
            if leaf {
                buffer[at..at + 4].copy_from_slice(&element.flags.to_le_bytes());
                buffer[at + 4..at + 8].copy_from_slice(&position.to_le_bytes());
                buffer[at + 8..at + 12].copy_from_slice(&key_length.to_le_bytes());
                buffer[at + 12..at + 16]
                    .copy_from_slice(&(element.value.len() as u32).to_le_bytes());
            } else {
                buffer[at..at + 4].copy_from_slice(&position.to_le_bytes());
                buffer[at + 4..at + 8].copy_from_slice(&key_length.to_le_bytes());
                buffer[at + 8..at + 16].copy_from_slice(&element.child.to_le_bytes());
            }
            buffer[data_at..data_at + element.key.len()].copy_from_slice(&element.key);
            data_at += element.key.len();
            buffer[data_at..data_at + element.value.len()].copy_from_slice(&element.value);
            data_at += element.value.len();
        }
        self.out.write_all(buffer)?;
        self.next_page += pages as u64;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etcd::bolt::{self, ScanEvent};
    use std::collections::{BTreeMap, BTreeSet};
    use std::io::Cursor;

    type Content = BTreeMap<Vec<u8>, (u64, Vec<(Vec<u8>, Vec<u8>)>)>;

    fn write(content: &Content, page_size: u32) -> Vec<u8> {
        let mut writer = BoltWriter::new(Cursor::new(Vec::new()), page_size).expect("writer");
        for (name, (sequence, entries)) in content {
            writer.begin_bucket(name, *sequence).expect("bucket");
            for (key, value) in entries {
                writer.put(key, value).expect("put");
            }
            writer.end_bucket().expect("end");
        }
        let (out, size) = writer.finish().expect("finish");
        let bytes = out.into_inner();
        assert_eq!(bytes.len() as u64, size);
        bytes
    }

    fn read_back(bytes: &[u8]) -> Content {
        let mut content = Content::new();
        let mut current: Option<Vec<u8>> = None;
        bolt::scan(&mut Cursor::new(bytes), bytes.len() as u64, &mut |event| {
            match event {
                ScanEvent::Bucket { name, sequence } => {
                    content.insert(name.to_vec(), (sequence, Vec::new()));
                    current = Some(name.to_vec());
                }
                ScanEvent::Entry { key, value, nested } => {
                    assert!(!nested);
                    let name = current.as_ref().expect("inside a bucket");
                    content
                        .get_mut(name)
                        .expect("bucket")
                        .1
                        .push((key.to_vec(), value.to_vec()));
                }
                ScanEvent::EndBucket => current = None,
            }
            Ok(())
        })
        .expect("scan");
        content
    }

    /// Checks bolt's invariants as `bbolt check` does: every page below the high-water mark is reached exactly
    /// once from the root (the freelist is empty), page ids match their positions, keys are ordered within each
    /// page and a branch's keys are its children's first keys, both meta checksums hold.
    fn check_invariants(bytes: &[u8], page_size: usize) {
        let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
        let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8"));
        let high_water = u64_at(PAGE_HEADER + 40);
        assert_eq!(bytes.len(), high_water as usize * page_size);
        for page in 0..2 {
            let meta = page * page_size + PAGE_HEADER;
            assert_eq!(u64_at(meta + 56), fnv1a64(&bytes[meta..meta + 56]));
            assert_eq!(u64_at(meta + 48), page as u64, "txid");
            assert_eq!(u64_at(meta + 32), 2, "freelist page");
        }
        assert_eq!(u16_at(2 * page_size + 8), FREELIST_PAGE);
        assert_eq!(u16_at(2 * page_size + 10), 0, "the freelist is empty");
        let mut seen = BTreeSet::from([0u64, 1, 2]);
        // Walk a tree; returns its first key.
        fn walk(
            bytes: &[u8],
            page_size: usize,
            id: u64,
            seen: &mut BTreeSet<u64>,
            top: bool,
            roots: &mut Vec<u64>,
        ) -> Vec<u8> {
            let at = id as usize * page_size;
            let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
            let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4"));
            let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8"));
            assert_eq!(u64_at(at), id, "page id");
            let overflow = u64::from(u32_at(at + 12));
            for page in id..=id + overflow {
                assert!(seen.insert(page), "page {page} reached twice");
            }
            let flags = u16_at(at + 8);
            let count = usize::from(u16_at(at + 10));
            let mut keys: Vec<Vec<u8>> = Vec::new();
            for index in 0..count {
                let element = at + PAGE_HEADER + index * ELEMENT;
                if flags == BRANCH_PAGE {
                    let position = u32_at(element) as usize;
                    let key_length = u32_at(element + 4) as usize;
                    let key = bytes[element + position..element + position + key_length].to_vec();
                    let child = u64_at(element + 8);
                    let first = walk(bytes, page_size, child, seen, top, roots);
                    assert_eq!(key, first, "a branch key is not its child's first key");
                    keys.push(key);
                } else {
                    assert_eq!(flags, LEAF_PAGE);
                    let element_flags = u32_at(element);
                    let position = u32_at(element + 4) as usize;
                    let key_length = u32_at(element + 8) as usize;
                    let key = bytes[element + position..element + position + key_length].to_vec();
                    if top {
                        assert_eq!(element_flags, BUCKET_LEAF);
                        roots.push(u64_at(element + position + key_length));
                    }
                    keys.push(key);
                }
            }
            assert!(
                keys.windows(2).all(|pair| pair[0] < pair[1]),
                "keys out of order"
            );
            keys.first().cloned().unwrap_or_default()
        }
        let mut roots = Vec::new();
        walk(
            bytes,
            page_size,
            u64_at(PAGE_HEADER + 16),
            &mut seen,
            true,
            &mut roots,
        );
        for root in roots {
            assert_ne!(root, 0, "no bucket is inline");
            walk(bytes, page_size, root, &mut seen, false, &mut Vec::new());
        }
        assert_eq!(seen.len() as u64, high_water, "every page is reached");
    }

    #[test]
    fn many_keys_large_values_and_empty_buckets_read_back_unchanged() {
        let mut content = Content::new();
        content.insert(b"alarm".to_vec(), (0, Vec::new()));
        let keys: Vec<(Vec<u8>, Vec<u8>)> = (0..20_000u64)
            .map(|revision| {
                let mut key = revision.to_be_bytes().to_vec();
                key.push(b'_');
                key.extend_from_slice(&0u64.to_be_bytes());
                (key, format!("value of key {revision}").into_bytes())
            })
            .collect();
        content.insert(b"key".to_vec(), (7, keys));
        let large: Vec<(Vec<u8>, Vec<u8>)> = (0..40u32)
            .map(|index| {
                let value: Vec<u8> = (0..(index as usize * 997 + 1))
                    .map(|byte| (byte % 251) as u8)
                    .collect();
                (format!("large-{index:03}").into_bytes(), value)
            })
            .collect();
        content.insert(b"lease".to_vec(), (0, large));
        content.insert(b"members_removed".to_vec(), (0, Vec::new()));
        content.insert(
            b"meta".to_vec(),
            (
                0,
                vec![(b"consistent_index".to_vec(), 1u64.to_be_bytes().to_vec())],
            ),
        );
        for page_size in [4096u32, 16384] {
            let bytes = write(&content, page_size);
            assert_eq!(read_back(&bytes), content);
            check_invariants(&bytes, page_size as usize);
            let stats = bolt::stats(&mut Cursor::new(&bytes), bytes.len() as u64).expect("stats");
            assert_eq!(stats.total_keys, 20_000);
            assert_eq!(stats.revision, 19_999);
        }
    }

    #[test]
    fn an_empty_database_has_an_empty_root() {
        let bytes = write(&Content::new(), 4096);
        assert_eq!(bytes.len(), 4 * 4096);
        check_invariants(&bytes, 4096);
        assert!(read_back(&bytes).is_empty());
    }

    #[test]
    fn keys_out_of_order_are_refused() {
        let mut writer = BoltWriter::new(Cursor::new(Vec::new()), 4096).expect("writer");
        writer.begin_bucket(b"key", 0).expect("bucket");
        writer.put(b"b", b"1").expect("put");
        let error = writer.put(b"a", b"2").expect_err("out of order");
        assert!(error.to_string().contains("increasing order"), "{error}");
        writer.end_bucket().expect("end");
        let error = writer.begin_bucket(b"key", 0).expect_err("same bucket");
        assert!(error.to_string().contains("does not come after"), "{error}");
    }
}
