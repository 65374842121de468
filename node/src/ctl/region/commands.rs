//! The commands of `ferrinetctl --api`, over any [`RegionApiClient`] transport.
//!
//! [`RegionCtl`] wraps a client and the API's address (for messages). Each command writes what
//! it did to `out` and returns the first failure as a [`CtlError`] (exit status
//! [`CtlError::exit_code`], as for the node). Objects are named `kind/namespace/name` in
//! messages (`kind/name` for nodes).

use std::future::Future;
use std::io::Write;

use ferrinet_proto::api::v1 as pb;
use ferrinet_proto::api::v1::region_api_client::RegionApiClient;
use pb::object::Object as O;

use super::client::as_api_error;
use super::manifest::Entry;
use super::output;
use super::printed;
use super::{RegionKind, kind_and_meta, meta_mut, object_key};
use crate::ctl::commands::Transport;
use crate::ctl::{CtlError, DocFormat, GetFormat, WatchFormat};

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
    /// `created`, `configured`, `unchanged`.
    pub fn word(self) -> &'static str {
        match self {
            Applied::Created => "created",
            Applied::Configured => "configured",
            Applied::Unchanged => "unchanged",
        }
    }
}

/// Which namespace a command looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    /// `-n`, or `default`.
    pub namespace: String,
    /// `-A`: every namespace the caller may see.
    pub all: bool,
}

impl Scope {
    /// The namespace to send for `kind` (`""` for nodes and with `-A`).
    pub fn namespace_for(&self, kind: RegionKind) -> &str {
        if self.all || !kind.namespaced() {
            ""
        } else {
            &self.namespace
        }
    }
}

/// The entries of a file in the order `apply`/`create` send them ([`RegionKind::APPLY_ORDER`]),
/// each kind in file order.
pub fn apply_order(entries: &[Entry]) -> Vec<&Entry> {
    let mut v: Vec<&Entry> = entries.iter().collect();
    v.sort_by_key(|e| e.kind().apply_rank());
    v
}

/// The entries of a file in the order `delete -f` deletes them: the reverse kind order.
pub fn delete_order(entries: &[Entry]) -> Vec<&Entry> {
    let mut v: Vec<&Entry> = entries.iter().collect();
    v.sort_by_key(|e| std::cmp::Reverse(e.kind().apply_rank()));
    v
}

fn resource_version(obj: &pb::Object) -> u64 {
    kind_and_meta(obj)
        .and_then(|(_, m)| m)
        .map_or(0, |m| m.resource_version)
}

/// True if both objects are of the same kind with equal specs and labels.
pub fn same_spec_and_labels(a: &pb::Object, b: &pb::Object) -> bool {
    let labels = |o: &pb::Object| {
        kind_and_meta(o)
            .and_then(|(_, m)| m)
            .map(|m| m.labels.clone())
    };
    let empty = |l: Option<std::collections::HashMap<String, String>>| l.filter(|l| !l.is_empty());
    let same_spec = match (a.object.as_ref(), b.object.as_ref()) {
        (Some(O::Network(x)), Some(O::Network(y))) => x.spec == y.spec,
        (Some(O::NetworkInterface(x)), Some(O::NetworkInterface(y))) => x.spec == y.spec,
        (Some(O::VirtualIp(x)), Some(O::VirtualIp(y))) => x.spec == y.spec,
        (Some(O::PublicPrefix(x)), Some(O::PublicPrefix(y))) => x.spec == y.spec,
        (Some(O::NatGateway(x)), Some(O::NatGateway(y))) => x.spec == y.spec,
        (Some(O::LoadBalancer(x)), Some(O::LoadBalancer(y))) => x.spec == y.spec,
        (Some(O::NetworkPolicy(x)), Some(O::NetworkPolicy(y))) => x.spec == y.spec,
        (Some(O::Node(x)), Some(O::Node(y))) => x.spec == y.spec,
        _ => false,
    };
    same_spec && empty(labels(a)) == empty(labels(b))
}

fn key_label(key: &pb::ObjectKey) -> String {
    match pb::Kind::try_from(key.kind)
        .ok()
        .and_then(|k| RegionKind::APPLY_ORDER.into_iter().find(|r| r.proto() == k))
    {
        Some(k) => k.object(&key.namespace, &key.name),
        None => format!("object/{}", key.name),
    }
}

fn key(kind: RegionKind, namespace: &str, name: &str) -> pb::ObjectKey {
    pb::ObjectKey {
        kind: kind.proto() as i32,
        namespace: if kind.namespaced() {
            namespace.to_owned()
        } else {
            String::new()
        },
        name: name.to_owned(),
    }
}

/// A client of the region API, and its address for messages.
pub struct RegionCtl<T> {
    client: RegionApiClient<T>,
    api: String,
}

impl<T> std::fmt::Debug for RegionCtl<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegionCtl")
            .field("api", &self.api)
            .finish_non_exhaustive()
    }
}

