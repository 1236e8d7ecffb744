//! The one place bosun reads and writes YAML. `serde_yaml` is archived upstream; keeping every call here means a
//! maintained fork can replace it in one file.
//!
//! - [`from_str`] / [`to_string`]: one document.
//! - [`split_documents`]: a multi-document stream cut into documents, each with its first line, so errors in a
//!   later document still report the line in the file.
//! - [`from_document`]: deserialises one document straight from its text (not from a [`Value`]), tracking the field
//!   path with `serde_path_to_error`, so errors carry the path, line and column.
//! - [`to_string_sorted`]: writes a value with mapping keys sorted, the way kubeadm (Go's JSON → YAML) prints.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

/// A YAML value, for the parts of documents bosun keeps but does not interpret.
pub type Value = serde_yaml::Value;
/// A YAML mapping.
pub type Mapping = serde_yaml::Mapping;

/// What went wrong reading YAML, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    /// The field path (`networking.podSubnet`, `apiServer.extraArgs[0].name`); empty for the document itself.
    pub path: String,
    /// serde's description, without the location suffix serde_yaml appends.
    pub message: String,
    /// 1-based line and column in the text handed in, when known.
    pub line: Option<usize>,
    pub column: Option<usize>,
}

impl fmt::Display for YamlError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.path.is_empty() {
            write!(formatter, "{}: ", self.path)?;
        }
        formatter.write_str(&self.message)?;
        if let (Some(line), Some(column)) = (self.line, self.column) {
            write!(formatter, " at line {line} column {column}")?;
        }
        Ok(())
    }
}

impl std::error::Error for YamlError {}

fn convert_error(error: &serde_yaml::Error, path: String) -> YamlError {
    let location = error.location();
    let mut message = error.to_string();
    // serde_yaml appends " at line L column C" (and sometimes a path prefix); the location is reported separately.
    if let Some(position) = message.find(" at line ") {
        message.truncate(position);
    }
    // serde_yaml prefixes its own rendering of the path ("networking.podSubnet: ..."); the path is reported
    // separately, so drop a leading word without spaces that ends in ": ".
    if let Some((prefix, rest)) = message.split_once(": ") {
        if !prefix.is_empty() && !prefix.contains(' ') && !prefix.contains('`') {
            message = rest.to_owned();
        }
    }
    YamlError {
        path,
        message,
        line: location.as_ref().map(|location| location.line()),
        column: location.as_ref().map(|location| location.column()),
    }
}

/// Parses one YAML document.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    from_document(text)
}

/// Parses one document from its text with path tracking. Top-level `apiVersion` and `kind` keys are skipped, so
/// the target type describes only the body of a Kubernetes-style document.
pub fn from_document<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    let deserializer = serde_yaml::Deserializer::from_str(text);
    match serde_path_to_error::deserialize::<_, SkipTypeMeta<T>>(deserializer) {
        Ok(SkipTypeMeta(value, _)) => Ok(value),
        Err(error) => {
            let path = render_path(error.path());
            Err(convert_error(error.inner(), path))
        }
    }
}

/// Parses one document into a generic value (used for the type header and for syntax checks).
pub fn value_from_str(text: &str) -> Result<Value, YamlError> {
    serde_yaml::from_str(text).map_err(|error| convert_error(&error, String::new()))
}

/// Writes one value as a YAML document (no leading `---`).
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> Result<String, YamlError> {
    serde_yaml::to_string(value).map_err(|error| convert_error(&error, String::new()))
}

/// Converts a serialisable value to a YAML [`Value`].
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value, YamlError> {
    serde_yaml::to_value(value).map_err(|error| convert_error(&error, String::new()))
}

/// Converts a [`Value`] to a typed value.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, YamlError> {
    serde_yaml::from_value(value).map_err(|error| convert_error(&error, String::new()))
}

/// Writes a value with every mapping's keys sorted, as kubeadm prints its documents.
pub fn to_string_sorted<T: Serialize + ?Sized>(value: &T) -> Result<String, YamlError> {
    let mut value = to_value(value)?;
    sort_keys(&mut value);
    to_string(&value)
}

/// Sorts mapping keys recursively.
pub fn sort_keys(value: &mut Value) {
    match value {
        Value::Mapping(mapping) => {
            let mut entries: Vec<(Value, Value)> = std::mem::take(mapping).into_iter().collect();
            entries.sort_by_key(|entry| key_text(&entry.0));
            for (key, mut item) in entries {
                sort_keys(&mut item);
                mapping.insert(key, item);
            }
        }
        Value::Sequence(items) => items.iter_mut().for_each(sort_keys),
        Value::Tagged(tagged) => sort_keys(&mut tagged.value),
        _ => {}
    }
}

