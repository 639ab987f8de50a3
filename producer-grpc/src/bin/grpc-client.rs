//! grpc-client binary: the gRPC path's HTTP front. All logic lives in the library.

use voteflow_producer_grpc::front;
use voteflow_producer_grpc::settings::FrontSettings;

// mimalloc, not glibc malloc: see "Where the time goes" in the README.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    voteflow_service::process::main("grpc-client", |settings: FrontSettings, registry, shutdown| {
        front::launch(settings, registry, shutdown)
    })
}
