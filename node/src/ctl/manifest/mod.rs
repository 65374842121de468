//! Manifest files: YAML or JSON, one or more documents, each
//! `{apiVersion, kind, metadata: {name, labels}, spec}` in metalnet's shape.
//!
//! - `apiVersion` is `networking.metalnet.ironcore.dev/v1alpha1` (what metalnet users have) or
//!   `ferrinet.dev/v1`; `kind` is `Network`, `NetworkInterface` or `LoadBalancer`.
//! - A document may also be a list of objects: a sequence (what `ferrinetctl get -o yaml`
//!   prints for several objects) or a Kubernetes `kind: List` with `items`.
//! - Unknown fields are errors. `status` is ignored, and so are the metadata fields that
//!   `get -o yaml` or kubectl print (`namespace`, `annotations`, `generation`,
//!   `creationTimestamp`); `metadata.resourceVersion` is used by `update -f` only.
//! - Every error names the file, the document (counted from 1) and the field's path:
//!   `net.yaml: document 2: spec.ips[0]: "10.0.0.300" is not an IP address`.
//!
//! [`convert`] turns a [`Document`] into the admin API's [`pb::Object`]; [`printed`] turns an
//! object back into a printable document.

pub mod convert;
pub mod printed;
#[cfg(test)]
mod proptests;
pub mod spec;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read as _;

use ferrinet_proto::node::v1 as pb;
use serde::de::{self, IgnoredAny};
use serde::{Deserialize, Deserializer};

use super::{CtlError, Kind};
pub use convert::{FieldError, to_proto};
pub use printed::{ObjectDoc, from_proto};
use spec::{LoadBalancerSpec, NetworkInterfaceSpec, NetworkSpec};

/// metalnet's API version, which existing manifests carry.
pub const API_VERSION_METALNET: &str = "networking.metalnet.ironcore.dev/v1alpha1";
/// ferrinet's own API version (what `get -o yaml` prints).
pub const API_VERSION_FERRINET: &str = "ferrinet.dev/v1";

/// A manifest file's name (for messages; `<stdin>` for `-`) and text.
#[derive(Clone, Debug)]
pub struct Source {
    /// The name used in messages.
    pub name: String,
    /// The whole text.
    pub text: String,
}

impl Source {
    /// Reads `arg`, a path or `-` for stdin.
    pub fn read(arg: &str) -> Result<Source, CtlError> {
        if arg == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| CtlError::Input(format!("<stdin>: cannot read: {e}")))?;
            return Ok(Source {
                name: "<stdin>".into(),
                text,
            });
        }
        let text = std::fs::read_to_string(arg)
            .map_err(|e| CtlError::Input(format!("{arg}: cannot read: {e}")))?;
        Ok(Source {
            name: arg.into(),
            text,
        })
    }
}

/// `metadata` as read (only `name`, `labels` and `resourceVersion` are used).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    /// Required for an object.
    #[serde(default)]
    pub name: Option<String>,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The version `update -f` requires to be current (absent or `""`: none).
    #[serde(default)]
    pub resource_version: ResourceVersion,
    #[serde(default, rename = "namespace")]
    _namespace: Ignored,
    #[serde(default, rename = "annotations")]
    _annotations: Ignored,
    #[serde(default, rename = "generation")]
    _generation: Ignored,
    #[serde(default, rename = "creationTimestamp")]
    _creation_timestamp: Ignored,
}

/// A field that is accepted and ignored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Ignored;

impl<'de> Deserialize<'de> for Ignored {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(d).map(|_| Ignored)
    }
}

impl Metadata {
    /// Metadata with a name and labels.
    pub fn named(name: &str, labels: BTreeMap<String, String>) -> Metadata {
        Metadata {
            name: Some(name.to_owned()),
            labels,
            ..Metadata::default()
        }
    }
}

/// `metadata.resourceVersion`: a number, or a string of digits as Kubernetes writes it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResourceVersion(pub Option<u64>);

