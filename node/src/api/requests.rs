//! The ApiActor's requests that change objects: create, update, delete, and the reports of the
//! object actors (status, gone). Each change takes the next revision, is published to watchers,
//! and is answered once the store has committed it.

use ferrinet_proto::node::v1 as pb;
use ractor::ActorRef;

use super::objects::{self, Entry, Key, ObjectActor, Parsed};
use super::{ApiError, ApiMsg, ApiState, ObjectReply, StatusReport, now_ms};
use crate::interface::InterfaceMsg;
use crate::load_balancer::LoadBalancerMsg;
use crate::store::{Done, StoreOp};

/// Answers `reply` with `object` once the store has committed.
fn answer_after_commit(reply: ObjectReply, object: pb::Object) -> Done {
    Box::new(move |result| {
        let _ = reply.send(result.map(|()| object).map_err(ApiError::Store));
    })
}

fn refuse(reply: ObjectReply, e: ApiError) -> Result<(), ApiError> {
    let _ = reply.send(Err(e.clone()));
    Err(e)
}

impl ApiState {
    pub(super) async fn create(
        &mut self,
        myself: &ActorRef<ApiMsg>,
        mut o: pb::Object,
        reply: ObjectReply,
    ) -> Result<(), ApiError> {
        let parsed = match self.parse(&o) {
            Ok(p) => p,
            Err(e) => return refuse(reply, e),
        };
        let Some(key) = Key::of(&o) else {
            return refuse(reply, ApiError::BadRequest("object: missing".into()));
        };
        if self.objects.contains_key(&key) {
            return refuse(
                reply,
                ApiError::AlreadyExists {
                    kind: objects::kind_name(key.kind),
                    name: key.name,
                },
            );
        }
        let mut ops = Vec::new();
        if let Parsed::Interface(_) = parsed {
            match self.pool.claim(&key.name) {
                Ok(vf) => ops.push(StoreOp::Claim {
                    owner: key.name.clone(),
                    vf: vf.id().to_string(),
                }),
                Err(_) => {
                    let total = u32::try_from(self.pool.total()).unwrap_or(u32::MAX);
                    return refuse(reply, ApiError::NoVf(total));
                }
            }
        }
        let rev = self.next_revision();
        if let Some(m) = objects::metadata_mut(&mut o) {
            m.resource_version = rev;
            m.generation = 1;
            m.created_unix_ms = now_ms();
        }
        objects::reset_status(&mut o);
        ops.push(StoreOp::Put {
            key: key.store_key(),
            object: Box::new(objects::for_store(&o)),
        });
        let network = parsed.network().map(str::to_string);
        self.objects
            .insert(key.clone(), Entry::new(o.clone(), parsed));
        self.store
            .write(ops, rev, Some(answer_after_commit(reply, o.clone())));
        self.publish(pb::EventType::Added, o);
        match &key.kind {
            pb::Kind::Network => self.network_changed(&key.name),
            _ => {
                self.start_actor(myself, &key).await;
                if let Some(n) = network {
                    self.refresh_network(&n);
                }
            }
        }
        Ok(())
    }

    pub(super) fn update(&mut self, mut o: pb::Object, reply: ObjectReply) {
        let Some(key) = Key::of(&o) else {
            let _ = refuse(reply, ApiError::BadRequest("object: missing".into()));
            return;
        };
        let parsed = match self.parse(&o) {
            Ok(p) => p,
            Err(e) => {
                let _ = refuse(reply, e);
                return;
            }
        };
        let kind = objects::kind_name(key.kind);
        let Some(entry) = self.objects.get(&key) else {
            let _ = refuse(
                reply,
                ApiError::NotFound {
                    kind,
                    name: key.name,
                },
            );
            return;
        };
        if entry.deleting {
            let _ = refuse(
                reply,
                ApiError::FailedPrecondition(format!("{key} is being deleted")),
            );
            return;
        }
        let current = objects::version(&entry.object);
        let sent = objects::version(&o);
        if sent != 0 && sent != current {
            let _ = refuse(
                reply,
                ApiError::Conflict {
                    kind,
                    name: key.name,
                    sent,
                    current,
                },
            );
            return;
        }
        if objects::same_spec(&entry.object, &o) {
            let _ = reply.send(Ok(entry.object.clone()));
            return;
        }
        let old_network = entry.parsed.network().map(str::to_string);
        let (created, generation) =
            objects::metadata(&entry.object).map_or((0, 0), |m| (m.created_unix_ms, m.generation));
        let old_object = entry.object.clone();
        let rev = self.next_revision();
        if let Some(m) = objects::metadata_mut(&mut o) {
            m.resource_version = rev;
            m.generation = generation + 1;
            m.created_unix_ms = created;
        }
        // The status stays what the actor last reported until it reports on the new spec.
        match (&mut o.object, old_object.object) {
            (Some(pb::object::Object::Network(n)), Some(pb::object::Object::Network(old))) => {
                n.status = old.status
            }
            (
                Some(pb::object::Object::NetworkInterface(n)),
                Some(pb::object::Object::NetworkInterface(old)),
            ) => n.status = old.status,
            (
                Some(pb::object::Object::LoadBalancer(n)),
                Some(pb::object::Object::LoadBalancer(old)),
            ) => n.status = old.status,
            _ => {}
        }
        objects::set_phase(&mut o, pb::Phase::Pending);
        let ops = vec![StoreOp::Put {
            key: key.store_key(),
            object: Box::new(objects::for_store(&o)),
        }];
        self.store
            .write(ops, rev, Some(answer_after_commit(reply, o.clone())));
        let generation = generation + 1;
        let network = parsed.network().map(str::to_string);
        if let Some(e) = self.objects.get_mut(&key) {
            e.object = o.clone();
            e.parsed = parsed.clone();
        }
        self.publish(pb::EventType::Modified, o);
        match &parsed {
            Parsed::Network(_) => self.network_changed(&key.name),
            Parsed::Interface(spec) => {
                let vni = self.vni_of(&spec.network);
                if let Some(Entry {
                    actor: Some(ObjectActor::Interface(a)),
                    ..
                }) = self.objects.get(&key)
                {
                    let _ = a.send_message(InterfaceMsg::Apply {
                        spec: spec.clone(),
                        generation,
                        vni,
                    });
                }
            }
            Parsed::LoadBalancer(spec) => {
                let vni = self.vni_of(&spec.network);
                if let Some(Entry {
                    actor: Some(ObjectActor::LoadBalancer(a)),
                    ..
                }) = self.objects.get(&key)
                {
                    let _ = a.send_message(LoadBalancerMsg::Apply {
                        spec: spec.clone(),
                        generation,
                        vni,
                    });
                }
            }
        }
        for n in [old_network, network].into_iter().flatten() {
            self.refresh_network(&n);
        }
    }

