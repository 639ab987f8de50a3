//! grpc-server binary: the gRPC path's producer server. All logic lives in the library.

use voteflow_producer_grpc::server;
use voteflow_producer_grpc::settings::ServerSettings;

// mimalloc, not glibc malloc: see docs/decisions/0010-mimalloc.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    voteflow_service::process::main("grpc-server", |settings: ServerSettings, registry, shutdown| {
        server::launch(settings, registry, shutdown)
    })
}
