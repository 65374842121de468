//! What the node tells the region about a managed object: its metadata and status (the spec is
//! the region's own and left out), or, for a placed object the node refused, an `ERROR` phase
//! with an `Applied` condition naming why.

use ferrinet_proto::node::v1 as pb;

/// The condition of a placed object the node refused.
pub const APPLIED: &str = "Applied";

/// The object as reported: metadata and status, no spec.
pub fn status_of(o: &pb::Object) -> pb::Object {
    use pb::object::Object as O;
    let object = match &o.object {
        Some(O::Network(n)) => O::Network(pb::Network {
            metadata: n.metadata.clone(),
            spec: None,
            status: n.status.clone(),
        }),
        Some(O::NetworkInterface(i)) => O::NetworkInterface(pb::NetworkInterface {
            metadata: i.metadata.clone(),
            spec: None,
            status: i.status.clone(),
        }),
        Some(O::LoadBalancer(l)) => O::LoadBalancer(pb::LoadBalancer {
            metadata: l.metadata.clone(),
            spec: None,
            status: l.status.clone(),
        }),
        None => return pb::Object::default(),
    };
    pb::Object {
        object: Some(object),
    }
}

fn refusal(message: &str, now_ms: i64) -> pb::Condition {
    pb::Condition {
        r#type: APPLIED.into(),
        ok: false,
        reason: "Refused".into(),
        message: message.into(),
        last_transition_unix_ms: now_ms,
    }
}

fn mark(phase: &mut i32, conditions: &mut Vec<pb::Condition>, message: &str, now_ms: i64) {
    *phase = pb::Phase::Error.into();
    conditions.retain(|c| c.r#type != APPLIED);
    conditions.push(refusal(message, now_ms));
}

/// `base` (the node's object if it has one, else the placed one) as reported when the node
/// refused the placed version: phase `ERROR`, condition `Applied` false with `message`.
pub fn refused(base: &pb::Object, message: &str, now_ms: i64) -> pb::Object {
    use pb::object::Object as O;
    let mut o = status_of(base);
    match &mut o.object {
        Some(O::Network(n)) => {
            let s = n.status.get_or_insert_default();
            mark(&mut s.phase, &mut s.conditions, message, now_ms);
        }
        Some(O::NetworkInterface(i)) => {
            let s = i.status.get_or_insert_default();
            mark(&mut s.phase, &mut s.conditions, message, now_ms);
        }
        Some(O::LoadBalancer(l)) => {
            let s = l.status.get_or_insert_default();
            mark(&mut s.phase, &mut s.conditions, message, now_ms);
        }
        None => {}
    }
    o
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn iface(status: Option<pb::NetworkInterfaceStatus>) -> pb::Object {
        pb::Object {
            object: Some(pb::object::Object::NetworkInterface(pb::NetworkInterface {
                metadata: Some(pb::Metadata {
                    name: "web".into(),
                    ..Default::default()
                }),
                spec: Some(pb::NetworkInterfaceSpec::default()),
                status,
            })),
        }
    }

    #[test]
    fn reports_leave_the_spec_out_and_refusals_replace_their_condition() {
        let ready = pb::NetworkInterfaceStatus {
            phase: pb::Phase::Ready.into(),
            underlay_ip: "fc00:1::5".into(),
            conditions: vec![pb::Condition {
                r#type: "Interface".into(),
                ok: true,
                ..Default::default()
            }],
            ..Default::default()
        };
        let o = status_of(&iface(Some(ready)));
        let Some(pb::object::Object::NetworkInterface(i)) = &o.object else {
            panic!("{o:?}")
        };
        assert!(i.spec.is_none());
        assert_eq!(i.status.as_ref().unwrap().underlay_ip, "fc00:1::5");
        let r = refused(&refused(&o, "first", 1), "second", 2);
        let Some(pb::object::Object::NetworkInterface(i)) = &r.object else {
            panic!("{r:?}")
        };
        let s = i.status.as_ref().unwrap();
        assert_eq!(s.phase, pb::Phase::Error as i32);
        let applied: Vec<_> = s
            .conditions
            .iter()
            .filter(|c| c.r#type == APPLIED)
            .collect();
        assert_eq!(applied.len(), 1);
        assert_eq!(
            (applied[0].ok, applied[0].message.as_str()),
            (false, "second")
        );
        // Without a status (a placed object the node never accepted) one is made.
        let r = refused(&iface(None), "bad", 3);
        assert!(
            matches!(&r.object, Some(pb::object::Object::NetworkInterface(i))
            if i.status.as_ref().unwrap().phase == pb::Phase::Error as i32)
        );
    }
}