fn key_text(key: &Value) -> String {
    match key {
        Value::String(text) => text.clone(),
        other => serde_yaml::to_string(other).unwrap_or_default(),
    }
}

/// Joins documents into one stream separated by `---` lines.
pub fn join_documents(documents: &[String]) -> String {
    let mut stream = String::new();
    for (index, document) in documents.iter().enumerate() {
        if index > 0 {
            stream.push_str("---\n");
        }
        stream.push_str(document);
        if !document.ends_with('\n') {
            stream.push('\n');
        }
    }
    stream
}

/// One document of a multi-document stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// 1-based position in the stream, counting only non-empty documents.
    pub number: usize,
    /// The document's text; lines before it are blank so line numbers match the whole stream.
    pub text: String,
    /// The 1-based line of the stream where the document starts.
    pub first_line: usize,
}

/// Cuts a stream at `---` lines (and `...` end markers). Documents holding only comments or blanks are dropped,
/// as kubeadm drops them. Each document's text is padded with empty lines so that line numbers reported by the
/// parser are line numbers in the stream.
pub fn split_documents(stream: &str) -> Vec<Document> {
    let mut documents = Vec::new();
    let mut current = String::new();
    let mut current_first_line = 1;
    let mut line_number = 0;
    let flush = |text: &mut String, first_line: usize, documents: &mut Vec<Document>| {
        let has_content = text.lines().any(|line| {
            let trimmed = line.trim();
            !trimmed.is_empty() && !trimmed.starts_with('#') && !trimmed.starts_with('%')
        });
        if has_content {
            let number = documents.len() + 1;
            documents.push(Document {
                number,
                text: std::mem::take(text),
                first_line,
            });
        } else {
            text.clear();
        }
    };
    for line in stream.split_inclusive('\n') {
        line_number += 1;
        let bare = line.trim_end_matches(['\n', '\r']);
        let is_start = bare == "---" || bare.starts_with("--- ") || bare.starts_with("---\t");
        let is_end = bare == "..." || bare.starts_with("... ");
        if is_start || is_end {
            flush(&mut current, current_first_line, &mut documents);
            current_first_line = line_number;
            // Keep line numbers: every earlier line becomes empty, and content after `--- ` stays in its column.
            current = "\n".repeat(line_number - 1);
            if is_start && bare.len() > 4 {
                let rest = &bare[4..];
                if !rest.trim().is_empty() && !rest.trim_start().starts_with('#') {
                    current.push_str("    ");
                    current.push_str(rest);
                }
            }
            current.push('\n');
            continue;
        }
        if current.is_empty() && line_number > 1 {
            current = "\n".repeat(line_number - 1);
        }
        current.push_str(line);
    }
    flush(&mut current, current_first_line, &mut documents);
    documents
}

/// Renders a serde_path_to_error path as `a.b[0].c`.
fn render_path(path: &serde_path_to_error::Path) -> String {
    let mut rendered = String::new();
    for segment in path.iter() {
        match segment {
            serde_path_to_error::Segment::Seq { index } => {
                rendered.push_str(&format!("[{index}]"));
            }
            serde_path_to_error::Segment::Map { key }
            | serde_path_to_error::Segment::Enum { variant: key } => {
                if !rendered.is_empty() {
                    rendered.push('.');
                }
                rendered.push_str(key);
            }
            serde_path_to_error::Segment::Unknown => {
                if !rendered.is_empty() {
                    rendered.push('.');
                }
                rendered.push('?');
            }
        }
    }
    rendered
}

/// A document body: `T` read from a mapping whose `apiVersion` and `kind` keys are skipped.
struct SkipTypeMeta<T>(T, PhantomData<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for SkipTypeMeta<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BodyVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for BodyVisitor<T> {
            type Value = T;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a mapping with apiVersion, kind and the document's fields")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(
                    WithoutTypeMeta { map },
                ))
            }
        }
        deserializer
            .deserialize_map(BodyVisitor(PhantomData))
            .map(|value| SkipTypeMeta(value, PhantomData))
    }
}

/// A map access that hides the `apiVersion` and `kind` entries. Keys are still deserialised by the underlying
/// deserializer, so errors about them (an unknown field) keep their line and column.
struct WithoutTypeMeta<A> {
    map: A,
}

enum KeyOrSkip<K> {
    Skip,
    Key(K),
}

