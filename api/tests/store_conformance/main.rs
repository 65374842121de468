//! One suite of store tests run against both backends of `ferrinet_api::store`: the embedded
//! redb store in a temp dir, and a real etcd that each test starts on loopback with its own
//! data dir (and stops). etcd must be installed (`apt-get install etcd-server`, which
//! `scripts/test` does): without it the etcd tests fail, they never skip.
//!
//! Shared tests are written once as `async fn NAME(&mut Fixture)` and listed in a
//! `conformance!` call, which makes `embedded::NAME` and `etcd::NAME`; what only one backend can
//! show (bounded history, lease expiry, etcd restarts under a watch, TLS) has tests of its own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

mod election;
mod etcd_only;
mod kv;
mod watch;
