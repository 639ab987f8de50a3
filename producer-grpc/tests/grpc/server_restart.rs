//! grpc-server stopped: grpc-client answers 503 quickly; started again on the same
//! address, the same grpc-client recovers by itself.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{GrpcPipeline, start_server};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grpc_client_answers_503_while_the_server_is_down_and_recovers_after() {
    // Arrange
    let mut pipeline = GrpcPipeline::spawn().await;
    let vote = json!({"band": "Broadcast", "album": "Tender Buttons", "year": 2005, "rank": 8});
    assert_eq!(pipeline.post_vote(&vote).await.status().as_u16(), 202);

    // Act: stop the server.
    let restart_token = pipeline.stop_server();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let response = pipeline.post_vote(&vote).await;
    let waited = started.elapsed();

    // Assert: a quick 503 with Retry-After.
    assert_eq!(response.status().as_u16(), 503);
    assert!(response.headers().get("retry-after").is_some());
    assert!(waited < Duration::from_secs(2), "answered after {waited:?}");

    // Act: the server comes back on the same address.
    start_server(&pipeline.topic, &pipeline.server_addr.to_string(), restart_token).await;

    // Assert: the same front recovers without a restart.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut status = 0;
    while Instant::now() < deadline {
        status = pipeline.post_vote(&vote).await.status().as_u16();
        if status == 202 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status, 202, "grpc-client did not recover");
    let (counted, _) = pipeline.consumer.wait_for_counted(2, Duration::from_secs(30)).await;
    assert_eq!(counted, 2, "exactly the two accepted votes are counted");
}
