//! Bad input sent straight to grpc-server: INVALID_ARGUMENT naming the field, or
//! RESOURCE_EXHAUSTED for an oversize message, and nothing written anywhere.

use std::time::Duration;

use tonic::Code;
use voteflow_domain::pb;
use voteflow_testkit::topic_records;

use crate::helpers::GrpcPipeline;

/// A message that is not a `Vote`: field 4 (`year`, an int32) sent as a string, so the
/// bytes are not a valid encoding of `voteflow.v1.Vote`.
#[derive(Clone, PartialEq, prost::Message)]
struct NotAVote {
    #[prost(string, tag = "4")]
    year: String,
}

fn valid() -> pb::Vote {
    pb::Vote { band: "Stereolab".into(), album: "Dots and Loops".into(), year: 1997, rank: 8.5, ..Default::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_votes_are_refused_with_the_field_named_and_nothing_is_written() {
    // Arrange
    let pipeline = GrpcPipeline::spawn().await;
    let mut grpc = pipeline.grpc().await;

    // Act + Assert: each invalid vote names its field.
    for (vote, field) in [
        (pb::Vote { band: String::new(), ..valid() }, "band"),
        (pb::Vote { album: "a\u{0}b".into(), ..valid() }, "album"),
        (pb::Vote { year: 1850, ..valid() }, "year"),
        (pb::Vote { rank: 10.5, ..valid() }, "rank"),
        (pb::Vote { rank: f64::NAN, ..valid() }, "rank"),
        (pb::Vote { vote_id: "nope".into(), ..valid() }, "vote_id"),
    ] {
        let status = grpc.cast_vote(vote).await.expect_err("refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().starts_with(field), "{status:?}");
        assert_eq!(status.metadata().get("voteflow-field").unwrap().to_str().unwrap(), field);
    }

    let oversize = pb::Vote { band: "x".repeat(20_000), ..valid() };
    let status = grpc.cast_vote(oversize).await.expect_err("refused");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");

    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", pipeline.server_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut raw = tonic::client::Grpc::new(channel);
    raw.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<NotAVote, pb::CastVoteReply>::default();
    let path = http::uri::PathAndQuery::from_static("/voteflow.v1.VoteService/CastVote");
    let status = raw
        .unary(tonic::Request::new(NotAVote { year: "1997".into() }), path, codec)
        .await
        .expect_err("malformed protobuf is refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");

    // A valid vote last: once it is counted, anything let through would be too.
    grpc.cast_vote(valid()).await.expect("a valid vote is accepted");
    let (counted, logged) = pipeline.consumer.wait_for_counted(1, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!((counted, logged), (1, 1));
    let after_pause = (pipeline.consumer.total().await, pipeline.consumer.logged().await);
    assert_eq!(after_pause, (1, 1), "nothing counted or logged late");
    assert_eq!(topic_records(&pipeline.topic), 1, "only the valid vote reached Kafka");
}