struct FilterKeySeed<'a, S> {
    seed: &'a mut Option<S>,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for FilterKeySeed<'_, S> {
    type Value = KeyOrSkip<S::Value>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        struct KeyVisitor<'a, S> {
            seed: &'a mut Option<S>,
        }
        impl<'de, S: DeserializeSeed<'de>> Visitor<'de> for KeyVisitor<'_, S> {
            type Value = KeyOrSkip<S::Value>;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a field name")
            }
            fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Self::Value, E> {
                if key == "apiVersion" || key == "kind" {
                    return Ok(KeyOrSkip::Skip);
                }
                let seed = self
                    .seed
                    .take()
                    .ok_or_else(|| E::custom("internal: key seed used twice"))?;
                seed.deserialize(serde::de::value::StrDeserializer::<E>::new(key))
                    .map(KeyOrSkip::Key)
            }
            fn visit_bool<E: serde::de::Error>(self, value: bool) -> Result<Self::Value, E> {
                Err(E::custom(format!("field names are strings, found {value}")))
            }
            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<Self::Value, E> {
                Err(E::custom(format!("field names are strings, found {value}")))
            }
            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Self::Value, E> {
                Err(E::custom(format!("field names are strings, found {value}")))
            }
        }
        deserializer.deserialize_str(KeyVisitor { seed: self.seed })
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for WithoutTypeMeta<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        let mut seed = Some(seed);
        loop {
            match self.map.next_key_seed(FilterKeySeed { seed: &mut seed })? {
                None => return Ok(None),
                Some(KeyOrSkip::Key(key)) => return Ok(Some(key)),
                Some(KeyOrSkip::Skip) => {
                    self.map.next_value::<IgnoredAny>()?;
                }
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        self.map.next_value_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        self.map.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Body {
        pod_subnet: String,
        #[serde(default)]
        nested: Option<Nested>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Nested {
        port: u16,
    }

    #[test]
    fn documents_keep_their_line_numbers() {
        let stream = "# a comment\n---\na: 1\n---\n# only a comment\n---\nb: 2\nc: 3\n...\n";
        let documents = split_documents(stream);
        assert_eq!(documents.len(), 2);
        assert_eq!(documents[0].number, 1);
        assert_eq!(documents[0].first_line, 2);
        assert_eq!(documents[1].first_line, 6);
        assert_eq!(documents[1].text.lines().nth(6), Some("b: 2"));
    }

    #[test]
    fn a_stream_without_separators_is_one_document() {
        let documents = split_documents("a: 1\nb: 2\n");
        assert_eq!(documents.len(), 1);
        assert_eq!(documents[0].text, "a: 1\nb: 2\n");
    }

    #[test]
    fn content_after_the_separator_stays_in_the_document() {
        let documents = split_documents("--- a: 1\n");
        assert_eq!(documents.len(), 1);
        let value = value_from_str(&documents[0].text).expect("parse");
        assert_eq!(value["a"], Value::from(1));
    }

    #[test]
    fn type_meta_is_skipped_and_unknown_fields_are_located() {
        let body: Body =
            from_document("apiVersion: x/v1\nkind: K\npodSubnet: 10.0.0.0/8\n").expect("body");
        assert_eq!(body.pod_subnet, "10.0.0.0/8");
        let error = from_document::<Body>("apiVersion: x/v1\nkind: K\npodSubnet: a\npodSubnt: b\n")
            .expect_err("unknown field");
        assert!(
            error.message.contains("unknown field `podSubnt`"),
            "{error}"
        );
        assert_eq!((error.line, error.column), (Some(4), Some(1)));
        let error =
            from_document::<Body>("podSubnet: a\nnested:\n  port: many\n").expect_err("bad type");
        assert_eq!(error.path, "nested.port");
        assert_eq!(error.line, Some(3));
    }

    #[test]
    fn sorted_output_orders_keys() {
        let mut mapping = Mapping::new();
        mapping.insert(Value::from("b"), Value::from(1));
        mapping.insert(Value::from("a"), Value::from(2));
        let text = to_string_sorted(&Value::Mapping(mapping)).expect("yaml");
        assert_eq!(text, "a: 2\nb: 1\n");
    }
}

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSegment {
    Key(String),
    Index(usize),
}

/// Parses `a.b[0].c` into segments.
pub fn parse_path(path: &str) -> Vec<PathSegment> {
    let mut segments = Vec::new();
    for part in path.split('.') {
        let mut rest = part;
        if let Some(open) = rest.find('[') {
            let key = &rest[..open];
            if !key.is_empty() {
                segments.push(PathSegment::Key(key.to_owned()));
            }
            rest = &rest[open..];
            while let Some(stripped) = rest.strip_prefix('[') {
                let Some(close) = stripped.find(']') else {
                    break;
                };
                if let Ok(index) = stripped[..close].parse() {
                    segments.push(PathSegment::Index(index));
                }
                rest = &stripped[close + 1..];
            }
        } else if !rest.is_empty() {
            segments.push(PathSegment::Key(rest.to_owned()));
        }
    }
    segments
}

/// The 1-based line and column of the node at `path` in a document, or of the deepest ancestor that exists.
///
/// serde_yaml does not expose node positions, but it attaches the position of the node being visited to any error
/// raised while visiting it; so the locator walks the path and raises an error at the target.
pub fn locate(text: &str, path: &[PathSegment]) -> Option<(usize, usize)> {
    locate_in(text, path, false)
}

/// Like [`locate`], but the position of the last key itself (for "unknown field" errors).
pub fn locate_key(text: &str, path: &[PathSegment]) -> Option<(usize, usize)> {
    locate_in(text, path, true)
}

fn locate_in(text: &str, path: &[PathSegment], at_key: bool) -> Option<(usize, usize)> {
    for length in (0..=path.len()).rev() {
        let deserializer = serde_yaml::Deserializer::from_str(text);
        let seed = Locate {
            path: &path[..length],
            at_key: at_key && length == path.len(),
        };
        if let Err(error) = seed.deserialize(deserializer) {
            if error.to_string().contains(LOCATED) {
                if let Some(location) = error.location() {
                    return Some((location.line(), location.column()));
                }
            }
        }
    }
    None
}

const LOCATED: &str = "\u{1}located";

struct Locate<'a> {
    path: &'a [PathSegment],
    /// Stop at the last key rather than at its value.
    at_key: bool,
}

/// Deserialises a mapping key, raising the locating error when it is the wanted one.
struct KeyLocate<'a> {
    wanted: &'a str,
}

