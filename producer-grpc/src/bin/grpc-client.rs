//! grpc-client binary: the gRPC path's HTTP front. All logic lives in the library.

use voteflow_producer_grpc::front;
use voteflow_producer_grpc::settings::FrontSettings;

// mimalloc, not glibc malloc: see docs/decisions/0010-mimalloc.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    voteflow_service::process::main("grpc-client", |settings: FrontSettings, registry, shutdown| {
        front::launch(settings, registry, shutdown)
    })
}
