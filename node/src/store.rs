//! The node's persistent state: an embedded redb file holding the API objects (metadata and
//! spec, prost-encoded as the API's own `Object` message), the VF claims and the revision
//! counter.
//!
//! Writes go through one writer thread that drains everything queued, commits it in one
//! durable transaction and only then runs each request's completion: an API call is confirmed
//! after its change is on disk, and a burst of creates costs one fsync per batch rather than one
//! per call (group commit). Status is not stored: it is rebuilt by reconciling after a restart.
//!
//! ```text
//!  ApiActor --Write{ops, revision, done} (unbounded)--> writer thread --one txn per batch--> state.redb
//!                                  done(result) <-- after commit
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;

use ferrinet_proto::node::v1 as pb;
use prost::Message as _;
use redb::{Database, ReadableDatabase as _, ReadableTable as _, TableDefinition};

const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");
const CLAIMS: TableDefinition<&str, &str> = TableDefinition::new("vf_claims");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const REVISION: &str = "revision";
/// Name of the state file in the state directory.
pub const FILE_NAME: &str = "state.redb";

/// The state file cannot be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The state directory cannot be created.
    #[error("cannot create state directory {path}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// redb failed (open, transaction, commit, I/O).
    #[error("state file {path}")]
    Db {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<redb::Error>,
    },
    /// A stored object does not decode: the file was written by something else or is damaged.
    #[error("state file {path}: object {key:?} does not decode")]
    Decode {
        /// The file.
        path: PathBuf,
        /// Its key.
        key: String,
        /// Why.
        #[source]
        source: prost::DecodeError,
    },
    /// The writer thread is gone.
    #[error("the state writer has stopped")]
    Stopped,
}

/// One change of the stored state.
#[derive(Debug, Clone)]
pub enum StoreOp {
    /// Store (or replace) an object under `key` (`kind/name`).
    Put {
        /// `kind/name`.
        key: String,
        /// The object, status cleared.
        object: Box<pb::Object>,
    },
    /// Remove an object.
    Delete {
        /// `kind/name`.
        key: String,
    },
    /// `owner` holds VF `vf`.
    Claim {
        /// Interface name.
        owner: String,
        /// VF id.
        vf: String,
    },
    /// `owner` holds no VF any more.
    Release {
        /// Interface name.
        owner: String,
    },
}

/// What was stored, as loaded at start.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Every object, by key order.
    pub objects: Vec<pb::Object>,
    /// `(owner, vf id)`.
    pub claims: Vec<(String, String)>,
    /// The last revision handed out.
    pub revision: u64,
}

/// Runs after a batch is committed (or failed).
pub type Done = Box<dyn FnOnce(Result<(), Arc<StoreError>>) + Send>;

struct Write {
    ops: Vec<StoreOp>,
    revision: u64,
    done: Option<Done>,
}

/// Sends writes to the writer thread. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    tx: mpsc::Sender<Write>,
    path: PathBuf,
}

/// The writer thread: ends (and closes the file) once every [`Store`] is dropped.
#[derive(Debug)]
pub struct Writer(std::thread::JoinHandle<()>);

impl Writer {
    /// Waits until the writer has committed what was queued and closed the file.
    pub fn join(self) {
        let _ = self.0.join();
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

fn db_err(path: &Path, e: impl Into<redb::Error>) -> StoreError {
    StoreError::Db {
        path: path.to_owned(),
        source: Box::new(e.into()),
    }
}

impl Store {
    /// Opens (or creates) `dir/state.redb`, loads it, and starts the writer thread.
    pub fn open(dir: &Path) -> Result<(Self, Loaded, Writer), StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
            path: dir.to_owned(),
            source,
        })?;
        let path = dir.join(FILE_NAME);
        let db = Database::create(&path).map_err(|e| db_err(&path, e))?;
        // Create the tables so that reading a fresh file finds them.
        let w = db.begin_write().map_err(|e| db_err(&path, e))?;
        {
            w.open_table(OBJECTS).map_err(|e| db_err(&path, e))?;
            w.open_table(CLAIMS).map_err(|e| db_err(&path, e))?;
            w.open_table(META).map_err(|e| db_err(&path, e))?;
        }
        w.commit().map_err(|e| db_err(&path, e))?;
        let loaded = load(&db, &path)?;
        let (tx, rx) = mpsc::channel();
        let thread_path = path.clone();
        let thread = std::thread::Builder::new()
            .name("ferrinet-store".into())
            .spawn(move || writer(db, thread_path, rx))
            .map_err(|source| StoreError::Dir {
                path: dir.to_owned(),
                source,
            })?;
        Ok((Self { tx, path }, loaded, Writer(thread)))
    }

    /// The state file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues `ops` (and the new `revision`); `done` runs once they are committed or failed.
    pub fn write(&self, ops: Vec<StoreOp>, revision: u64, done: Option<Done>) {
        if let Err(mpsc::SendError(w)) = self.tx.send(Write {
            ops,
            revision,
            done,
        }) && let Some(done) = w.done
        {
            done(Err(Arc::new(StoreError::Stopped)));
        }
    }
}