    pub(super) fn delete(
        &mut self,
        kind: pb::Kind,
        name: String,
        version: u64,
        reply: ObjectReply,
    ) {
        let key = Key::new(kind, &name);
        let kind_s = objects::kind_name(kind);
        let Some(entry) = self.objects.get(&key) else {
            let _ = refuse(reply, ApiError::NotFound { kind: kind_s, name });
            return;
        };
        let current = objects::version(&entry.object);
        if version != 0 && version != current {
            let _ = refuse(
                reply,
                ApiError::Conflict {
                    kind: kind_s,
                    name,
                    sent: version,
                    current,
                },
            );
            return;
        }
        if entry.deleting {
            let _ = reply.send(Ok(entry.object.clone()));
            return;
        }
        if kind == pb::Kind::Network {
            let users = self.users(&name);
            if !users.is_empty() {
                let shown: Vec<&str> = users.iter().take(5).map(String::as_str).collect();
                let _ = refuse(
                    reply,
                    ApiError::FailedPrecondition(format!(
                        "network/{name} is used by {} object(s) on this node ({}{}): delete them first",
                        users.len(),
                        shown.join(", "),
                        if users.len() > 5 { ", ..." } else { "" }
                    )),
                );
                return;
            }
        }
        let rev = self.next_revision();
        let Some(entry) = self.objects.get_mut(&key) else {
            return;
        };
        entry.deleting = true;
        objects::set_phase(&mut entry.object, pb::Phase::Deleting);
        objects::set_version(&mut entry.object, rev);
        let o = entry.object.clone();
        let actor = entry.actor.clone();
        // The object leaves the store now; its VF claim only once the dataplane is clean, so a
        // crash in between leaves an orphan the restarted node removes.
        self.store.write(
            vec![StoreOp::Delete {
                key: key.store_key(),
            }],
            rev,
            Some(answer_after_commit(reply, o.clone())),
        );
        self.publish(pb::EventType::Modified, o);
        match actor {
            Some(ObjectActor::Interface(a)) => {
                let _ = a.send_message(InterfaceMsg::Delete);
            }
            Some(ObjectActor::LoadBalancer(a)) => {
                let _ = a.send_message(LoadBalancerMsg::Delete);
            }
            None => self.gone(kind, &name),
        }
    }

    /// The object's actor has removed it from the dataplane (or it had none).
    pub(super) fn gone(&mut self, kind: pb::Kind, name: &str) {
        let key = Key::new(kind, name);
        let Some(entry) = self.objects.remove(&key) else {
            return;
        };
        if let Some(a) = &entry.actor {
            self.actors.remove(&a.id());
            match a {
                ObjectActor::Interface(a) => a.stop(None),
                ObjectActor::LoadBalancer(a) => a.stop(None),
            }
        }
        self.unreported.remove(&key);
        let rev = self.next_revision();
        let mut ops = Vec::new();
        if kind == pb::Kind::NetworkInterface && self.pool.release(name).is_some() {
            ops.push(StoreOp::Release {
                owner: name.to_string(),
            });
        }
        self.lost_claims.remove(name);
        self.store.write(ops, rev, None);
        let mut o = entry.object;
        objects::set_version(&mut o, rev);
        self.publish(pb::EventType::Deleted, o);
        if let Some(n) = entry.parsed.network() {
            let n = n.to_string();
            self.refresh_network(&n);
        }
        self.check_synced();
    }

    pub(super) fn status(&mut self, report: StatusReport) {
        let (key, changed) = match report {
            StatusReport::Interface(name, status) => {
                let key = Key::new(pb::Kind::NetworkInterface, &name);
                let changed = match self.objects.get_mut(&key) {
                    Some(Entry {
                        object:
                            pb::Object {
                                object: Some(pb::object::Object::NetworkInterface(i)),
                            },
                        deleting: false,
                        ..
                    }) if i.status.as_ref() != Some(&status) => {
                        i.status = Some(status);
                        true
                    }
                    _ => false,
                };
                (key, changed)
            }
            StatusReport::LoadBalancer(name, status) => {
                let key = Key::new(pb::Kind::LoadBalancer, &name);
                let changed = match self.objects.get_mut(&key) {
                    Some(Entry {
                        object:
                            pb::Object {
                                object: Some(pb::object::Object::LoadBalancer(l)),
                            },
                        deleting: false,
                        ..
                    }) if l.status.as_ref() != Some(&status) => {
                        l.status = Some(status);
                        true
                    }
                    _ => false,
                };
                (key, changed)
            }
        };
        if self.unreported.remove(&key) {
            self.check_synced();
        }
        if changed {
            self.bump_status(&key);
        }
    }
}
