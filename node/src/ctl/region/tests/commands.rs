//! The commands against the in-memory fake API ([`crate::ctl::region::fake`]) over TCP on
//! 127.0.0.1, connected the way `ferrinetctl --api` connects.

use std::time::Duration;

use tonic::transport::Channel;

use super::manifest::ALL_FIELDS;
use super::{entries, parse_in};
use crate::ctl::error::exit;
use crate::ctl::region::RegionKind;
use crate::ctl::region::client::{self, ApiAddr};
use crate::ctl::region::commands::{RegionCtl, Scope};
use crate::ctl::region::fake::{CREATED_MS, FakeApi};
use crate::ctl::region::manifest::{Entry, NamespaceDefault};
use crate::ctl::{CtlError, DocFormat, GetFormat, WatchFormat};

struct Setup {
    fake: FakeApi,
    ctl: RegionCtl<Channel>,
    addr: ApiAddr,
    task: tokio::task::JoinHandle<()>,
}

async fn setup() -> Setup {
    let fake = FakeApi::default();
    let (sock, task) = fake.serve().await;
    let addr: ApiAddr = format!("127.0.0.1:{}", sock.port()).parse().unwrap();
    let c = client::connect(&addr, Duration::from_secs(5), None)
        .await
        .unwrap();
    Setup {
        fake,
        ctl: RegionCtl::new(c, addr.to_string()),
        addr,
        task,
    }
}

fn default_scope() -> Scope {
    Scope {
        namespace: "default".into(),
        all: false,
    }
}

fn text(out: Vec<u8>) -> String {
    String::from_utf8(out).unwrap()
}

const SMALL: &str = "\
apiVersion: networking.ferrinet.dev/v1alpha1
kind: NetworkInterface
metadata: {name: web-1, labels: {app: web}}
spec: {networkRef: {name: net-a}, ips: [{value: 10.0.0.5}]}
---
apiVersion: networking.openkcm.dev/v1alpha1
kind: Network
metadata: {name: net-a}
spec: {prefix: 10.0.0.0/24}
";

#[tokio::test]
async fn apply_creates_then_leaves_unchanged_then_configures() {
    let mut s = setup().await;
    let files = vec![entries(SMALL)];
    let mut out = Vec::new();
    s.ctl.apply(&files, &mut out).await.unwrap();
    // Networks before interfaces, whatever the file's order.
    assert_eq!(
        text(out),
        "network/default/net-a created\nnetworkinterface/default/web-1 created\n"
    );
    let mut out = Vec::new();
    s.ctl.apply(&files, &mut out).await.unwrap();
    assert_eq!(
        text(out),
        "network/default/net-a unchanged\nnetworkinterface/default/web-1 unchanged\n"
    );
    assert_eq!(s.fake.lock().updates, 0);

    let changed = vec![entries(&SMALL.replace("app: web", "app: api"))];
    let mut out = Vec::new();
    s.ctl.apply(&changed, &mut out).await.unwrap();
    assert!(text(out).ends_with("networkinterface/default/web-1 configured\n"));
    let st = s.fake.lock();
    assert_eq!((st.creates, st.updates), (2, 1));
    let ni = st
        .objects
        .values()
        .find(|o| crate::ctl::region::object_label(o) == "networkinterface/default/web-1")
        .unwrap();
    let meta = crate::ctl::region::kind_and_meta(ni).unwrap().1.unwrap();
    assert_eq!(meta.labels.get("app").map(String::as_str), Some("api"));
    assert_eq!(meta.generation, 2);
}

#[tokio::test]
async fn apply_reads_again_once_after_a_concurrent_change() {
    let mut s = setup().await;
    s.ctl
        .apply(&[entries(SMALL)], &mut Vec::new())
        .await
        .unwrap();
    let changed = vec![entries(&SMALL.replace("10.0.0.0/24", "10.0.0.0/23"))];
    // One concurrent writer: the retry with the fresh version succeeds.
    s.fake.lock().interfere = 1;
    let mut out = Vec::new();
    s.ctl.apply(&changed, &mut out).await.unwrap();
    assert!(text(out).starts_with("network/default/net-a configured\n"));
    // A writer that keeps winning: the second FAILED_PRECONDITION is reported (exit 2).
    let again = vec![entries(&SMALL.replace("10.0.0.0/24", "10.0.0.0/22"))];
    s.fake.lock().interfere = 2;
    let err = s.ctl.apply(&again, &mut Vec::new()).await.unwrap_err();
    assert_eq!(err.exit_code(), exit::REFUSED, "{err}");
    assert!(
        err.to_string()
            .starts_with("network/default/net-a: metadata.resource_version: "),
        "{err}"
    );
}

