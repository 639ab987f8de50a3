//! rest-client binary: the REST path's HTTP front. All logic lives in the library.

use voteflow_producer_rest::front;
use voteflow_producer_rest::settings::FrontSettings;

// mimalloc, not glibc malloc: see docs/decisions/0010-mimalloc.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    voteflow_service::process::main("rest-client", |settings: FrontSettings, registry, shutdown| {
        front::launch(settings, registry, shutdown)
    })
}
