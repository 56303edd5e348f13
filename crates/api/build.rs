//! Generates the gRPC code for `proto/rollcall/v1/verifier.proto` with protox (a pure-Rust
//! protobuf compiler, so no system `protoc` is needed) and tonic-prost-build, and writes the
//! encoded file descriptor set that the reflection service serves.

use std::path::PathBuf;

const PROTO_ROOT: &str = "../../proto";
const PROTO: &str = "rollcall/v1/verifier.proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO_ROOT}");

    let mut compiler = protox::Compiler::new([PROTO_ROOT])?;
    compiler.include_source_info(true).include_imports(true);
    compiler.open_file(PROTO)?;

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("rollcall_v1_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}
