//! Compiles `proto/` with `protox` (pure Rust, no system `protoc`) and hands the
//! descriptors to `tonic-prost-build`, which writes one module per proto
//! package into `OUT_DIR`. The encoded descriptor set is written beside them
//! for `keel_proto::FILE_DESCRIPTOR_SET`.

use std::path::PathBuf;

use prost::Message as _;

const PROTOS: [&str; 7] = [
    "proto/mvccpb/kv.proto",
    "proto/authpb/auth.proto",
    "proto/etcdserverpb/rpc.proto",
    "proto/v3lockpb/v3lock.proto",
    "proto/v3electionpb/v3election.proto",
    "proto/keelpb/raft.proto",
    "proto/keelpb/internal.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let fds = protox::compile(PROTOS, ["proto"])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    // The descriptor set served for reflection is etcd's client API only: Keel's peer
    // protocol (`keelpb`) is generated below but is not part of that API.
    let mut client_api = fds.clone();
    client_api
        .file
        .retain(|file| file.package.as_deref() != Some("keelpb"));
    std::fs::write(
        out_dir.join("keel_descriptor.bin"),
        client_api.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // The snapshot header would make every data chunk as large as itself.
        .boxed(".keelpb.SnapshotChunk.part.header")
        // A watched put goes to every watcher of its key: with `Bytes` the server
        // converts an event once per stream and each watcher's copy shares its buffers.
        .bytes(".mvccpb.KeyValue")
        .compile_fds(fds)?;
    Ok(())
}
