//! What every voteflow latency histogram shares: one bucket list, so panels and alerts
//! read every service's latencies on the same scale.

/// Buckets, in seconds, of every request and stage latency histogram.
pub const LATENCY_BUCKETS: [f64; 13] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// [`LATENCY_BUCKETS`] as prometheus' histogram options want them.
pub fn latency_buckets() -> Vec<f64> {
    LATENCY_BUCKETS.to_vec()
}
