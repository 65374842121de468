//! `ferrinet-region bench` (being written).

/// Options of `ferrinet-region bench`.
#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("'bench' is not available yet")
}