impl<'de> Deserialize<'de> for ResourceVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = ResourceVersion;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a resource version (a number)")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<ResourceVersion, E> {
                Ok(ResourceVersion((n != 0).then_some(n)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<ResourceVersion, E> {
                if s.trim().is_empty() {
                    return Ok(ResourceVersion(None));
                }
                s.trim()
                    .parse::<u64>()
                    .map(|n| ResourceVersion((n != 0).then_some(n)))
                    .map_err(|_| E::invalid_value(de::Unexpected::Str(s), &self))
            }
            fn visit_unit<E: de::Error>(self) -> Result<ResourceVersion, E> {
                Ok(ResourceVersion(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// A document's spec, by kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Spec {
    /// `kind: Network`.
    Network(NetworkSpec),
    /// `kind: NetworkInterface`.
    NetworkInterface(NetworkInterfaceSpec),
    /// `kind: LoadBalancer`.
    LoadBalancer(LoadBalancerSpec),
}

/// One object of a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    /// As written (checked by [`parse`]).
    pub api_version: String,
    /// Metadata.
    pub metadata: Metadata,
    /// The spec.
    pub spec: Spec,
}

impl Document {
    /// The object's kind.
    pub fn kind(&self) -> Kind {
        match self.spec {
            Spec::Network(_) => Kind::Network,
            Spec::NetworkInterface(_) => Kind::NetworkInterface,
            Spec::LoadBalancer(_) => Kind::LoadBalancer,
        }
    }

    /// `metadata.name` (empty if absent).
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or("")
    }

    /// `spec.nodeName`, if the kind has one and it is set.
    pub fn node_name(&self) -> Option<&str> {
        match &self.spec {
            Spec::Network(_) => None,
            Spec::NetworkInterface(s) => s.node_name.as_deref(),
            Spec::LoadBalancer(s) => s.node_name.as_deref(),
        }
    }
}

/// A parsed and converted object of a file, with where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// `FILE: document N` (and `: items[I]` inside a list), for messages.
    pub origin: String,
    /// The document.
    pub doc: Document,
    /// What is sent to the node (with `metadata.resource_version` from the file, 0 if none).
    pub object: pb::Object,
}

impl Entry {
    /// `kind/name`.
    pub fn label(&self) -> String {
        self.doc.kind().object(self.doc.name())
    }
}

/// Parses a manifest file (YAML or JSON) into its objects, in file order; empty documents are
/// skipped. Any bad document fails the whole file: [`CtlError::Input`] naming the file, the
/// document and the field.
pub fn parse(source: &Source) -> Result<Vec<Entry>, CtlError> {
    let mut entries = Vec::new();
    for (i, de) in yaml_serde::Deserializer::from_str(&source.text).enumerate() {
        let at = format!("{}: document {}", source.name, i + 1);
        let top = Option::<TopLevel>::deserialize(de)
            .map_err(|e| CtlError::Input(format!("{at}: {e}")))?;
        let (docs, in_list) = match top {
            None => continue,
            Some(TopLevel::One(doc)) => (vec![*doc], None),
            Some(TopLevel::Many { items, field }) => (items, Some(field)),
        };
        for (j, doc) in docs.into_iter().enumerate() {
            let origin = match in_list {
                None => at.clone(),
                Some(field) => format!("{at}: {field}[{j}]"),
            };
            let object = check(&doc)
                .and_then(|()| to_proto(&doc))
                .map_err(|e| CtlError::Input(format!("{origin}: {e}")))?;
            entries.push(Entry {
                origin,
                doc,
                object,
            });
        }
    }
    Ok(entries)
}

fn check(doc: &Document) -> Result<(), FieldError> {
    if doc.api_version != API_VERSION_METALNET && doc.api_version != API_VERSION_FERRINET {
        return Err(FieldError::new(
            "apiVersion",
            format!(
                "{:?} is not supported: use {API_VERSION_METALNET} or {API_VERSION_FERRINET}",
                doc.api_version
            ),
        ));
    }
    match doc.metadata.name.as_deref() {
        None | Some("") => Err(FieldError::new("metadata.name", "required")),
        Some(_) => Ok(()),
    }
}

/// A document: one object, or a list of them.
enum TopLevel {
    One(Box<Document>),
    /// `field` is `items` for a `kind: List`, empty for a bare sequence.
    Many {
        items: Vec<Document>,
        field: &'static str,
    },
}

impl<'de> Deserialize<'de> for TopLevel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DocVisitor { top: true })
    }
}

/// An element of a list: an object, never a list.
struct Item(Document);

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match d.deserialize_map(DocVisitor { top: false })? {
            TopLevel::One(doc) => Ok(Item(*doc)),
            TopLevel::Many { .. } => Err(de::Error::custom("a list cannot contain a list")),
        }
    }
}

const OBJECT_FIELDS: &[&str] = &["apiVersion", "kind", "metadata", "spec", "status"];
const LIST_FIELDS: &[&str] = &["apiVersion", "kind", "metadata", "items"];

/// Reads a document's map; the spec's type follows `kind`, so the path of a bad field inside
/// `spec` is exact when `kind` comes first (as it always does in practice; otherwise the spec
/// is buffered and its errors name `spec` only).
struct DocVisitor {
    top: bool,
}

enum SpecSlot {
    Typed(Box<Spec>),
    Buffered(yaml_serde::Value),
}

