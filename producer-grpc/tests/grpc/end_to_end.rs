//! Votes through grpc-client reach Kafka, Redis and MongoDB exactly once, marked `grpc`.

use std::time::Duration;

use futures::StreamExt as _;
use mongodb::bson::doc;
use serde_json::json;

use crate::helpers::GrpcPipeline;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn votes_through_grpc_client_are_counted_and_logged_exactly_once() {
    // Arrange
    let pipeline = GrpcPipeline::spawn().await;
    let votes: Vec<_> = (0..150)
        .map(|i| match i % 3 {
            0 => json!({"name": "Can", "album": "Tago Mago", "year": "1971", "rank": "9.5"}),
            1 => json!({"artist": "Neu!", "album": "Neu! 75", "year": "1975", "ranked": "8.0"}),
            _ => json!({"band": "Can", "album": "Ege Bamyasi", "year": 1972, "rank": 9}),
        })
        .collect();

    // Act
    let statuses: Vec<u16> = futures::stream::iter(votes)
        .map(|vote| {
            let pipeline = &pipeline;
            async move { pipeline.post_vote(&vote).await.status().as_u16() }
        })
        .buffer_unordered(16)
        .collect()
        .await;

    // Assert
    assert!(statuses.iter().all(|status| *status == 202), "{statuses:?}");
    let (counted, logged) = pipeline.consumer.wait_for_counted(150, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!((counted, logged), (150, 150));
    let after_pause = (pipeline.consumer.total().await, pipeline.consumer.logged().await);
    assert_eq!(after_pause, (150, 150), "nothing counted or logged late");
    let bands = pipeline.consumer.band_counts().await;
    assert_eq!((bands.get("Can"), bands.get("Neu!")), (Some(&100), Some(&50)));
    let paths = pipeline.consumer.path_counts().await;
    assert_eq!(paths.get("grpc"), Some(&150));
    let grpc_documents = pipeline.consumer.votes.count_documents(doc! { "path": "grpc" }).await.unwrap();
    assert_eq!(grpc_documents, 150);
}