#[tokio::test]
async fn create_delete_and_their_exit_statuses() {
    let mut s = setup().await;
    let files = vec![entries(SMALL)];
    let mut out = Vec::new();
    s.ctl.create(&files, &mut out).await.unwrap();
    assert_eq!(
        text(out),
        "network/default/net-a created\nnetworkinterface/default/web-1 created\n"
    );
    let err = s.ctl.create(&files, &mut Vec::new()).await.unwrap_err();
    assert_eq!(err.exit_code(), exit::NOT_FOUND);
    assert_eq!(
        err.to_string(),
        "network/default/net-a: default/net-a already exists"
    );

    // A refusal names the object and carries the API's field path.
    let bad = vec![entries(
        "apiVersion: networking.ferrinet.dev/v1alpha1\nkind: Network\nmetadata: {name: big}\nspec: {vni: 20000000}\n",
    )];
    let err = s.ctl.apply(&bad, &mut Vec::new()).await.unwrap_err();
    assert_eq!(err.exit_code(), exit::REFUSED);
    assert_eq!(
        err.to_string(),
        "network/default/big: spec.vni: must be 1 to 16777215 (0: allocated)"
    );

    // delete -f goes in the reverse order.
    let mut out = Vec::new();
    s.ctl.delete_files(&files, false, &mut out).await.unwrap();
    assert_eq!(
        text(out),
        "networkinterface/default/web-1 deleted\nnetwork/default/net-a deleted\n"
    );
    let err = s
        .ctl
        .delete(
            RegionKind::Network,
            "default",
            &["net-a".into()],
            false,
            &mut Vec::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), exit::NOT_FOUND);
    assert_eq!(
        err.to_string(),
        "network/default/net-a: default/net-a not found"
    );
    s.ctl
        .delete(
            RegionKind::Network,
            "default",
            &["net-a".into()],
            true,
            &mut Vec::new(),
        )
        .await
        .unwrap();
    let err = s
        .ctl
        .get(
            RegionKind::Network,
            Some("net-a"),
            &default_scope(),
            None,
            GetFormat::Table,
            0,
            &mut Vec::new(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, CtlError::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn get_prints_what_apply_reads_back() {
    let mut s = setup().await;
    let ns = NamespaceDefault::default();
    let all = parse_in(ALL_FIELDS, &ns).unwrap();
    s.ctl
        .apply(std::slice::from_ref(&all), &mut Vec::new())
        .await
        .unwrap();
    assert_eq!(s.fake.lock().creates, 8);

    let now = CREATED_MS + 90_000;
    let tenant = Scope {
        namespace: "tenant-a".into(),
        all: false,
    };
    let mut out = Vec::new();
    let n = s
        .ctl
        .get(
            RegionKind::Network,
            None,
            &tenant,
            None,
            GetFormat::Table,
            now,
            &mut out,
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(
        text(out),
        "NAME    VNI   STATE       PEERINGS   AGE\nnet-a   100   Available   to-b       90s\n"
    );
    // Nothing in `default`.
    let n = s
        .ctl
        .get(
            RegionKind::Network,
            None,
            &default_scope(),
            None,
            GetFormat::Table,
            now,
            &mut Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(n, 0);

    // -o yaml of every kind, applied back: nothing changes.
    let mut printed = String::new();
    for kind in RegionKind::APPLY_ORDER {
        let mut out = Vec::new();
        let scope = Scope {
            namespace: String::new(),
            all: true,
        };
        s.ctl
            .get(kind, None, &scope, None, GetFormat::Yaml, now, &mut out)
            .await
            .unwrap();
        printed.push_str(&text(out));
        printed.push_str("---\n");
    }
    assert!(printed.contains("status:"), "{printed}");
    assert!(
        printed.contains("creationTimestamp: 2023-11-14T22:13:20Z"),
        "{printed}"
    );
    let back = parse_in(&printed, &ns).unwrap();
    assert_eq!(back.len(), 8);
    let mut out = Vec::new();
    s.ctl.apply(&[back], &mut out).await.unwrap();
    assert!(text(out).lines().all(|l| l.ends_with(" unchanged")));
    assert_eq!(s.fake.lock().updates, 0);

    // One object by name, as JSON; -A with a name is refused; a selector is passed on.
    let mut out = Vec::new();
    s.ctl
        .get(
            RegionKind::NetworkInterface,
            Some("web-1"),
            &tenant,
            None,
            GetFormat::Json,
            now,
            &mut out,
        )
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(json["kind"], "NetworkInterface");
    assert_eq!(json["metadata"]["namespace"], "tenant-a");
    assert_eq!(json["status"]["conditions"][0]["reason"], "NodeNotReady");
    let all_ns = Scope {
        namespace: "default".into(),
        all: true,
    };
    let err = s
        .ctl
        .get(
            RegionKind::NetworkInterface,
            Some("web-1"),
            &all_ns,
            None,
            GetFormat::Table,
            now,
            &mut Vec::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), exit::USAGE);
    let mut out = Vec::new();
    s.ctl
        .get(
            RegionKind::NetworkInterface,
            None,
            &all_ns,
            Some("app=web"),
            GetFormat::Table,
            now,
            &mut out,
        )
        .await
        .unwrap();
    assert!(text(out).starts_with("NAMESPACE   NAME    NETWORK"));
    let lists = s.fake.lock().lists.clone();
    assert_eq!(
        lists.last().unwrap(),
        &(2, String::new(), "app=web".to_owned())
    );

    // describe.
    let mut out = Vec::new();
    s.ctl
        .describe(
            RegionKind::NetworkInterface,
            "tenant-a",
            "web-1",
            now,
            &mut out,
        )
        .await
        .unwrap();
    let d = text(out);
    assert!(
        d.starts_with("Name:       web-1\nNamespace:  tenant-a\n"),
        "{d}"
    );
    assert!(
        d.contains("  Placed   False   NodeNotReady   node-1 has no lease\n"),
        "{d}"
    );
}

#[tokio::test]
async fn watch_prints_events_until_count_or_stop_and_whoami() {
    let mut s = setup().await;
    s.ctl
        .apply(&[entries(SMALL)], &mut Vec::new())
        .await
        .unwrap();
    let mut out = Vec::new();
    s.ctl
        .watch(
            None,
            "default",
            WatchFormat::Text,
            Some(2),
            std::future::pending(),
            &mut out,
        )
        .await
        .unwrap();
    assert_eq!(
        text(out),
        "ADDED network/default/net-a Available rv=1\nADDED networkinterface/default/web-1 Pending rv=2\n"
    );
    // SYNCED in JSON, not counted; the API ending the stream after it: unreachable.
    s.fake.lock().end_watch = true;
    let mut out = Vec::new();
    let err = s
        .ctl
        .watch(
            Some(RegionKind::Network),
            "",
            WatchFormat::Json,
            None,
            std::future::pending(),
            &mut out,
        )
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), exit::UNREACHABLE);
    assert!(
        err.to_string()
            .ends_with(": the region API ended the watch"),
        "{err}"
    );
    let lines: Vec<serde_json::Value> = text(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["object"]["metadata"]["name"], "net-a");
    assert_eq!(lines[1]["type"], "SYNCED");
    // A stop signal ends it quietly.
    s.fake.lock().end_watch = false;
    s.ctl
        .watch(
            None,
            "",
            WatchFormat::Text,
            None,
            std::future::ready(()),
            &mut Vec::new(),
        )
        .await
        .unwrap();

    let mut out = Vec::new();
    s.ctl.whoami(DocFormat::Text, &mut out).await.unwrap();
    assert_eq!(
        text(out),
        "Identity:   tenant-a-ci\nRole:       tenant\nNamespaces: tenant-a, default\n"
    );
    let mut out = Vec::new();
    s.ctl.whoami(DocFormat::Yaml, &mut out).await.unwrap();
    assert_eq!(
        text(out),
        "identity: tenant-a-ci\nrole: tenant\nnamespaces:\n- tenant-a\n- default\n"
    );
}

#[tokio::test]
async fn an_api_that_goes_away_is_unreachable() {
    let s = setup().await;
    let addr = s.addr.clone();
    s.task.abort();
    let _ = s.task.await;
    let mut ctl = s.ctl;
    let entries: Vec<Vec<Entry>> = vec![entries(SMALL)];
    let err = ctl.apply(&entries, &mut Vec::new()).await.unwrap_err();
    assert_eq!(err.exit_code(), exit::UNREACHABLE, "{err}");
    assert!(
        err.to_string()
            .starts_with(&format!("cannot reach the region API at {addr}: ")),
        "{err}"
    );
    let err = client::connect(&addr, Duration::from_secs(5), None)
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), exit::UNREACHABLE);
    assert!(err.to_string().contains("refused"), "{err}");
}