impl<'de> DeserializeSeed<'de> for KeyLocate<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        struct KeyVisitor<'a>(&'a str);
        impl<'de> Visitor<'de> for KeyVisitor<'_> {
            type Value = Value;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a key")
            }
            fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Value, E> {
                if key == self.0 {
                    Err(E::custom(LOCATED))
                } else {
                    Ok(Value::from(key))
                }
            }
            fn visit_bool<E: serde::de::Error>(self, value: bool) -> Result<Value, E> {
                Ok(Value::from(value))
            }
            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<Value, E> {
                Ok(Value::from(value))
            }
            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Value, E> {
                Ok(Value::from(value))
            }
            fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<Value, E> {
                Ok(Value::from(value))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
                Ok(Value::Null)
            }
        }
        deserializer.deserialize_any(KeyVisitor(self.wanted))
    }
}

impl<'de> DeserializeSeed<'de> for Locate<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Locate<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((first, rest)) = self.path.split_first() else {
            return Err(serde::de::Error::custom(LOCATED));
        };
        if let (true, [PathSegment::Key(wanted)]) = (self.at_key, self.path) {
            while map.next_key_seed(KeyLocate { wanted })?.is_some() {
                map.next_value::<IgnoredAny>()?;
            }
            return Ok(());
        }
        let mut position = 0;
        while let Some(key) = map.next_key::<Value>()? {
            let matches = match (first, &key) {
                (PathSegment::Key(wanted), Value::String(found)) => wanted == found,
                // A v1beta3 string map converted to a list: the n-th entry in key order.
                (PathSegment::Index(wanted), _) => *wanted == position,
                _ => false,
            };
            position += 1;
            if matches {
                return map.next_value_seed(Locate {
                    path: rest,
                    at_key: self.at_key,
                });
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut sequence: A) -> Result<(), A::Error> {
        let Some((first, rest)) = self.path.split_first() else {
            return Err(serde::de::Error::custom(LOCATED));
        };
        let PathSegment::Index(wanted) = first else {
            return Ok(());
        };
        let mut position = 0;
        while position < *wanted {
            if sequence.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
            position += 1;
        }
        sequence.next_element_seed(Locate {
            path: rest,
            at_key: self.at_key,
        })?;
        Ok(())
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
        self.scalar()
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<(), E> {
        self.scalar()
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.scalar()
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<(), E> {
        self.scalar()
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl Locate<'_> {
    fn scalar<E: serde::de::Error>(&self) -> Result<(), E> {
        if self.path.is_empty() {
            Err(E::custom(LOCATED))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod locate_tests {
    use super::*;

    #[test]
    fn fields_and_list_items_are_located() {
        let text = "kind: X\nnetworking:\n  podSubnet: 10.0.0.0/33\napiServer:\n  extraArgs:\n  - name: a\n    value: b\n";
        assert_eq!(
            locate(text, &parse_path("networking.podSubnet")),
            Some((3, 14))
        );
        assert_eq!(
            locate(text, &parse_path("apiServer.extraArgs[0].value")),
            Some((7, 12))
        );
        // A missing leaf falls back to its parent.
        assert_eq!(
            locate(text, &parse_path("networking.serviceSubnet")),
            Some((3, 3))
        );
    }
}
