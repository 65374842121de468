//! Region manifest files: YAML or JSON, one or more documents, each
//! `{apiVersion, kind, metadata: {name, namespace, labels}, spec}` in the seeds' shape.
//!
//! - `apiVersion`: `networking.ferrinet.dev/v1alpha1` (what `get -o yaml` prints),
//!   `networking.openkcm.dev/v1alpha1` or `core.apinet.ironcore.dev/v1alpha1`, the group in any
//!   case. The node's versions (metalnet's, `ferrinet.dev/v1`) are refused with a hint to drop
//!   `--api`.
//! - `kind`: `Network`, `NetworkInterface`, `VirtualIP`, `PublicPrefix`, `NATGateway`,
//!   `LoadBalancer`, `NetworkPolicy`, `Node`; a document may also be a sequence of objects or a
//!   `kind: List` with `items`, as for the node.
//! - Unknown fields are errors naming the file, the document and the field's path; `status`
//!   is ignored, and so are the metadata fields the API sets (`resourceVersion`, `generation`,
//!   `uid`, `creationTimestamp`) and `annotations`. `spec` may be left out (an empty spec).
//! - The namespace is `metadata.namespace`, else `-n`, else `default`; a document naming another
//!   namespace than an explicit `-n` is refused, as kubectl does. Nodes have none.

use std::collections::BTreeMap;
use std::fmt;

use ferrinet_proto::api::v1 as pb;
use serde::de::{self, IgnoredAny};
use serde::{Deserialize, Deserializer};

use super::RegionKind;
use super::convert::to_proto;
use super::spec::{Ignored, Spec};
use crate::ctl::CtlError;
use crate::ctl::manifest::{FieldError, Source};

/// The API version `get -o yaml` prints.
pub const API_VERSION: &str = "networking.ferrinet.dev/v1alpha1";

/// The groups accepted (compared case-insensitively), all at version `v1alpha1`.
pub const API_GROUPS: [&str; 3] = [
    "networking.ferrinet.dev",
    "networking.openkcm.dev",
    "core.apinet.ironcore.dev",
];

/// The namespace used when the CLI talks to the API without one.
pub const DEFAULT_NAMESPACE: &str = "default";

/// `metadata` as read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    /// Required.
    #[serde(default)]
    pub name: Option<String>,
    /// Absent: `-n`, else `default` (nodes: none).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Set by the API; `apply` uses the version it reads itself.
    #[serde(default)]
    pub resource_version: Ignored,
    /// Set by the API.
    #[serde(default)]
    pub generation: Ignored,
    /// Set by the API.
    #[serde(default)]
    pub uid: Ignored,
    /// Set by the API.
    #[serde(default)]
    pub creation_timestamp: Ignored,
    /// Not kept by the API.
    #[serde(default)]
    pub annotations: Ignored,
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

/// Where a document's namespace comes from when it has none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamespaceDefault {
    /// `-n`, or [`DEFAULT_NAMESPACE`].
    pub namespace: String,
    /// True if `-n` was given: a document naming another namespace is refused.
    pub explicit: bool,
}

impl Default for NamespaceDefault {
    fn default() -> Self {
        NamespaceDefault {
            namespace: DEFAULT_NAMESPACE.to_owned(),
            explicit: false,
        }
    }
}