fn load(db: &Database, path: &Path) -> Result<Loaded, StoreError> {
    let r = db.begin_read().map_err(|e| db_err(path, e))?;
    let mut out = Loaded::default();
    let objects = r.open_table(OBJECTS).map_err(|e| db_err(path, e))?;
    for item in objects.iter().map_err(|e| db_err(path, e))? {
        let (k, v) = item.map_err(|e| db_err(path, e))?;
        let object = pb::Object::decode(v.value()).map_err(|source| StoreError::Decode {
            path: path.to_owned(),
            key: k.value().to_string(),
            source,
        })?;
        out.objects.push(object);
    }
    let claims = r.open_table(CLAIMS).map_err(|e| db_err(path, e))?;
    for item in claims.iter().map_err(|e| db_err(path, e))? {
        let (k, v) = item.map_err(|e| db_err(path, e))?;
        out.claims
            .push((k.value().to_string(), v.value().to_string()));
    }
    let meta = r.open_table(META).map_err(|e| db_err(path, e))?;
    out.revision = meta
        .get(REVISION)
        .map_err(|e| db_err(path, e))?
        .map_or(0, |v| v.value());
    Ok(out)
}

fn commit(db: &Database, path: &Path, batch: &[Write]) -> Result<(), StoreError> {
    let w = db.begin_write().map_err(|e| db_err(path, e))?;
    {
        let mut objects = w.open_table(OBJECTS).map_err(|e| db_err(path, e))?;
        let mut claims = w.open_table(CLAIMS).map_err(|e| db_err(path, e))?;
        let mut meta = w.open_table(META).map_err(|e| db_err(path, e))?;
        let mut revision = 0;
        for write in batch {
            revision = revision.max(write.revision);
            for op in &write.ops {
                match op {
                    StoreOp::Put { key, object } => {
                        objects
                            .insert(key.as_str(), object.encode_to_vec().as_slice())
                            .map_err(|e| db_err(path, e))?;
                    }
                    StoreOp::Delete { key } => {
                        objects.remove(key.as_str()).map_err(|e| db_err(path, e))?;
                    }
                    StoreOp::Claim { owner, vf } => {
                        claims
                            .insert(owner.as_str(), vf.as_str())
                            .map_err(|e| db_err(path, e))?;
                    }
                    StoreOp::Release { owner } => {
                        claims.remove(owner.as_str()).map_err(|e| db_err(path, e))?;
                    }
                }
            }
        }
        if revision > 0 {
            meta.insert(REVISION, revision)
                .map_err(|e| db_err(path, e))?;
        }
    }
    w.commit().map_err(|e| db_err(path, e))
}

/// Most writes committed in one transaction: bounds the latency of the first of a burst.
const MAX_BATCH: usize = 4096;

fn writer(db: Database, path: PathBuf, rx: mpsc::Receiver<Write>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(w) => batch.push(w),
                Err(_) => break,
            }
        }
        let result = commit(&db, &path, &batch).map_err(Arc::new);
        if let Err(e) = &result {
            tracing::error!(error = %crate::error_chain(e.as_ref()), "state write failed");
        }
        for w in batch {
            if let Some(done) = w.done {
                done(result.clone());
            }
        }
    }
    tracing::debug!("state writer stopped");
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn net(name: &str, vni: u32) -> pb::Object {
        pb::Object {
            object: Some(pb::object::Object::Network(pb::Network {
                metadata: Some(pb::Metadata {
                    name: name.into(),
                    ..Default::default()
                }),
                spec: Some(pb::NetworkSpec {
                    id: vni,
                    ..Default::default()
                }),
                status: None,
            })),
        }
    }

    fn write_sync(s: &Store, ops: Vec<StoreOp>, rev: u64) {
        let (tx, rx) = std::sync::mpsc::channel();
        s.write(
            ops,
            rev,
            Some(Box::new(move |r| {
                let _ = tx.send(r.is_ok());
            })),
        );
        assert!(rx.recv().unwrap());
    }

    #[test]
    fn survives_reopen_with_objects_claims_and_revision() {
        let dir = tempfile::tempdir().unwrap();
        let writer = {
            let (s, loaded, writer) = Store::open(dir.path()).unwrap();
            assert!(loaded.objects.is_empty() && loaded.revision == 0);
            write_sync(
                &s,
                vec![
                    StoreOp::Put {
                        key: "network/a".into(),
                        object: Box::new(net("a", 1)),
                    },
                    StoreOp::Put {
                        key: "network/b".into(),
                        object: Box::new(net("b", 2)),
                    },
                    StoreOp::Claim {
                        owner: "if1".into(),
                        vf: "dtapvf_0".into(),
                    },
                    StoreOp::Claim {
                        owner: "if2".into(),
                        vf: "dtapvf_1".into(),
                    },
                ],
                2,
            );
            write_sync(
                &s,
                vec![
                    StoreOp::Delete {
                        key: "network/a".into(),
                    },
                    StoreOp::Release {
                        owner: "if1".into(),
                    },
                ],
                3,
            );
            writer
        };
        writer.join();
        let (_, loaded, _) = Store::open(dir.path()).unwrap();
        assert_eq!(loaded.objects, vec![net("b", 2)]);
        assert_eq!(loaded.claims, vec![("if2".into(), "dtapvf_1".into())]);
        assert_eq!(loaded.revision, 3);
    }
}
