//! The suite's verdict: what the client was told against what Redis and MongoDB hold,
//! per band and per vote_id, once the consumers have caught up.

use std::collections::{BTreeMap, HashMap, HashSet};

use uuid::Uuid;

use super::load::{Answer, SentVote};
use crate::tally::Sinks;

#[derive(Debug, Default)]
pub struct Verdict {
    pub accepted: u64,
    pub counted: u64,
    pub logged: u64,
    /// Accepted votes missing from the log, plus per band counts short of what was accepted.
    pub lost: u64,
    /// Logged votes that were never accepted, plus per band counts above what was accepted.
    pub duplicated: u64,
    /// Valid votes answered 4xx, and invalid votes answered 2xx: both wrong answers.
    pub wrong_answers: u64,
    /// Votes never answered 2xx or 4xx before the client gave up.
    pub gave_up: u64,
    pub refused: u64,
    pub retried: u64,
    /// band -> (accepted, counted in Redis, logged in MongoDB).
    pub bands: BTreeMap<String, (u64, u64, u64)>,
    /// path -> votes accepted on it.
    pub paths: BTreeMap<&'static str, u64>,
}

impl Verdict {
    /// What is wrong, if anything: every vote answered for what it is, none given up, each
    /// path accepting, and the sinks holding exactly the accepted votes.
    pub fn failures(&self) -> Vec<String> {
        let mut failures = Vec::new();
        if self.accepted == 0 {
            failures.push("no vote accepted".to_owned());
        }
        if self.gave_up > 0 {
            failures.push(format!("votes given up: {}", self.gave_up));
        }
        if self.paths.is_empty() {
            failures.push("no path sent votes".to_owned());
        }
        for (path, _) in self.paths.iter().filter(|(_, accepted)| **accepted == 0) {
            failures.push(format!("the {path} path accepted nothing"));
        }
        if self.lost > 0 || self.duplicated > 0 || self.accepted != self.counted || self.counted != self.logged {
            failures.push(format!(
                "accepted={} counted={} logged={} lost={} duplicated={}",
                self.accepted, self.counted, self.logged, self.lost, self.duplicated
            ));
        }
        if self.wrong_answers > 0 {
            failures.push(format!("{} wrong answers", self.wrong_answers));
        }
        failures
    }

    pub fn print(&self) {
        println!("per band: accepted / counted (Redis) / logged (MongoDB)");
        for (band, (accepted, counted, logged)) in &self.bands {
            let mark = if accepted == counted && counted == logged { "" } else { "   <-- MISMATCH" };
            println!("  {band:<28} {accepted:>7} {counted:>7} {logged:>7}{mark}");
        }
        println!(
            "client: retried={} (votes answered 503/5xx/no answer at least once, then re-sent with the same vote_id) \
             refused={} (invalid on purpose, 4xx) gave_up={} wrong_answers={}",
            self.retried, self.refused, self.gave_up, self.wrong_answers
        );
        let paths: Vec<String> = self.paths.iter().map(|(path, accepted)| format!("{path}={accepted}")).collect();
        println!("accepted per path: {}", paths.join(" "));
        println!(
            "accepted={} counted={} logged={} lost={} duplicated={}",
            self.accepted, self.counted, self.logged, self.lost, self.duplicated
        );
    }
}

pub async fn judge(ledger: &[SentVote], sinks: &Sinks) -> anyhow::Result<Verdict> {
    let mut verdict = Verdict::default();
    let mut accepted: HashMap<Uuid, &str> = HashMap::new();
    for vote in ledger {
        let on_path = verdict.paths.entry(vote.path).or_default();
        if vote.attempts > 1 {
            verdict.retried += 1;
        }
        match vote.answer {
            Answer::Accepted => {
                *on_path += 1;
                accepted.insert(vote.vote_id, &vote.band);
                verdict.bands.entry(vote.band.clone()).or_default().0 += 1;
            }
            Answer::Refused => verdict.refused += 1,
            Answer::Unavailable => verdict.gave_up += 1,
        }
        let wrong = match vote.answer {
            Answer::Accepted => !vote.valid,
            Answer::Refused => vote.valid,
            Answer::Unavailable => false,
        };
        verdict.wrong_answers += u64::from(wrong);
    }
    verdict.accepted = accepted.len() as u64;

    for (band, counted) in sinks.band_counts().await? {
        verdict.bands.entry(band).or_default().1 = counted;
    }
    verdict.counted = sinks.total().await?;

    let mut logged_ids = HashSet::new();
    for (id, band) in sinks.logged_votes().await? {
        verdict.logged += 1;
        verdict.bands.entry(band).or_default().2 += 1;
        match Uuid::parse_str(&id) {
            Ok(id) if accepted.contains_key(&id) => {
                logged_ids.insert(id);
            }
            _ => verdict.duplicated += 1,
        }
    }
    verdict.lost = accepted.keys().filter(|id| !logged_ids.contains(id)).count() as u64;
    for (accepted, counted, _) in verdict.bands.values() {
        verdict.lost += accepted.saturating_sub(*counted);
        verdict.duplicated += counted.saturating_sub(*accepted);
    }
    Ok(verdict)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean() -> Verdict {
        Verdict {
            accepted: 10,
            counted: 10,
            logged: 10,
            paths: BTreeMap::from([("rest", 6), ("grpc", 4)]),
            ..Verdict::default()
        }
    }

    #[test]
    fn a_verdict_fails_on_votes_given_up_a_silent_path_or_no_paths() {
        assert_eq!(clean().failures(), Vec::<String>::new());
        assert_eq!(Verdict { gave_up: 1, ..clean() }.failures(), ["votes given up: 1"]);
        let silent = Verdict { paths: BTreeMap::from([("rest", 10), ("grpc", 0)]), ..clean() };
        assert_eq!(silent.failures(), ["the grpc path accepted nothing"]);
        assert!(!Verdict { paths: BTreeMap::new(), ..clean() }.failures().is_empty(), "no path at all");
        assert!(!Verdict { lost: 1, ..clean() }.failures().is_empty());
        assert!(!Verdict { counted: 9, ..clean() }.failures().is_empty());
        assert!(!Verdict { wrong_answers: 1, ..clean() }.failures().is_empty());
    }
}
