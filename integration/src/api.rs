//! The region API for end-to-end tests: the real `ferrinet-api` binary on loopback with its
//! embedded store in a temporary directory, mutual TLS with the kit's PKI, and `ferrinetctl
//! --api` runs against it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::Context as _;

use crate::{ChildGuard, Pki, WAIT, ctl_bin, poll, workspace_bin};

/// The identity of the admin certificate the kit makes for `ferrinetctl --api`.
pub const ADMIN: &str = "admin";

/// The `ferrinet-api` binary (`FERRINET_API_BIN` overrides).
pub fn api_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        workspace_bin(
            "FERRINET_API_BIN",
            "ferrinet-api",
            "ferrinet-api",
            &["Cargo.toml", "Cargo.lock", "api", "proto", "route-client"],
        )
    })
}

/// A running `ferrinet-api`.
#[derive(Debug)]
pub struct ApiProc {
    /// The process.
    pub child: ChildGuard,
    /// Its gRPC address.
    pub addr: String,
    /// Its DNS address (UDP and TCP).
    pub dns: String,
    log: PathBuf,
    pki: Pki,
}

impl ApiProc {
    /// Starts `ferrinet-api` with its store under `dir`, TLS from `pki` (whose server
    /// certificate names localhost and 127.0.0.1), `admin` as admin and every `node` as a node,
    /// and `extra` TOML appended. Returns once it serves (its ready file is written).
    pub fn start(dir: &Path, pki: &Pki, nodes: &[&str], extra: &str) -> anyhow::Result<Self> {
        let ready = dir.join("api.ready");
        let _ = std::fs::remove_file(&ready);
        let quoted: Vec<String> = nodes.iter().map(|n| format!("{n:?}")).collect();
        let config = format!(
            "[api]\nlisten = \"127.0.0.1:0\"\nca = {:?}\ncert = {:?}\nkey = {:?}\n\
             [store]\npath = {:?}\n[dns]\nlisten = \"127.0.0.1:0\"\nzone = \"test.ferrinet\"\n\
             [access]\nadmins = [\"{ADMIN}\"]\nnodes = [{}]\n{extra}\n",
            pki.ca(),
            pki.dir.join("server.pem"),
            pki.dir.join("server.key"),
            dir.join("api-state.redb"),
            quoted.join(", "),
        );
        let path = dir.join("api.toml");
        std::fs::write(&path, config).context("writing the API config")?;
        let log = dir.join("api.log");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        let child = Command::new(api_bin())
            .args(["--config", &path.display().to_string()])
            .args(["--ready-file", &ready.display().to_string()])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .context("spawning ferrinet-api")?;
        let child = ChildGuard(child);
        let text = poll("ferrinet-api ready file", || {
            Ok(std::fs::read_to_string(&ready)
                .ok()
                .filter(|t| t.ends_with('\n')))
        })
        .with_context(|| std::fs::read_to_string(&log).unwrap_or_default())?;
        let v: serde_json::Value = serde_json::from_str(&text).context("ready file")?;
        let field = |k: &str| v[k].as_str().map(str::to_owned).context("ready file field");
        Ok(Self {
            child,
            addr: field("api")?,
            dns: field("dns")?,
            log,
            pki: pki.clone(),
        })
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `ferrinetctl --api` as the admin; returns the exit code, stdout and stderr.
    pub fn ctl(&self, args: &[&str], stdin: Option<&str>) -> anyhow::Result<(i32, String, String)> {
        use std::io::Write as _;
        let api = format!("https://{}", self.addr.replace("127.0.0.1", "localhost"));
        let mut child = Command::new(ctl_bin())
            .args(["--api", &api])
            .args(["--ca", &self.pki.ca().display().to_string()])
            .args(["--cert", &self.pki.cert(ADMIN).display().to_string()])
            .args(["--key", &self.pki.key(ADMIN).display().to_string()])
            .args(["--timeout", &WAIT.as_secs().to_string()])
            .args(args)
            .env_remove("FERRINET_API")
            .env_remove("FERRINET_NODE")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawning ferrinetctl")?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        Ok((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }
}