impl<'de> de::Visitor<'de> for DocVisitor {
    type Value = TopLevel;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.top {
            f.write_str("an object {apiVersion, kind, metadata, spec} or a list of them")
        } else {
            f.write_str("an object {apiVersion, kind, metadata, spec}")
        }
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<TopLevel, A::Error> {
        if !self.top {
            return Err(de::Error::invalid_type(de::Unexpected::Seq, &self));
        }
        let mut items = Vec::new();
        while let Some(Item(doc)) = seq.next_element()? {
            items.push(doc);
        }
        Ok(TopLevel::Many { items, field: "" })
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<TopLevel, A::Error> {
        let mut api_version: Option<String> = None;
        let mut kind: Option<DocKind> = None;
        let mut metadata: Option<Metadata> = None;
        let mut spec: Option<SpecSlot> = None;
        let mut items: Option<Vec<Document>> = None;
        while let Some(key) = map.next_key::<String>()? {
            let is_list = kind == Some(DocKind::List);
            match key.as_str() {
                "apiVersion" => {
                    if api_version.is_some() {
                        return Err(de::Error::duplicate_field("apiVersion"));
                    }
                    api_version = Some(map.next_value()?);
                }
                "kind" => {
                    if kind.is_some() {
                        return Err(de::Error::duplicate_field("kind"));
                    }
                    let k: String = map.next_value()?;
                    kind = Some(DocKind::parse(&k, self.top).map_err(de::Error::custom)?);
                }
                "metadata" => {
                    if metadata.is_some() {
                        return Err(de::Error::duplicate_field("metadata"));
                    }
                    metadata = Some(map.next_value()?);
                }
                "spec" if !is_list => {
                    if spec.is_some() {
                        return Err(de::Error::duplicate_field("spec"));
                    }
                    spec = Some(match kind {
                        Some(DocKind::Object(k)) => {
                            SpecSlot::Typed(Box::new(next_spec(&mut map, k)?))
                        }
                        _ => SpecSlot::Buffered(map.next_value()?),
                    });
                }
                "status" if !is_list => {
                    map.next_value::<IgnoredAny>()?;
                }
                "items" if self.top && kind.is_none_or(|k| k == DocKind::List) => {
                    if items.is_some() {
                        return Err(de::Error::duplicate_field("items"));
                    }
                    let list: Vec<Item> = map.next_value()?;
                    items = Some(list.into_iter().map(|i| i.0).collect());
                }
                other => {
                    let fields = if is_list { LIST_FIELDS } else { OBJECT_FIELDS };
                    return Err(de::Error::unknown_field(other, fields));
                }
            }
        }
        let kind = kind.ok_or_else(|| de::Error::missing_field("kind"))?;
        let kind = match kind {
            DocKind::List => {
                if spec.is_some() {
                    return Err(de::Error::unknown_field("spec", LIST_FIELDS));
                }
                let items = items.ok_or_else(|| de::Error::missing_field("items"))?;
                return Ok(TopLevel::Many {
                    items,
                    field: "items",
                });
            }
            DocKind::Object(k) => k,
        };
        if items.is_some() {
            return Err(de::Error::unknown_field("items", OBJECT_FIELDS));
        }
        let api_version = api_version.ok_or_else(|| de::Error::missing_field("apiVersion"))?;
        let metadata = metadata.ok_or_else(|| de::Error::missing_field("metadata"))?;
        let spec = match spec.ok_or_else(|| de::Error::missing_field("spec"))? {
            SpecSlot::Typed(s) => *s,
            SpecSlot::Buffered(v) => {
                spec_from_value(v, kind).map_err(|e| de::Error::custom(format!("spec: {e}")))?
            }
        };
        Ok(TopLevel::One(Box::new(Document {
            api_version,
            metadata,
            spec,
        })))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DocKind {
    Object(Kind),
    List,
}

impl DocKind {
    fn parse(s: &str, top: bool) -> Result<DocKind, String> {
        match s {
            "Network" => Ok(DocKind::Object(Kind::Network)),
            "NetworkInterface" => Ok(DocKind::Object(Kind::NetworkInterface)),
            "LoadBalancer" => Ok(DocKind::Object(Kind::LoadBalancer)),
            "List" if top => Ok(DocKind::List),
            _ => Err(format!(
                "kind: {s:?} is not supported: use Network, NetworkInterface or LoadBalancer"
            )),
        }
    }
}

fn next_spec<'de, A: de::MapAccess<'de>>(map: &mut A, kind: Kind) -> Result<Spec, A::Error> {
    Ok(match kind {
        Kind::Network => Spec::Network(map.next_value()?),
        Kind::NetworkInterface => Spec::NetworkInterface(map.next_value()?),
        Kind::LoadBalancer => Spec::LoadBalancer(map.next_value()?),
    })
}

fn spec_from_value(v: yaml_serde::Value, kind: Kind) -> Result<Spec, yaml_serde::Error> {
    Ok(match kind {
        Kind::Network => Spec::Network(yaml_serde::from_value(v)?),
        Kind::NetworkInterface => Spec::NetworkInterface(yaml_serde::from_value(v)?),
        Kind::LoadBalancer => Spec::LoadBalancer(yaml_serde::from_value(v)?),
    })
}
