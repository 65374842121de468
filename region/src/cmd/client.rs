//! `ferrinet-region client` (being written).

/// Options of `ferrinet-region client`.
#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("'client' is not available yet")
}
