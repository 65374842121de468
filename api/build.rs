//! Compiles the etcd v3 API subset under `proto/etcd/` with protox (pure Rust), so the etcd store
//! builds with the Rust toolchain alone (no system `protoc`). Only clients are generated: ferrinet
//! talks to etcd, it does not serve its API.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from("proto/etcd");
    let files = [dir.join("mvcc.proto"), dir.join("rpc.proto")];
    println!("cargo:rerun-if-changed=proto");
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let fds = protox::compile(&files, [&dir])?;
    tonic_prost_build::configure()
        .build_server(false)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
