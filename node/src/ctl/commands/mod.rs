//! The commands of `ferrinetctl`, over any [`NodeAdminClient`] transport.
//!
//! [`Ctl`] wraps a client and the node's address (for messages). Each command writes what it
//! did to `out` and returns the first failure as a [`CtlError`], whose
//! [`exit_code`](CtlError::exit_code) is the process's exit status:
//!
//! ```no_run
//! # async fn demo() -> Result<(), ferrinet_node::ctl::CtlError> {
//! use std::time::Duration;
//! use ferrinet_node::ctl::{CtlError, client, commands::Ctl, manifest};
//!
//! let addr: client::NodeAddr = "unix:/tmp/node.sock".parse().map_err(CtlError::Input)?;
//! let files = vec![manifest::parse(&manifest::Source::read("objects.yaml")?)?];
//! let channel_client = client::connect(&addr, Duration::from_secs(10)).await?;
//! // Or any other transport, e.g. the daemon's service in process:
//! // `NodeAdminClient::new(NodeAdminServer::new(service))`.
//! let mut ctl = Ctl::new(channel_client, addr.to_string());
//! let mut out = Vec::new();
//! ctl.apply(&files, &mut out).await?; // "network/net-a created\n..."
//! # Ok(()) }
//! ```

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::io::Write;

use ferrinet_proto::node::v1 as pb;
use ferrinet_proto::node::v1::node_admin_client::NodeAdminClient;
use pb::object::Object as O;
use tonic::codegen::{Body, Bytes, StdError};

use super::manifest::{Entry, from_proto};
use super::output;
use super::{CountersFormat, CtlError, DocFormat, GetFormat, Kind, WatchFormat, object_label};

/// What a [`NodeAdminClient`] needs of its transport (a tonic `Channel`, or any other
/// `GrpcService`, e.g. an in-process server).
pub trait Transport:
    tonic::client::GrpcService<
        tonic::body::Body,
        Error: Into<StdError>,
        ResponseBody: Body<Data = Bytes, Error: Into<StdError> + Send> + Send + 'static,
    >
{
}

impl<T> Transport for T where
    T: tonic::client::GrpcService<
            tonic::body::Body,
            Error: Into<StdError>,
            ResponseBody: Body<Data = Bytes, Error: Into<StdError> + Send> + Send + 'static,
        >
{
}

/// What `apply` did to one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// It did not exist.
    Created,
    /// Its spec or labels changed.
    Configured,
    /// Spec and labels were already as in the file: nothing was sent.
    Unchanged,
}

impl Applied {
    fn word(self) -> &'static str {
        match self {
            Applied::Created => "created",
            Applied::Configured => "configured",
            Applied::Unchanged => "unchanged",
        }
    }
}

/// The entries of a file in the order `apply`/`create`/`update` send them: networks, then
/// load balancers, then interfaces, each kind in file order.
pub fn apply_order(entries: &[Entry]) -> Vec<&Entry> {
    let mut v: Vec<&Entry> = entries.iter().collect();
    v.sort_by_key(|e| e.doc.kind().apply_rank());
    v
}

/// The entries of a file in the order `delete -f` deletes them: interfaces, then load
/// balancers, then networks, each kind in file order.
pub fn delete_order(entries: &[Entry]) -> Vec<&Entry> {
    let mut v: Vec<&Entry> = entries.iter().collect();
    v.sort_by_key(|e| std::cmp::Reverse(e.doc.kind().apply_rank()));
    v
}

fn object_ref(kind: Kind, name: &str) -> pb::ObjectRef {
    pb::ObjectRef {
        kind: kind.proto() as i32,
        name: name.to_owned(),
    }
}

fn metadata_mut(obj: &mut pb::Object) -> Option<&mut pb::Metadata> {
    match obj.object.as_mut()? {
        O::Network(n) => n.metadata.as_mut(),
        O::NetworkInterface(n) => n.metadata.as_mut(),
        O::LoadBalancer(l) => l.metadata.as_mut(),
    }
}

