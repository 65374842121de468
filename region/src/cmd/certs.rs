//! `ferrinet-region certs` (being written).

/// Options of `ferrinet-region certs`.
#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("'certs' is not available yet")
}
