//! `ferrinet-region certs`: a development PKI (region CA, server and node certificates).

use std::path::PathBuf;

use anyhow::Context as _;
use ferrinet_region::certs;

/// Options of `ferrinet-region certs`.
#[derive(clap::Args)]
pub struct Args {
    /// Directory for ca.pem, ca.key, server.pem, server.key, NAME.pem and NAME.key.
    #[arg(long, default_value = "pki")]
    out: PathBuf,
    /// A node certificate with this identity (its first SAN); repeatable.
    #[arg(long = "node", value_name = "NAME")]
    nodes: Vec<String>,
    /// Extra server certificate SAN besides localhost, 127.0.0.1 and ::1; repeatable.
    #[arg(long = "server-name", value_name = "NAME")]
    server_names: Vec<String>,
    /// Replace an existing CA in --out (without it, an existing CA signs the new certificates).
    #[arg(long)]
    force: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let reused = certs::ca_exists(&args.out) && !args.force;
    let files = certs::write_pki(&args.out, &args.server_names, &args.nodes, args.force)
        .with_context(|| format!("creating certificates in {}", args.out.display()))?;
    if reused {
        println!(
            "using the existing CA in {} (pass --force to replace it)",
            args.out.display()
        );
    }
    for f in files {
        println!("wrote {}", f.display());
    }
    Ok(())
}
