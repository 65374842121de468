//! What the conformance tests run on: a fixture per backend (an embedded store in a temp dir, or
//! a real etcd started on loopback with its own data dir), and the `conformance!` macro that
//! turns each shared test function into one test per backend.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ferrinet_api::store::{EmbeddedOptions, EtcdConfig, EtcdTls, Store, Watch, WatchEvent};
use tempfile::TempDir;

/// Generous bound on anything the tests wait for: a loaded CI machine is slow, and the tests
/// assert what happens, never how fast.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Runs each listed `async fn NAME(&mut Fixture)` once per backend, as
/// `embedded::NAME` and `etcd::NAME`.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let mut f = $crate::harness::Fixture::embedded().await;
                    super::$name(&mut f).await;
                    f.finish().await;
                }
            )*
        }
        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let mut f = $crate::harness::Fixture::etcd().await;
                    super::$name(&mut f).await;
                    f.finish().await;
                }
            )*
        }
    };
}
pub(crate) use conformance;

/// A store under test and what it runs on.
pub struct Fixture {
    dir: TempDir,
    store: Option<Store>,
    etcd: Option<EtcdProcess>,
    options: EmbeddedOptions,
}

impl Fixture {
    /// An embedded store in a fresh temp dir.
    pub async fn embedded() -> Self {
        Self::embedded_with(EmbeddedOptions::default()).await
    }

    pub async fn embedded_with(options: EmbeddedOptions) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open_embedded(dir.path().join("store.redb"), options.clone())
            .await
            .expect("open the embedded store");
        Self {
            dir,
            store: Some(store),
            etcd: None,
            options,
        }
    }

    /// A store on a fresh etcd of its own.
    pub async fn etcd() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let etcd = tokio::task::block_in_place(|| EtcdProcess::start(dir.path(), None));
        let store = etcd.connect().await;
        Self {
            dir,
            store: Some(store),
            etcd: Some(etcd),
            options: EmbeddedOptions::default(),
        }
    }

    pub fn store(&self) -> &Store {
        self.store.as_ref().expect("store open")
    }

    pub fn etcd_config(&self) -> EtcdConfig {
        self.etcd.as_ref().expect("an etcd fixture").config()
    }

    pub fn etcd_process(&mut self) -> &mut EtcdProcess {
        self.etcd.as_mut().expect("an etcd fixture")
    }

    /// Another handle as a second replica would have it: its own connection to etcd; on the
    /// embedded store (one process by design) a clone of the handle.
    pub async fn other_replica(&self) -> Store {
        match &self.etcd {
            Some(etcd) => etcd.connect().await,
            None => self.store().clone(),
        }
    }

    /// Loses the connection and comes back: the embedded store is closed and reopened from
    /// its file; etcd is stopped and started again on the same data dir and ports (the same
    /// handle reconnects by itself). Watches and campaigns of the embedded store must be
    /// dropped first.
    pub async fn reconnect(&mut self) {
        match &mut self.etcd {
            Some(etcd) => {
                tokio::task::block_in_place(|| {
                    etcd.stop();
                    etcd.restart();
                });
                wait_answers(self.store()).await;
            }
            None => {
                let store = self.store.take().expect("store open");
                store.close().await.expect("close the embedded store");
                let store =
                    Store::open_embedded(self.dir.path().join("store.redb"), self.options.clone())
                        .await
                        .expect("reopen the embedded store");
                self.store = Some(store);
            }
        }
    }

    /// Stops what the fixture started.
    pub async fn finish(mut self) {
        if let Some(store) = self.store.take() {
            let _ = store.close().await;
        }
        if let Some(mut etcd) = self.etcd.take() {
            etcd.stop();
        }
    }
}

/// Polls until the store answers again (after a restart of etcd).
pub async fn wait_answers(store: &Store) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match store.revision().await {
            Ok(_) => return,
            Err(e) if tokio::time::Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("store does not answer after {PATIENCE:?}: {e}"),
        }
    }
}

/// The next event of `w`, within [`PATIENCE`].
pub async fn next_event(w: &mut Watch) -> WatchEvent {
    match tokio::time::timeout(PATIENCE, w.next()).await {
        Ok(Ok(e)) => e,
        Ok(Err(e)) => panic!("watch failed: {e}"),
        Err(_) => panic!("no watch event within {PATIENCE:?}"),
    }
}

