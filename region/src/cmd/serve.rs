//! `ferrinet-region serve` (being written).

/// Options of `ferrinet-region serve`.
#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("'serve' is not available yet")
}
