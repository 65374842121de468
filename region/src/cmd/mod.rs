//! Subcommands of the `ferrinet-region` binary. Each module has `Args` (clap) and a blocking
//! `run(Args) -> anyhow::Result<()>` that builds its own runtime where it needs one.

pub mod bench;
pub mod certs;
pub mod client;
pub mod serve;