fn resource_version(obj: &pb::Object) -> u64 {
    let m = match obj.object.as_ref() {
        Some(O::Network(n)) => n.metadata.as_ref(),
        Some(O::NetworkInterface(n)) => n.metadata.as_ref(),
        Some(O::LoadBalancer(l)) => l.metadata.as_ref(),
        None => None,
    };
    m.map_or(0, |m| m.resource_version)
}

/// True if both objects are of the same kind with equal specs and labels.
pub fn same_spec_and_labels(a: &pb::Object, b: &pb::Object) -> bool {
    fn labels(m: &Option<pb::Metadata>) -> Option<&std::collections::HashMap<String, String>> {
        m.as_ref().map(|m| &m.labels).filter(|l| !l.is_empty())
    }
    match (a.object.as_ref(), b.object.as_ref()) {
        (Some(O::Network(x)), Some(O::Network(y))) => {
            x.spec == y.spec && labels(&x.metadata) == labels(&y.metadata)
        }
        (Some(O::NetworkInterface(x)), Some(O::NetworkInterface(y))) => {
            x.spec == y.spec && labels(&x.metadata) == labels(&y.metadata)
        }
        (Some(O::LoadBalancer(x)), Some(O::LoadBalancer(y))) => {
            x.spec == y.spec && labels(&x.metadata) == labels(&y.metadata)
        }
        _ => false,
    }
}

/// A client of one node, and its address for messages.
pub struct Ctl<T> {
    client: NodeAdminClient<T>,
    node: String,
}

