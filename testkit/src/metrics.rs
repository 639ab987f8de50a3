//! Reads Prometheus' text format, as the services' `/metrics` serve it: the one parser of
//! the tests and the tools.

/// One sample: `name{labels} value`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample<'a> {
    pub name: &'a str,
    /// What is between the braces, as exported (empty without labels).
    labels: &'a str,
    pub value: f64,
}

impl<'a> Sample<'a> {
    /// The value of label `key`, if the sample has it.
    pub fn label(&self, key: &str) -> Option<&'a str> {
        label_pairs(self.labels)?.into_iter().find(|(name, _)| *name == key).map(|(_, value)| value)
    }
}

/// `key="value"` pairs of a label set, values as exported (escapes kept).
fn label_pairs(labels: &str) -> Option<Vec<(&str, &str)>> {
    let mut pairs = Vec::new();
    let mut rest = labels;
    while !rest.trim_start_matches(',').trim().is_empty() {
        let (key, after) = rest.split_once("=\"")?;
        let end = closing_quote(after)?;
        pairs.push((key.trim_start_matches(',').trim(), &after[..end]));
        rest = &after[end + 1..];
    }
    Some(pairs)
}

/// The end of a label value: the first quote that is not escaped.
fn closing_quote(value: &str) -> Option<usize> {
    let mut escaped = false;
    for (at, c) in value.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => return Some(at),
            _ => escaped = false,
        }
    }
    None
}

/// Every sample of the text (comments and malformed lines skipped).
pub fn samples(text: &str) -> impl Iterator<Item = Sample<'_>> {
    text.lines().filter(|line| !line.starts_with('#')).filter_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let value = value.parse().ok()?;
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => (name, labels.strip_suffix('}')?),
            None => (series, ""),
        };
        Some(Sample { name, labels, value })
    })
}

/// The value of the sample of `name` carrying every label in `labels` (it may have more).
pub fn find(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples(text)
        .find(|sample| sample.name == name && labels.iter().all(|(key, value)| sample.label(key) == Some(*value)))
        .map(|sample| sample.value)
}

/// The value of one series written as Prometheus shows it, e.g.
/// `voteflow_consumer_duplicates_total{kind="retry"}` (labels in any order, no others);
/// `None` when the text has no such series.
pub fn value(text: &str, series: &str) -> Option<f64> {
    let (name, labels) = match series.split_once('{') {
        Some((name, labels)) => (name, labels.strip_suffix('}')?),
        None => (series, ""),
    };
    let wanted = label_pairs(labels)?;
    samples(text)
        .find(|sample| {
            sample.name == name
                && label_pairs(sample.labels)
                    .is_some_and(|have| have.len() == wanted.len() && wanted.iter().all(|pair| have.contains(pair)))
        })
        .map(|sample| sample.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP voteflow_http_requests_total Requests.
# TYPE voteflow_http_requests_total counter
voteflow_http_requests_total{route="/votes",status="202"} 7
voteflow_http_requests_total{route="/votes",status="422"} 2
voteflow_consumer_batches_total 3
voteflow_odd{note="a \"quoted\", comma",kind="x"} 1.5
voteflow_latency_seconds_bucket{le="+Inf"} 9
"#;

    #[test]
    fn a_series_is_found_by_all_its_labels_in_any_order() {
        assert_eq!(value(TEXT, r#"voteflow_http_requests_total{status="422",route="/votes"}"#), Some(2.0));
        assert_eq!(value(TEXT, r#"voteflow_http_requests_total{route="/votes",status="202"}"#), Some(7.0));
        assert_eq!(value(TEXT, "voteflow_consumer_batches_total"), Some(3.0));
    }

    #[test]
    fn a_series_with_other_labels_or_none_is_not_found() {
        assert_eq!(value(TEXT, r#"voteflow_http_requests_total{route="/votes"}"#), None);
        assert_eq!(value(TEXT, r#"voteflow_http_requests_total{route="/votes",status="500"}"#), None);
        assert_eq!(value(TEXT, "voteflow_http_requests_total"), None);
        assert_eq!(value(TEXT, "voteflow_consumer_batches"), None);
    }

    #[test]
    fn labels_are_read_past_escaped_quotes_and_commas() {
        let odd = samples(TEXT).find(|sample| sample.name == "voteflow_odd").unwrap();
        assert_eq!(odd.label("kind"), Some("x"));
        assert_eq!(odd.label("note"), Some(r#"a \"quoted\", comma"#));
        assert_eq!(find(TEXT, "voteflow_latency_seconds_bucket", &[("le", "+Inf")]), Some(9.0));
        assert_eq!(find(TEXT, "voteflow_http_requests_total", &[("status", "422")]), Some(2.0));
    }
}
