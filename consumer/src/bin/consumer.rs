//! consumer binary: Kafka -> Redis tallies + MongoDB vote log. All logic is in the library.

use voteflow_consumer::settings::ConsumerSettings;

// mimalloc, not glibc malloc: see docs/decisions/0010-mimalloc.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    voteflow_service::process::main("consumer", |settings: ConsumerSettings, registry, shutdown| {
        voteflow_consumer::launch(settings, registry, shutdown)
    })
}