#[test]
fn addresses_and_their_schemes() {
    let a: ApiAddr = "api.example:7443".parse().unwrap();
    assert_eq!(
        (a.uri.as_str(), a.scheme),
        ("http://api.example:7443", client::Scheme::Any)
    );
    let a: ApiAddr = "https://[::1]:7443/".parse().unwrap();
    assert_eq!(
        (a.uri.as_str(), a.scheme, a.to_string().as_str()),
        (
            "http://[::1]:7443",
            client::Scheme::Tls,
            "https://[::1]:7443/"
        )
    );
    assert_eq!(
        "http://127.0.0.1:1".parse::<ApiAddr>().unwrap().scheme,
        client::Scheme::Plaintext
    );
    for bad in [
        "api",
        "api:x",
        "http://a:1/path",
        "unix:/x.sock",
        "",
        "u@a:1",
    ] {
        assert!(bad.parse::<ApiAddr>().is_err(), "{bad:?}");
    }
}

#[tokio::test]
async fn schemes_that_contradict_the_tls_flags_are_usage_errors() {
    let tls = crate::ctl::client::TlsFiles {
        ca: "ca.pem".into(),
        cert: "c.pem".into(),
        key: "c.key".into(),
        server_name: None,
    };
    let plain: ApiAddr = "http://127.0.0.1:1".parse().unwrap();
    let err = client::connect(&plain, Duration::from_secs(1), Some(&tls))
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), exit::USAGE, "{err}");
    let https: ApiAddr = "https://127.0.0.1:1".parse().unwrap();
    let err = client::connect(&https, Duration::from_secs(1), None)
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), exit::USAGE, "{err}");
    // Missing certificate files: a usage error naming the flags.
    let err = client::connect(&https, Duration::from_secs(1), Some(&tls))
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), exit::USAGE, "{err}");
    assert!(err.to_string().starts_with("--ca/--cert/--key: "), "{err}");
}