/// The `etcd` binary, or a failure naming the fix: these tests never skip.
fn etcd_binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")])
        .map(|d| d.join("etcd"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "etcd not found on PATH: the etcd store's conformance tests need a real etcd. \
                 Install etcd: apt-get install etcd-server (scripts/test does it)"
            )
        })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Server side of TLS towards etcd: PEM files for `--trusted-ca-file`, `--cert-file`,
/// `--key-file`, and the client's [`EtcdTls`].
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client: EtcdTls,
}

/// An etcd server on loopback with its own data dir; killed when dropped.
pub struct EtcdProcess {
    dir: PathBuf,
    client_port: u16,
    peer_port: u16,
    tls: Option<TlsFiles>,
    child: Option<Child>,
}

impl EtcdProcess {
    /// Starts etcd in `dir/etcd` on free loopback ports (over TLS, mutual, with `tls`).
    pub fn start(dir: &Path, tls: Option<TlsFiles>) -> Self {
        let mut etcd = Self {
            dir: dir.to_owned(),
            client_port: 0,
            peer_port: 0,
            tls,
            child: None,
        };
        // Another test may take a port between probing and etcd binding it: retry.
        for _ in 0..5 {
            etcd.client_port = free_port();
            etcd.peer_port = free_port();
            if etcd.spawn() {
                return etcd;
            }
        }
        panic!("etcd did not start; log:\n{}", etcd.log());
    }

    /// Starts etcd again on the same data dir and ports.
    pub fn restart(&mut self) {
        let deadline = std::time::Instant::now() + PATIENCE;
        while !self.spawn() {
            assert!(
                std::time::Instant::now() < deadline,
                "etcd did not restart; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    pub fn config(&self) -> EtcdConfig {
        let mut config = EtcdConfig::new([self.endpoint()]);
        config.tls = self.tls.as_ref().map(|t| t.client.clone());
        config
    }

    /// A new handle with its own connection, once etcd answers.
    pub async fn connect(&self) -> Store {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            match Store::connect_etcd(self.config()).await {
                Ok(store) => return store,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!(
                    "etcd at {} does not answer: {e}\nlog:\n{}",
                    self.endpoint(),
                    self.log()
                ),
            }
        }
    }

    /// Kills etcd (as a crash would) and waits for it to be gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("etcd.log")
    }

    fn log(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// Spawns etcd; false if it exited at once (a port taken, say).
    fn spawn(&mut self) -> bool {
        let client = format!(
            "{}://127.0.0.1:{}",
            if self.tls.is_some() { "https" } else { "http" },
            self.client_port
        );
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("etcd log file");
        let mut cmd = Command::new(etcd_binary());
        cmd.arg("--name")
            .arg("ferrinet-test")
            .arg("--data-dir")
            .arg(self.dir.join("etcd"))
            .arg("--listen-client-urls")
            .arg(&client)
            .arg("--advertise-client-urls")
            .arg(&client)
            .arg("--listen-peer-urls")
            .arg(&peer)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer)
            .arg("--initial-cluster")
            .arg(format!("ferrinet-test={peer}"))
            // A single member elects itself at once with short timeouts, and etcd's minimum
            // lease TTL (1.5 election timeouts, rounded up to seconds) becomes 1 s.
            .arg("--heartbeat-interval")
            .arg("10")
            .arg("--election-timeout")
            .arg("100")
            .arg("--logger")
            .arg("zap")
            .arg("--log-outputs")
            .arg("stderr")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("etcd log file"))
            .stderr(log);
        if let Some(tls) = &self.tls {
            cmd.arg("--cert-file")
                .arg(&tls.cert)
                .arg("--key-file")
                .arg(&tls.key)
                .arg("--trusted-ca-file")
                .arg(&tls.ca)
                .arg("--client-cert-auth");
        }
        let mut child = cmd.spawn().expect("spawn etcd");
        // Until etcd listens, an early exit means it could not start.
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                return false;
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.client_port)).is_ok() {
                self.child = Some(child);
                return true;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        self.stop();
    }
}