impl NamespaceDefault {
    /// From `-n` (absent: [`DEFAULT_NAMESPACE`], not explicit).
    pub fn from_flag(flag: Option<&str>) -> NamespaceDefault {
        match flag {
            Some(ns) => NamespaceDefault {
                namespace: ns.to_owned(),
                explicit: true,
            },
            None => NamespaceDefault::default(),
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
    /// What is sent to the API (namespace resolved, resource version 0).
    pub object: pb::Object,
}

impl Entry {
    /// The object's kind.
    pub fn kind(&self) -> RegionKind {
        self.doc.spec.kind()
    }

    /// The key of the object.
    pub fn key(&self) -> pb::ObjectKey {
        super::object_key(&self.object).unwrap_or_default()
    }

    /// `kind/namespace/name`.
    pub fn label(&self) -> String {
        super::object_label(&self.object)
    }
}

/// Parses a manifest file (YAML or JSON) into its objects, in file order; empty documents are
/// skipped. Any bad document fails the whole file: [`CtlError::Input`] naming the file, the
/// document and the field.
pub fn parse(source: &Source, ns: &NamespaceDefault) -> Result<Vec<Entry>, CtlError> {
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
            let object = check(&doc, ns)
                .and_then(|namespace| to_proto(&doc, &namespace))
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

/// Checks `apiVersion`, the name and the namespace; returns the namespace to use.
pub fn check(doc: &Document, ns: &NamespaceDefault) -> Result<String, FieldError> {
    check_api_version(&doc.api_version)?;
    let kind = doc.spec.kind();
    match doc.metadata.name.as_deref() {
        None | Some("") => return Err(FieldError::new("metadata.name", "required")),
        Some(name) => dns_label("metadata.name", name)?,
    }
    let written = doc.metadata.namespace.as_deref().filter(|n| !n.is_empty());
    if !kind.namespaced() {
        return match written {
            Some(n) => Err(FieldError::new(
                "metadata.namespace",
                format!("{n:?}: a {} is not namespaced", kind.manifest_kind()),
            )),
            None => Ok(String::new()),
        };
    }
    let namespace = match written {
        Some(n) if ns.explicit && n != ns.namespace => {
            return Err(FieldError::new(
                "metadata.namespace",
                format!(
                    "{n:?} does not match --namespace {:?} (give -n {n} or leave one out)",
                    ns.namespace
                ),
            ));
        }
        Some(n) => n.to_owned(),
        None => ns.namespace.clone(),
    };
    dns_label("metadata.namespace", &namespace)?;
    Ok(namespace)
}

fn check_api_version(v: &str) -> Result<(), FieldError> {
    let node_versions = [
        crate::ctl::manifest::API_VERSION_METALNET,
        crate::ctl::manifest::API_VERSION_FERRINET,
    ];
    if node_versions.iter().any(|n| n.eq_ignore_ascii_case(v)) {
        return Err(FieldError::new(
            "apiVersion",
            format!(
                "{v:?} is a node's manifest: drop --api to apply it to a node (ferrinetctl --node ADDR)"
            ),
        ));
    }
    let ok = v.rsplit_once('/').is_some_and(|(group, version)| {
        version == "v1alpha1" && API_GROUPS.iter().any(|g| g.eq_ignore_ascii_case(group))
    });
    if ok {
        return Ok(());
    }
    let accepted: Vec<String> = API_GROUPS.iter().map(|g| format!("{g}/v1alpha1")).collect();
    Err(FieldError::new(
        "apiVersion",
        format!("{v:?} is not supported: use {}", accepted.join(", ")),
    ))
}

/// A DNS label: 1 to 63 of `[a-z0-9-]`, starting and ending alphanumeric.
pub fn dns_label(path: &str, s: &str) -> Result<(), FieldError> {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| alnum(c) || c == '-')
        && s.starts_with(alnum)
        && s.ends_with(alnum);
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            path,
            format!(
                "{s:?} is not a DNS label (1 to 63 of a-z, 0-9 and '-', starting and ending with a letter or digit)"
            ),
        ))
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DocKind {
    Object(RegionKind),
    List,
}

fn doc_kind(s: &str, top: bool) -> Result<DocKind, String> {
    if s == "List" && top {
        return Ok(DocKind::List);
    }
    RegionKind::from_manifest_kind(s)
        .map(DocKind::Object)
        .ok_or_else(|| {
            let kinds: Vec<&str> = RegionKind::APPLY_ORDER
                .iter()
                .map(|k| k.manifest_kind())
                .collect();
            format!("kind: {s:?} is not supported: use {}", kinds.join(", "))
        })
}

enum SpecSlot {
    Typed(Box<Spec>),
    Buffered(yaml_serde::Value),
}

/// Reads a document's map. The spec's type follows `kind`, so the path of a bad field inside
/// `spec` is exact when `apiVersion` and `kind` come first (as they do in practice; otherwise
/// the spec is buffered and its errors name `spec` only).
struct DocVisitor {
    top: bool,
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
            let duplicate = match key.as_str() {
                "apiVersion" => api_version.is_some(),
                "kind" => kind.is_some(),
                "metadata" => metadata.is_some(),
                "spec" => spec.is_some(),
                "items" => items.is_some(),
                _ => false,
            };
            if duplicate {
                return Err(de::Error::custom(format!("duplicate field `{key}`")));
            }
            match key.as_str() {
                "apiVersion" => api_version = Some(map.next_value()?),
                "kind" => {
                    let k: String = map.next_value()?;
                    kind = Some(doc_kind(&k, self.top).map_err(de::Error::custom)?);
                }
                "metadata" => metadata = Some(map.next_value()?),
                "spec" if !is_list => {
                    // A spec of another API (the node's) is not read as ours: its apiVersion
                    // is the error to report, wherever it comes.
                    let foreign = api_version
                        .as_deref()
                        .is_none_or(|v| check_api_version(v).is_err());
                    spec = Some(match kind {
                        Some(DocKind::Object(k)) if !foreign => {
                            SpecSlot::Typed(Box::new(next_spec(&mut map, k)?))
                        }
                        _ => SpecSlot::Buffered(map.next_value()?),
                    });
                }
                "status" if !is_list => {
                    map.next_value::<IgnoredAny>()?;
                }
                "items" if self.top && kind.is_none_or(|k| k == DocKind::List) => {
                    let list: Vec<Item> = map.next_value()?;
                    items = Some(list.into_iter().map(|i| i.0).collect());
                }
                other => {
                    let fields = if is_list { LIST_FIELDS } else { OBJECT_FIELDS };
                    return Err(de::Error::unknown_field(other, fields));
                }
            }
        }
        let kind = match kind.ok_or_else(|| de::Error::missing_field("kind"))? {
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
        let spec = match spec {
            None => Spec::empty(kind),
            Some(SpecSlot::Typed(s)) => *s,
            Some(SpecSlot::Buffered(_)) if check_api_version(&api_version).is_err() => {
                Spec::empty(kind)
            }
            Some(SpecSlot::Buffered(v)) => {
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

fn next_spec<'de, A: de::MapAccess<'de>>(map: &mut A, kind: RegionKind) -> Result<Spec, A::Error> {
    use RegionKind as K;
    Ok(match kind {
        K::Network => Spec::Network(map.next_value()?),
        K::NetworkInterface => Spec::NetworkInterface(map.next_value()?),
        K::VirtualIp => Spec::VirtualIp(map.next_value()?),
        K::PublicPrefix => Spec::PublicPrefix(map.next_value()?),
        K::NatGateway => Spec::NatGateway(map.next_value()?),
        K::LoadBalancer => Spec::LoadBalancer(map.next_value()?),
        K::NetworkPolicy => Spec::NetworkPolicy(map.next_value()?),
        K::Node => Spec::Node(map.next_value()?),
    })
}

fn spec_from_value(v: yaml_serde::Value, kind: RegionKind) -> Result<Spec, yaml_serde::Error> {
    use RegionKind as K;
    Ok(match kind {
        K::Network => Spec::Network(yaml_serde::from_value(v)?),
        K::NetworkInterface => Spec::NetworkInterface(yaml_serde::from_value(v)?),
        K::VirtualIp => Spec::VirtualIp(yaml_serde::from_value(v)?),
        K::PublicPrefix => Spec::PublicPrefix(yaml_serde::from_value(v)?),
        K::NatGateway => Spec::NatGateway(yaml_serde::from_value(v)?),
        K::LoadBalancer => Spec::LoadBalancer(yaml_serde::from_value(v)?),
        K::NetworkPolicy => Spec::NetworkPolicy(yaml_serde::from_value(v)?),
        K::Node => Spec::Node(yaml_serde::from_value(v)?),
    })
}