impl<T: Transport> RegionCtl<T> {
    /// Wraps `client`; `api` is the address named in "cannot reach the region API at ...".
    pub fn new(client: RegionApiClient<T>, api: impl Into<String>) -> RegionCtl<T> {
        RegionCtl {
            client,
            api: api.into(),
        }
    }

    /// The client, for calls no command makes.
    pub fn client(&mut self) -> &mut RegionApiClient<T> {
        &mut self.client
    }

    fn fail(&self, status: &tonic::Status, what: &str) -> CtlError {
        as_api_error(CtlError::from_status(status, what, &self.api))
    }

    /// Get of one object.
    pub async fn fetch(&mut self, key: &pb::ObjectKey) -> Result<pb::Object, CtlError> {
        let req = pb::GetRequest {
            key: Some(key.clone()),
        };
        match self.client.get(req).await {
            Ok(r) => Ok(r.into_inner()),
            Err(s) => Err(self.fail(&s, &key_label(key))),
        }
    }

    /// List of the objects of `kind` in `namespace` (`""`: all) matching `selector`, sorted by
    /// namespace and name.
    pub async fn list(
        &mut self,
        kind: RegionKind,
        namespace: &str,
        selector: &str,
    ) -> Result<Vec<pb::Object>, CtlError> {
        let req = pb::ListRequest {
            kind: kind.proto() as i32,
            namespace: namespace.to_owned(),
            label_selector: selector.to_owned(),
        };
        let mut objects = match self.client.list(req).await {
            Ok(r) => r.into_inner().objects,
            Err(s) => return Err(self.fail(&s, &format!("get {}", kind.name()))),
        };
        objects.sort_by_key(|o| object_key(o).map(|k| (k.namespace, k.name)));
        Ok(objects)
    }

    /// `get KIND [NAME] [-l SELECTOR] [-o FORMAT]`; returns how many objects were printed
    /// (the caller says "No resources found." for an empty table).
    #[allow(clippy::too_many_arguments)]
    pub async fn get(
        &mut self,
        kind: RegionKind,
        name: Option<&str>,
        scope: &Scope,
        selector: Option<&str>,
        format: GetFormat,
        now_unix_ms: i64,
        out: &mut impl Write,
    ) -> Result<usize, CtlError> {
        let (objects, single) = match name {
            Some(_) if scope.all && kind.namespaced() => {
                return Err(CtlError::Input(
                    "get: an object cannot be named across all namespaces (-A): give -n NAMESPACE"
                        .into(),
                ));
            }
            Some(_) if selector.is_some() => {
                return Err(CtlError::Input(
                    "get: give a NAME or a selector (-l), not both".into(),
                ));
            }
            Some(n) => {
                let key = key(kind, &scope.namespace, n);
                (vec![self.fetch(&key).await?], true)
            }
            None => {
                let ns = scope.namespace_for(kind).to_owned();
                (self.list(kind, &ns, selector.unwrap_or("")).await?, false)
            }
        };
        let text = match format {
            GetFormat::Table | GetFormat::Wide if objects.is_empty() => String::new(),
            GetFormat::Table | GetFormat::Wide => output::table(
                kind,
                &objects,
                format == GetFormat::Wide,
                scope.all,
                now_unix_ms,
            ),
            GetFormat::Json | GetFormat::Yaml => {
                let docs = printed::docs(&objects);
                match (format, single, docs.first()) {
                    (GetFormat::Json, true, Some(d)) => crate::ctl::output::json(d)?,
                    (GetFormat::Json, _, _) => crate::ctl::output::json(&docs)?,
                    (_, true, Some(d)) => crate::ctl::output::yaml(d)?,
                    _ => crate::ctl::output::yaml(&docs)?,
                }
            }
        };
        out.write_all(text.as_bytes())?;
        Ok(objects.len())
    }

    /// `describe KIND NAME`.
    pub async fn describe(
        &mut self,
        kind: RegionKind,
        namespace: &str,
        name: &str,
        now_unix_ms: i64,
        out: &mut impl Write,
    ) -> Result<(), CtlError> {
        let obj = self.fetch(&key(kind, namespace, name)).await?;
        out.write_all(output::describe(&obj, now_unix_ms)?.as_bytes())?;
        Ok(())
    }

    /// `apply -f`: creates each object, or updates it (whole spec and labels, with the
    /// resource version just read) if its spec or labels differ; prints
    /// `KIND/NAMESPACE/NAME created|configured|unchanged`. Files in order, each in
    /// [`apply_order`].
    pub async fn apply(
        &mut self,
        files: &[Vec<Entry>],
        out: &mut impl Write,
    ) -> Result<(), CtlError> {
        for entries in files {
            for e in apply_order(entries) {
                let applied = self.apply_one(e).await?;
                writeln!(out, "{} {}", e.label(), applied.word())?;
            }
        }
        Ok(())
    }

