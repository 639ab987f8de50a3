//! `POST /votes/batch` on the gRPC path (forwarded as one CastVotes stream): per-vote
//! outcomes, and exactly the valid votes counted.

use std::time::Duration;

use serde_json::json;

use crate::helpers::GrpcPipeline;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mixed_batch_counts_exactly_its_valid_votes() {
    // Arrange
    let pipeline = GrpcPipeline::spawn().await;
    let batch = json!([
        {"band": "Talk Talk", "album": "Spirit of Eden", "year": 1988, "rank": 10},
        {"band": "Talk Talk", "album": "Laughing Stock", "year": 1991, "rank": -1},
        {"name": "Slint", "album": "Spiderland", "year": "1991", "rank": "9.5"},
        {"artist": "Bark Psychosis", "album": "Hex", "year": "1994", "ranked": "8.5"},
        {"band": "Slint", "album": "Tweez", "year": "nineteen", "rank": 6}
    ]);

    // Act
    let response = pipeline.http.post(format!("{}/votes/batch", pipeline.front_url)).json(&batch).send().await.unwrap();

    // Assert
    assert_eq!(response.status().as_u16(), 200);
    let report: serde_json::Value = response.json().await.unwrap();
    assert_eq!((report["accepted"].as_u64(), report["rejected"].as_u64()), (Some(3), Some(2)), "{report}");
    assert_eq!(report["results"][1]["field"], "rank");
    assert_eq!(report["results"][4]["field"], "year");
    let (counted, logged) = pipeline.consumer.wait_for_counted(3, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!((counted, logged), (3, 3));
    let after_pause = (pipeline.consumer.total().await, pipeline.consumer.logged().await);
    assert_eq!(after_pause, (3, 3), "nothing counted or logged late");
    assert_eq!(pipeline.consumer.path_counts().await.get("grpc"), Some(&3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cast_votes_stream_with_invalid_votes_reports_each() {
    let pipeline = GrpcPipeline::spawn().await;
    let mut grpc = pipeline.grpc().await;
    let good = voteflow_domain::pb::Vote {
        band: "Cluster".into(),
        album: "Zuckerzeit".into(),
        year: 1974,
        rank: 9.0,
        ..Default::default()
    };
    let bad = voteflow_domain::pb::Vote { year: 3000, ..good.clone() };

    let summary = grpc.cast_votes(tokio_stream::iter(vec![good.clone(), bad, good])).await.unwrap().into_inner();

    assert_eq!((summary.accepted, summary.rejected), (2, 1));
    assert_eq!(summary.results[1].error_field, "year");
    assert_eq!(summary.results[1].error_code, "invalid_field");
    assert!(summary.results[0].accepted && summary.results[2].accepted);
}
