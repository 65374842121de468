use std::collections::BTreeSet;
use std::process::Command;

use super::setup::{self, EVENT_SCRIPT};
use super::shared::{Owner, Shared, owner};

#[test]
fn namespace_names_fall_back_to_the_node_prefix_deterministically() {
    let c = setup::candidates("node-1", "web-1");
    assert_eq!(&c[..3], ["web-1", "node-1-web-1", "node-1-web-1-2"]);
    assert_eq!(c.last().map(String::as_str), Some("node-1-web-1-9"));
    assert_eq!(
        c,
        setup::candidates("node-1", "web-1"),
        "same input, same names"
    );
    // Nothing `ip netns` would refuse or a shell would split.
    let odd = setup::candidates("node 1", "a/b");
    assert_eq!(&odd[..2], ["a-b", "node-1-a-b"]);
    let long = setup::candidates(&"n".repeat(200), &"x".repeat(200));
    assert!(long.iter().all(|n| n.len() <= 255));
    assert_eq!(
        setup::park_candidates("node-2").first().map(String::as_str),
        Some("node-2-idle")
    );
}

#[test]
fn netns_list_output_gives_the_names() {
    let names = setup::parse_netns_list("web-1 (id: 3)\nvm-2\n\n  db-1 (id: 0)\n");
    assert_eq!(
        names,
        BTreeSet::from(["web-1", "vm-2", "db-1"].map(String::from))
    );
}

#[test]
fn the_lease_line_is_found_and_script_errors_fail() {
    let out =
        "udhcpc: started\nferrinet-lease: 10.0.0.7/32 mtu=1460 routes=none router=169.254.0.1\n";
    assert_eq!(
        setup::lease_summary(out).as_deref(),
        Ok("10.0.0.7/32 mtu=1460 routes=none router=169.254.0.1")
    );
    let failed = format!("{out}ferrinet-error: ip route replace x : Error: bad\n");
    assert!(
        setup::lease_summary(&failed).is_err_and(|e| e.contains("ip route replace x")),
        "{failed}"
    );
    assert!(setup::lease_summary("udhcpc: no lease\n").is_err());
}

#[test]
fn a_tap_is_taken_only_when_no_other_same_named_tap_is_here() {
    let open = |set: &'static [usize]| move |i: usize| set.contains(&i);
    let none = |_: usize| false;
    assert_eq!(owner(0, 2, open(&[0]), none), Owner::Mine);
    assert_eq!(owner(0, 2, open(&[1]), none), Owner::NotOpen);
    // Node 1 has one open that is still here: the one here may be node 1's.
    assert_eq!(owner(0, 2, open(&[0, 1]), none), Owner::Other(1));
    // Node 1's is in a namespace of ours: the one here is node 0's.
    assert_eq!(owner(0, 3, open(&[0, 1]), |i| i == 1), Owner::Mine);
    assert_eq!(owner(2, 3, open(&[0, 1, 2]), |i| i == 0), Owner::Other(1));
}

#[test]
fn claims_skip_taken_and_existing_names_and_are_recorded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let list = dir.path().join("vms.list");
    let shared = Shared::new(list.clone(), None, vec!["node-1".into()], vec![None]);
    let c = setup::candidates("node-1", "web-1");
    let existing = BTreeSet::from(["web-1".to_string()]);
    let first = shared.claim(&c, &existing, 0, false);
    assert_eq!(first.as_deref(), Some("node-1-web-1"));
    let second = shared.claim(&c, &existing, 0, false);
    assert_eq!(second.as_deref(), Some("node-1-web-1-2"));
    let park = shared.claim(&setup::park_candidates("node-1"), &existing, 0, true);
    assert_eq!(park.as_deref(), Some("node-1-idle"));
    assert_eq!(shared.park_of(0).as_deref(), Some("node-1-idle"));
    assert_eq!(shared.park_of(1), None);
    let text = std::fs::read_to_string(&list).expect("vms.list written");
    assert_eq!(text, "node-1-idle\nnode-1-web-1\nnode-1-web-1-2\n");

    // A parked TAP is found there, whatever the dataplane says.
    assert_eq!(shared.owner(0, "net_tap2", "dtapvf_0"), Owner::NotOpen);
    shared.moved("dtapvf_0", None, "node-1-web-1");
    shared.moved("dtapvf_0", Some("node-1-web-1"), "node-1-idle");
    assert_eq!(
        shared.owner(0, "net_tap2", "dtapvf_0"),
        Owner::Parked("node-1-idle".into())
    );
    shared.release("node-1-web-1");
    let text = std::fs::read_to_string(&list).expect("vms.list written");
    assert_eq!(text, "node-1-idle\nnode-1-web-1-2\n");
}

