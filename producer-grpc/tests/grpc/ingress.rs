//! End to end through the ingress: a real nginx rendered from `scripts/ingress/nginx.conf.in`
//! (itself rendered from k8s/routes.yaml) in front of both producer pairs. Every request of
//! the routing table's `expect` list (`scripts/ingress/routes.json`: the course's requests
//! and a few that must be refused) gets its answer, each vote is stored with the path the
//! table names, `/votes` and `POST /` are split between the paths, and Redis and MongoDB
//! count exactly per path.

use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt as _;
use mongodb::bson::doc;
use serde::Deserialize;
use serde_json::json;

use crate::deployment::Deployment;

/// One request of the routing table's `expect` list.
#[derive(Deserialize)]
struct Probe {
    method: String,
    path: String,
    /// `rest`, `grpc`, `split` or `404`.
    answer: String,
}

fn probes() -> Vec<Probe> {
    #[derive(Deserialize)]
    struct Table {
        expect: Vec<Probe>,
    }
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/ingress/routes.json");
    let table: Table = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("routes.json");
    assert!(table.expect.len() >= 20, "the expect list lost its requests");
    table.expect
}

fn vote(band: &str) -> serde_json::Value {
    json!({"name": band, "album": "Live", "year": "2001", "rank": "7.5"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_route_of_the_table_answers_and_counts_on_its_path_through_the_ingress() {
    // Arrange: both pairs, one consumer, and the ingress in front.
    let deployment = Deployment::start().await;
    let (consumer, ingress) = (&deployment.consumer, &deployment.ingress);
    let http = reqwest::Client::new();
    let probes = probes();

    // Act 1: every request of the table, each vote with a band of its own.
    let mut expected_votes = 0;
    for (i, probe) in probes.iter().enumerate() {
        let band = format!("Probe {i}");
        let batch = probe.path.ends_with("/votes/batch");
        let body = if batch { json!([vote(&band), vote(&band)]) } else { vote(&band) };
        let method = reqwest::Method::from_bytes(probe.method.as_bytes()).unwrap();
        let response = http.request(method, format!("{}{}", ingress.url, probe.path)).json(&body).send().await.unwrap();
        let status = response.status().as_u16();
        let answer: serde_json::Value = response.json().await.expect("every answer is JSON");
        let want = match (probe.answer.as_str(), batch) {
            ("404", _) => 404,
            (_, true) => 200,
            (_, false) => 202,
        };
        assert_eq!(status, want, "{} {}: {answer}", probe.method, probe.path);
        if want == 404 {
            assert_eq!(answer["error"], "not_found", "{} {}: {answer}", probe.method, probe.path);
        } else {
            expected_votes += if batch { 2 } else { 1 };
        }
    }
    // Act 2: 120 votes to /votes and 40 to POST /, which the ingress splits.
    let routes: Vec<&str> = std::iter::repeat_n("/votes", 120).chain(std::iter::repeat_n("/", 40)).collect();
    let statuses: Vec<u16> =
        futures::stream::iter(routes.iter().enumerate())
            .map(|(i, route)| {
                let (http, url) = (&http, format!("{}{route}", ingress.url));
                async move {
                    http.post(url).json(&vote(&format!("Split {}", i % 4))).send().await.unwrap().status().as_u16()
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
    assert!(statuses.iter().all(|status| *status == 202), "{statuses:?}");
    let total = expected_votes + 160;

    // Assert: counted and logged exactly, each probe's votes on the path the table names.
    let (counted, logged) = consumer.wait_for_counted(total, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!((counted, logged), (total, total as u64));
    assert_eq!((consumer.total().await, consumer.logged().await), (total, total as u64), "nothing counted late");
    for (i, probe) in probes.iter().enumerate() {
        let band = format!("Probe {i}");
        let documents: Vec<_> = consumer.votes.find(doc! { "band": &band }).await.unwrap().collect::<Vec<_>>().await;
        let paths: Vec<String> =
            documents.into_iter().map(|d| d.unwrap().get_str("path").unwrap().to_owned()).collect();
        let want = if probe.answer == "404" {
            0
        } else if probe.path.ends_with("/votes/batch") {
            2
        } else {
            1
        };
        assert_eq!(paths.len(), want, "{} {} stored {paths:?}", probe.method, probe.path);
        let on_path = |path: &String| probe.answer == "split" || *path == probe.answer;
        assert!(
            paths.iter().all(on_path),
            "{} {} counted on {paths:?}, the table says {}",
            probe.method,
            probe.path,
            probe.answer
        );
    }
    let bands = consumer.band_counts().await;
    assert!((0..4).all(|b| bands.get(&format!("Split {b}")) == Some(&40)), "{bands:?}");
    let mut split = Vec::new();
    for path in ["rest", "grpc"] {
        split
            .push(consumer.votes.count_documents(doc! { "path": path, "band": { "$regex": "^Split" } }).await.unwrap());
    }
    let (rest, grpc) = (split[0], split[1]);
    assert_eq!(rest + grpc, 160);
    // A fair split puts 80 +- 6.3 (one standard deviation) on each path; under 40 is six.
    assert!(rest >= 40 && grpc >= 40, "the split sent {rest} to rest and {grpc} to grpc");
    let paths = consumer.path_counts().await;
    for (path, count) in paths {
        let documents = consumer.votes.count_documents(doc! { "path": &path }).await.unwrap();
        assert_eq!(documents as i64, count, "MongoDB and Redis agree on the {path} path");
    }
}