impl<T> std::fmt::Debug for Ctl<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctl")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl<T: Transport> Ctl<T> {
    /// Wraps `client`; `node` is the address named in "cannot reach the node at ..." messages.
    pub fn new(client: NodeAdminClient<T>, node: impl Into<String>) -> Ctl<T> {
        Ctl {
            client,
            node: node.into(),
        }
    }

    /// The client, for calls no command makes.
    pub fn client(&mut self) -> &mut NodeAdminClient<T> {
        &mut self.client
    }

    fn fail(&self, status: &tonic::Status, what: &str) -> CtlError {
        CtlError::from_status(status, what, &self.node)
    }

    /// Get of one object.
    pub async fn fetch(&mut self, kind: Kind, name: &str) -> Result<pb::Object, CtlError> {
        let req = pb::GetRequest {
            r#ref: Some(object_ref(kind, name)),
        };
        match self.client.get(req).await {
            Ok(r) => Ok(r.into_inner()),
            Err(s) => Err(self.fail(&s, &kind.object(name))),
        }
    }

    /// List of every object of `kind` (every kind if `None`), sorted by kind and name.
    pub async fn list(&mut self, kind: Option<Kind>) -> Result<Vec<pb::Object>, CtlError> {
        let req = pb::ListRequest {
            kind: kind.map_or(0, |k| k.proto() as i32),
        };
        let what = format!("get {}", kind.map_or("all", Kind::name));
        let mut objects = match self.client.list(req).await {
            Ok(r) => r.into_inner().objects,
            Err(s) => return Err(self.fail(&s, &what)),
        };
        objects.sort_by(|a, b| {
            let key = |o: &pb::Object| {
                super::kind_and_name(o).map(|(k, n)| (k.apply_rank(), n.to_owned()))
            };
            key(a).cmp(&key(b))
        });
        Ok(objects)
    }

    /// The node's status.
    pub async fn node_status(&mut self) -> Result<pb::NodeStatusResponse, CtlError> {
        match self.client.node_status(pb::NodeStatusRequest {}).await {
            Ok(r) => Ok(r.into_inner()),
            Err(s) => Err(self.fail(&s, "status")),
        }
    }

    /// `get KIND [NAME] [-o FORMAT]`; returns how many objects were printed (the caller says
    /// "No resources found." on stderr for an empty table). `now_unix_ms` is for the AGE column.
    pub async fn get(
        &mut self,
        kind: Kind,
        name: Option<&str>,
        format: GetFormat,
        now_unix_ms: i64,
        out: &mut impl Write,
    ) -> Result<usize, CtlError> {
        let (objects, single) = match name {
            Some(name) => (vec![self.fetch(kind, name).await?], true),
            None => (self.list(Some(kind)).await?, false),
        };
        let text = match format {
            GetFormat::Table | GetFormat::Wide if objects.is_empty() => String::new(),
            GetFormat::Table => output::table(kind, &objects, false, now_unix_ms),
            GetFormat::Wide => output::table(kind, &objects, true, now_unix_ms),
            GetFormat::Json | GetFormat::Yaml => {
                let docs = output::docs(&objects);
                match (format, single, docs.first()) {
                    (GetFormat::Json, true, Some(d)) => output::json(d)?,
                    (GetFormat::Json, _, _) => output::json(&docs)?,
                    (_, true, Some(d)) => output::yaml(d)?,
                    _ => output::yaml(&docs)?,
                }
            }
        };
        out.write_all(text.as_bytes())?;
        Ok(objects.len())
    }

    /// Fails with [`CtlError::Input`] if an entry's `spec.nodeName` is not this node's name
    /// (asks the node only if some entry names a node).
    pub async fn check_node_names<'a>(
        &mut self,
        entries: impl IntoIterator<Item = &'a Entry>,
    ) -> Result<(), CtlError> {
        let mut node_name: Option<String> = None;
        for e in entries {
            let Some(wanted) = e.doc.node_name() else {
                continue;
            };
            if node_name.is_none() {
                node_name = Some(self.node_status().await?.node_name);
            }
            let this = node_name.as_deref().unwrap_or_default();
            if wanted != this {
                return Err(CtlError::Input(format!(
                    "{}: spec.nodeName {wanted:?} is not this node ({this:?})",
                    e.origin
                )));
            }
        }
        Ok(())
    }

    /// `apply -f`: creates each object, or updates it (with the resource version just read)
    /// if its spec or labels differ; prints `network/NAME created|configured|unchanged`.
    /// Files in order, each in [`apply_order`].
    pub async fn apply(
        &mut self,
        files: &[Vec<Entry>],
        out: &mut impl Write,
    ) -> Result<(), CtlError> {
        self.check_node_names(files.iter().flatten()).await?;
        for entries in files {
            for e in apply_order(entries) {
                let applied = self.apply_one(e).await?;
                writeln!(out, "{} {}", e.label(), applied.word())?;
            }
        }
        Ok(())
    }

    /// Applies one object.
    pub async fn apply_one(&mut self, e: &Entry) -> Result<Applied, CtlError> {
        let label = e.label();
        let existing = match self.fetch(e.doc.kind(), e.doc.name()).await {
            Ok(o) => o,
            Err(CtlError::NotFound { .. }) => {
                self.send_create(e.object.clone(), &label).await?;
                return Ok(Applied::Created);
            }
            Err(err) => return Err(err),
        };
        if same_spec_and_labels(&existing, &e.object) {
            return Ok(Applied::Unchanged);
        }
        let mut obj = e.object.clone();
        if let Some(m) = metadata_mut(&mut obj) {
            m.resource_version = resource_version(&existing);
        }
        self.send_update(obj, &label).await?;
        Ok(Applied::Configured)
    }

    async fn send_create(&mut self, obj: pb::Object, label: &str) -> Result<pb::Object, CtlError> {
        let req = pb::CreateRequest { object: Some(obj) };
        match self.client.create(req).await {
            Ok(r) => Ok(r.into_inner()),
            Err(s) => Err(self.fail(&s, label)),
        }
    }

    async fn send_update(&mut self, obj: pb::Object, label: &str) -> Result<pb::Object, CtlError> {
        let req = pb::UpdateRequest { object: Some(obj) };
        match self.client.update(req).await {
            Ok(r) => Ok(r.into_inner()),
            Err(s) => Err(self.fail(&s, label)),
        }
    }

    /// `create -f`: creates every object (ALREADY_EXISTS: exit 4); prints `KIND/NAME created`.
    pub async fn create(
        &mut self,
        files: &[Vec<Entry>],
        out: &mut impl Write,
    ) -> Result<(), CtlError> {
        self.check_node_names(files.iter().flatten()).await?;
        for entries in files {
            for e in apply_order(entries) {
                self.send_create(e.object.clone(), &e.label()).await?;
                writeln!(out, "{} created", e.label())?;
            }
        }
        Ok(())
    }

    /// `create KIND NAME --flags`: creates `obj`; prints `KIND/NAME created`, or with
    /// `format` JSON/YAML the object as the node returned it.
    pub async fn create_object(
        &mut self,
        obj: pb::Object,
        format: DocFormat,
        out: &mut impl Write,
    ) -> Result<(), CtlError> {
        let label = object_label(&obj);
        let created = self.send_create(obj, &label).await?;
        write_object(&created, format, &format!("{label} created\n"), out)
    }

    /// `update -f`: replaces every object's spec and labels (NOT_FOUND: exit 4), requiring the
    /// file's `metadata.resourceVersion` to be current if it has one; prints
    /// `KIND/NAME configured`.
    pub async fn update(
        &mut self,
        files: &[Vec<Entry>],
        out: &mut impl Write,
    ) -> Result<(), CtlError> {
        self.check_node_names(files.iter().flatten()).await?;
        for entries in files {
            for e in apply_order(entries) {
                self.send_update(e.object.clone(), &e.label()).await?;
                writeln!(out, "{} configured", e.label())?;
            }
        }
        Ok(())
    }

    /// `delete KIND NAME...`: prints `KIND/NAME deleted` (the node finishes the cleanup in
    /// the background: the object shows phase Deleting until then).
    pub async fn delete(
        &mut self,
        kind: Kind,
        names: &[String],
        ignore_not_found: bool,
        out: &mut impl Write,
    ) -> Result<(), CtlError> {
        for name in names {
            self.delete_one(kind, name, ignore_not_found, out).await?;
        }
        Ok(())
    }

    async fn delete_one(
        &mut self,
        kind: Kind,
        name: &str,
        ignore_not_found: bool,
        out: &mut impl Write,
    ) -> Result<(), CtlError> {
        let req = pb::DeleteRequest {
            r#ref: Some(object_ref(kind, name)),
            resource_version: 0,
        };
        match self.client.delete(req).await {
            Ok(_) => writeln!(out, "{} deleted", kind.object(name))?,
            Err(s) => match self.fail(&s, &kind.object(name)) {
                CtlError::NotFound { .. } if ignore_not_found => {}
                err => return Err(err),
            },
        }
        Ok(())
    }

    /// `delete -f`: deletes the objects of each file in [`delete_order`].
    pub async fn delete_files(
        &mut self,
        files: &[Vec<Entry>],
        ignore_not_found: bool,
        out: &mut impl Write,
    ) -> Result<(), CtlError> {
        self.check_node_names(files.iter().flatten()).await?;
        for entries in files {
            for e in delete_order(entries) {
                self.delete_one(e.doc.kind(), e.doc.name(), ignore_not_found, out)
                    .await?;
            }
        }
        Ok(())
    }

    /// `watch [KIND]`: the current objects (as ADDED), then every change, one line each
    /// (flushed), until `stop` completes or `count` events were printed (then `Ok`). The node
    /// ending the stream is [`CtlError::Unreachable`].
    pub async fn watch(
        &mut self,
        kind: Option<Kind>,
        format: WatchFormat,
        count: Option<u64>,
        stop: impl Future<Output = ()>,
        out: &mut impl Write,
    ) -> Result<(), CtlError> {
        let req = pb::WatchRequest {
            kind: kind.map_or(0, |k| k.proto() as i32),
            from_revision: 0,
        };
        let mut stream = match self.client.watch(req).await {
            Ok(r) => r.into_inner(),
            Err(s) => return Err(self.fail(&s, "watch")),
        };
        tokio::pin!(stop);
        let mut seen = 0u64;
        while count.is_none_or(|c| seen < c) {
            let next = tokio::select! {
                () = &mut stop => return Ok(()),
                next = stream.message() => next,
            };
            let ev = match next {
                Ok(Some(ev)) => ev,
                Ok(None) => {
                    return Err(CtlError::Unreachable {
                        node: self.node.clone(),
                        cause: "the node ended the watch".into(),
                    });
                }
                Err(s) => return Err(self.fail(&s, "watch")),
            };
            let line = match format {
                WatchFormat::Text => output::watch_line(&ev),
                WatchFormat::Json => output::watch_json(&ev)?,
            };
            out.write_all(line.as_bytes())?;
            out.flush()?;
            seen += 1;
        }
        Ok(())
    }

    /// `status`: the node's status as a block, JSON or YAML.
    pub async fn status(
        &mut self,
        format: DocFormat,
        out: &mut impl Write,
    ) -> Result<(), CtlError> {
        let s = self.node_status().await?;
        let text = match format {
            DocFormat::Text => output::status_text(&s),
            DocFormat::Json => output::json(&output::status_doc(&s))?,
            DocFormat::Yaml => output::yaml(&output::status_doc(&s))?,
        };
        out.write_all(text.as_bytes())?;
        Ok(())
    }
}