    /// Applies one object. A concurrent change between the read and the update
    /// (FAILED_PRECONDITION) is answered by reading again and updating once more; a create that
    /// loses a race (ALREADY_EXISTS) becomes an update.
    pub async fn apply_one(&mut self, e: &Entry) -> Result<Applied, CtlError> {
        let label = e.label();
        let key = e.key();
        let mut existing = match self.fetch(&key).await {
            Ok(o) => o,
            Err(CtlError::NotFound { .. }) => {
                match self.send_create(e.object.clone(), &label).await {
                    Ok(_) => return Ok(Applied::Created),
                    Err(CtlError::AlreadyExists { .. }) => self.fetch(&key).await?,
                    Err(err) => return Err(err),
                }
            }
            Err(err) => return Err(err),
        };
        let mut retried = false;
        loop {
            if same_spec_and_labels(&existing, &e.object) {
                return Ok(Applied::Unchanged);
            }
            let mut obj = e.object.clone();
            if let Some(m) = meta_mut(&mut obj) {
                m.resource_version = resource_version(&existing);
            }
            match self.send_update(obj, &label).await {
                Ok(_) => return Ok(Applied::Configured),
                Err(CtlError::Refused {
                    code: tonic::Code::FailedPrecondition,
                    ..
                }) if !retried => {
                    tracing::debug!(object = %label, "changed since it was read; reading it again");
                    retried = true;
                    existing = self.fetch(&key).await?;
                }
                Err(err) => return Err(err),
            }
        }
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

    /// `create -f`: creates every object (ALREADY_EXISTS: exit 4); prints `KIND/NS/NAME created`.
    pub async fn create(
        &mut self,
        files: &[Vec<Entry>],
        out: &mut impl Write,
    ) -> Result<(), CtlError> {
        for entries in files {
            for e in apply_order(entries) {
                self.send_create(e.object.clone(), &e.label()).await?;
                writeln!(out, "{} created", e.label())?;
            }
        }
        Ok(())
    }

    async fn delete_key(
        &mut self,
        key: pb::ObjectKey,
        ignore_not_found: bool,
        out: &mut impl Write,
    ) -> Result<(), CtlError> {
        let label = key_label(&key);
        let req = pb::DeleteRequest {
            key: Some(key),
            resource_version: 0,
        };
        match self.client.delete(req).await {
            Ok(_) => writeln!(out, "{label} deleted")?,
            Err(s) => match self.fail(&s, &label) {
                CtlError::NotFound { .. } if ignore_not_found => {}
                err => return Err(err),
            },
        }
        Ok(())
    }

    /// `delete KIND NAME...` in `namespace`: prints `KIND/NS/NAME deleted`.
    pub async fn delete(
        &mut self,
        kind: RegionKind,
        namespace: &str,
        names: &[String],
        ignore_not_found: bool,
        out: &mut impl Write,
    ) -> Result<(), CtlError> {
        for name in names {
            self.delete_key(key(kind, namespace, name), ignore_not_found, out)
                .await?;
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
        for entries in files {
            for e in delete_order(entries) {
                self.delete_key(e.key(), ignore_not_found, out).await?;
            }
        }
        Ok(())
    }

    /// `watch [KIND]` in `namespace` (`""`: all): the current objects (ADDED), then every
    /// change, one line each (flushed), until `stop` completes or `count` object events were
    /// printed. The API ending the stream is [`CtlError::ApiUnreachable`].
    pub async fn watch(
        &mut self,
        kind: Option<RegionKind>,
        namespace: &str,
        format: WatchFormat,
        count: Option<u64>,
        stop: impl Future<Output = ()>,
        out: &mut impl Write,
    ) -> Result<(), CtlError> {
        let req = pb::WatchRequest {
            kind: kind.map_or(0, |k| k.proto() as i32),
            namespace: namespace.to_owned(),
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
                    return Err(CtlError::ApiUnreachable {
                        api: self.api.clone(),
                        cause: "the region API ended the watch".into(),
                    });
                }
                Err(s) => return Err(self.fail(&s, "watch")),
            };
            let line = match format {
                WatchFormat::Text => output::watch_line(&ev),
                WatchFormat::Json => Some(output::watch_json(&ev)?),
            };
            if let Some(line) = line {
                out.write_all(line.as_bytes())?;
                out.flush()?;
            }
            if ev.object.is_some() {
                seen += 1;
            }
        }
        Ok(())
    }

    /// `whoami`: the caller's identity, role and namespaces.
    pub async fn whoami(
        &mut self,
        format: DocFormat,
        out: &mut impl Write,
    ) -> Result<(), CtlError> {
        let r = match self.client.who_am_i(pb::WhoAmIRequest {}).await {
            Ok(r) => r.into_inner(),
            Err(s) => return Err(self.fail(&s, "whoami")),
        };
        let text = match format {
            DocFormat::Text => output::whoami_text(&r),
            DocFormat::Json => crate::ctl::output::json(&output::whoami_doc(&r))?,
            DocFormat::Yaml => crate::ctl::output::yaml(&output::whoami_doc(&r))?,
        };
        out.write_all(text.as_bytes())?;
        Ok(())
    }
}