#[test]
fn the_command_line_selects_the_region_api() {
    use crate::ctl::region::cli::{RegionCli, RegionCommand, selects_region_api};
    use clap::Parser as _;
    let args =
        |s: &str| -> Vec<std::ffi::OsString> { s.split_whitespace().map(Into::into).collect() };
    let env = Some(std::ffi::OsStr::new("127.0.0.1:7443"));
    assert!(selects_region_api(&args("--api 127.0.0.1:1 get ni"), None));
    assert!(selects_region_api(&args("get ni --api=127.0.0.1:1"), None));
    assert!(!selects_region_api(&args("get ni"), None));
    assert!(!selects_region_api(&args("apply -f -- --api"), None));
    assert!(selects_region_api(&args("get ni"), env));
    assert!(!selects_region_api(&args("--node unix:/x get ni"), env));
    assert!(!selects_region_api(
        &args("get ni"),
        Some(std::ffi::OsStr::new(""))
    ));

    let cli = RegionCli::try_parse_from(args(
        "ferrinetctl --api 127.0.0.1:1 -n tenant-a get NATGW -A -l app=web -o wide",
    ))
    .unwrap();
    assert_eq!(cli.namespace.as_deref(), Some("tenant-a"));
    let RegionCommand::Get {
        kind,
        all_namespaces,
        selector,
        output,
        ..
    } = cli.command
    else {
        panic!()
    };
    assert_eq!(
        (kind, all_namespaces, selector.as_deref(), output),
        (
            RegionKind::NatGateway,
            true,
            Some("app=web"),
            GetFormat::Wide
        )
    );
    for (alias, kind) in [
        ("net", RegionKind::Network),
        ("interfaces", RegionKind::NetworkInterface),
        ("vip", RegionKind::VirtualIp),
        ("publicprefixes", RegionKind::PublicPrefix),
        ("nat", RegionKind::NatGateway),
        ("lb", RegionKind::LoadBalancer),
        ("netpol", RegionKind::NetworkPolicy),
        ("networkpolicies", RegionKind::NetworkPolicy),
        ("Nodes", RegionKind::Node),
        ("pp", RegionKind::PublicPrefix),
        ("ni", RegionKind::NetworkInterface),
    ] {
        let cli =
            RegionCli::try_parse_from(args(&format!("x --api a:1 describe {alias} n"))).unwrap();
        assert!(
            matches!(cli.command, RegionCommand::Describe { kind: k, .. } if k == kind),
            "{alias}"
        );
    }
    assert!(RegionCli::try_parse_from(args("x --api a:1 get pods")).is_err());
    assert!(RegionCli::try_parse_from(args("x --api a:1 delete")).is_err());
}
