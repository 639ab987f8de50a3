//! Generates the `voteflow.v1.VoteService` client and server stubs from `proto/vote.proto`
//! with protox (pure Rust, no `protoc`); their messages are the domain crate's.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=../proto/vote.proto");
    let descriptors = protox::compile(["vote.proto"], ["../proto"])?;
    tonic_prost_build::configure().extern_path(".voteflow.v1", "::voteflow_domain::pb").compile_fds(descriptors)?;
    Ok(())
}