/// A namespace for one test, deleted on drop; `None` when not root (the test then checks
/// nothing and says so).
struct TestNs(String);

impl TestNs {
    fn new(label: &str) -> Option<Self> {
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        if !root {
            eprintln!("skipped: needs root (ip netns)");
            return None;
        }
        let name = format!("fdevtest{}-{label}", std::process::id());
        ip(&["netns", "add", &name]);
        Some(Self(name))
    }

    /// A veth pair `d0`/`d1` in the namespace, both up.
    fn with_link(self) -> Self {
        ip(&[
            "-n", &self.0, "link", "add", "d0", "type", "veth", "peer", "name", "d1",
        ]);
        ip(&["-n", &self.0, "link", "set", "d0", "up"]);
        ip(&["-n", &self.0, "link", "set", "d1", "up"]);
        self
    }

    fn show(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", self.0.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        setup::delete_blocking(&self.0);
    }
}

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("running ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_event_script_applies_a_lease_with_classless_routes() {
    let Some(ns) = TestNs::new("script").map(TestNs::with_link) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("udhcpc.script");
    std::fs::write(&script, EVENT_SCRIPT).expect("script written");
    let run = |ip_addr: &str| {
        let out = Command::new("ip")
            .args(["netns", "exec", &ns.0, "sh"])
            .arg(&script)
            .arg("bound")
            .env("interface", "d0")
            .env("ip", ip_addr)
            .env("mask", "32")
            .env("mtu", "1400")
            .env("router", "169.254.0.1")
            .env(
                "staticroutes",
                "169.254.0.0/16 0.0.0.0 0.0.0.0/0 169.254.0.1",
            )
            .output()
            .expect("running the script");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let out = run("10.9.0.5");
    assert!(
        setup::lease_summary(&out).is_ok_and(|l| l.starts_with("10.9.0.5/32 mtu=1400")),
        "{out}"
    );
    assert!(
        ns.show(&["-4", "addr", "show", "d0"])
            .contains("10.9.0.5/32")
    );
    assert!(ns.show(&["link", "show", "d0"]).contains("mtu 1400"));
    let routes = ns.show(&["-4", "route"]);
    assert!(
        routes.contains("default via 169.254.0.1 dev d0 onlink"),
        "{routes}"
    );
    assert!(routes.contains("169.254.0.0/16 dev d0"), "{routes}");
    // What `ip` refuses is reported, not lost.
    assert!(setup::lease_summary(&run("10.9.0.300")).is_err());
}

#[tokio::test]
async fn static_configuration_gives_addresses_and_default_routes() {
    let Some(ns) = TestNs::new("static").map(TestNs::with_link) else {
        return;
    };
    let done = setup::configure(
        &ns.0,
        "d0",
        Some("10.9.0.6".parse().expect("v4")),
        Some("fd00:9::6".parse().expect("v6")),
        None,
    )
    .await
    .expect("configured");
    assert_eq!(done, "static 10.9.0.6/32, static fd00:9::6/128");
    let v4 = ns.show(&["-4", "route"]);
    assert!(v4.contains("default via 169.254.0.1 dev d0 onlink"), "{v4}");
    assert!(v4.contains("169.254.0.1 dev d0"), "{v4}");
    let v6 = ns.show(&["-6", "route"]);
    assert!(v6.contains("default via fe80::1 dev d0"), "{v6}");
    assert!(
        ns.show(&["-6", "addr", "show", "d0"])
            .contains("fd00:9::6/128")
    );
}

#[tokio::test]
async fn a_tap_moves_between_namespaces_and_stale_ones_are_removed() {
    let (Some(a), Some(b)) = (TestNs::new("a"), TestNs::new("b")) else {
        return;
    };
    ip(&["-n", &a.0, "tuntap", "add", "dev", "t0", "mode", "tap"]);
    setup::move_tap("t0", Some(&a.0), &b.0)
        .await
        .expect("moved");
    setup::bring_up(&b.0, "t0").await.expect("up");
    assert!(b.show(&["link", "show", "t0"]).contains("t0"));
    assert!(setup::move_tap("t0", Some(&a.0), &b.0).await.is_err());

    let dir = tempfile::tempdir().expect("tempdir");
    let list = dir.path().join("vms.list");
    std::fs::write(
        &list,
        format!("{}\nnot-there-{}\n", b.0, std::process::id()),
    )
    .expect("list written");
    super::remove_stale(&list);
    let left = setup::netns_list().await.expect("ip netns list");
    assert!(!left.contains(&b.0), "{left:?}");
    assert!(left.contains(&a.0), "only listed names are removed");
    assert!(!list.exists());
}