impl<T: Transport> Ctl<T> {
    /// `routes VNI [-o FORMAT]`: the dataplane's table of `vni`.
    pub async fn routes(
        &mut self,
        vni: u32,
        format: DocFormat,
        out: &mut impl Write,
    ) -> Result<(), CtlError> {
        let r = match self
            .client
            .dataplane_routes(pb::DataplaneRoutesRequest { vni })
            .await
        {
            Ok(r) => r.into_inner(),
            Err(s) => return Err(self.fail(&s, "routes")),
        };
        let text = match format {
            DocFormat::Text => output::routes_table(&r.routes),
            DocFormat::Json => output::json(&output::routes_doc(&r.routes))?,
            DocFormat::Yaml => output::yaml(&output::routes_doc(&r.routes))?,
        };
        out.write_all(text.as_bytes())?;
        Ok(())
    }
}

impl<T: Transport> Ctl<T> {
    /// `counters [-o wide|json]`: the dataplane's packet counters, asked live. A dataplane
    /// without them (dpservice) is refused by the node (exit 2).
    pub async fn counters(
        &mut self,
        format: CountersFormat,
        out: &mut impl Write,
    ) -> Result<(), CtlError> {
        let c = match self
            .client
            .get_packet_counters(pb::GetPacketCountersRequest {})
            .await
        {
            Ok(r) => r.into_inner(),
            Err(s) => return Err(self.fail(&s, "counters")),
        };
        let text = match format {
            CountersFormat::Table => output::counters::counters_text(&c, false),
            CountersFormat::Wide => output::counters::counters_text(&c, true),
            CountersFormat::Json => output::json(&output::counters::counters_doc(&c))?,
        };
        out.write_all(text.as_bytes())?;
        Ok(())
    }
}

