//! What every answer of a voteflow HTTP service is: a status, a content type, a sized body
//! and `X-Content-Type-Options: nosniff`; and the two answers to votes: 202 with the
//! vote_id, and 200 with a batch report.

use std::io::Cursor;

use rocket::http::{ContentType, Header, Status};
use rocket::response::{self, Responder};
use rocket::{Request, Response};
use uuid::Uuid;
use voteflow_domain::{ItemOutcome, batch};

/// An answer with `body`, its length, and nosniff (written here rather than by Rocket's
/// Shield, which looks each header up before it adds it).
pub(crate) fn answer(status: u16, content_type: ContentType, body: String) -> response::Builder<'static> {
    let mut response = Response::build();
    response
        .status(Status::from_code(status).unwrap_or(Status::InternalServerError))
        .header(content_type)
        .header(Header::new("X-Content-Type-Options", "nosniff"))
        .sized_body(body.len(), Cursor::new(body));
    response
}

/// `202 Accepted` with `{"vote_id": ...}`: the vote is in Kafka.
pub struct Accepted(pub Uuid);

impl<'r> Responder<'r, 'static> for Accepted {
    fn respond_to(self, _request: &'r Request<'_>) -> response::Result<'static> {
        answer(202, ContentType::JSON, format!(r#"{{"vote_id":"{}"}}"#, self.0)).ok()
    }
}

/// `200` with the batch report of [`voteflow_domain::batch::report`].
pub struct BatchReport(pub Vec<ItemOutcome>);

impl<'r> Responder<'r, 'static> for BatchReport {
    fn respond_to(self, _request: &'r Request<'_>) -> response::Result<'static> {
        answer(200, ContentType::JSON, batch::report(&self.0)).ok()
    }
}