/// Prints `obj` as a document (JSON/YAML), or `line` for [`DocFormat::Text`].
pub fn write_object(
    obj: &pb::Object,
    format: DocFormat,
    line: &str,
    out: &mut impl Write,
) -> Result<(), CtlError> {
    let text = match (format, from_proto(obj)) {
        (DocFormat::Json, Some(d)) => output::json(&d)?,
        (DocFormat::Yaml, Some(d)) => output::yaml(&d)?,
        _ => line.to_owned(),
    };
    out.write_all(text.as_bytes())?;
    Ok(())
}

/// `create --dry-run`: prints what would be created (`KIND/NAME created (dry run)` per object,
/// or with JSON/YAML the object, or the list of them, as `get` prints it) without contacting
/// the node. `spec.nodeName` is not checked.
pub fn dry_run(
    objects: &[&pb::Object],
    format: DocFormat,
    out: &mut impl Write,
) -> Result<(), CtlError> {
    let docs: Vec<_> = objects.iter().filter_map(|o| from_proto(o)).collect();
    let text = match (format, docs.as_slice()) {
        (DocFormat::Text, _) => objects
            .iter()
            .map(|o| format!("{} created (dry run)\n", object_label(o)))
            .collect(),
        (DocFormat::Json, [d]) => output::json(d)?,
        (DocFormat::Json, _) => output::json(&docs)?,
        (DocFormat::Yaml, [d]) => output::yaml(d)?,
        (DocFormat::Yaml, _) => output::yaml(&docs)?,
    };
    out.write_all(text.as_bytes())?;
    Ok(())
}
