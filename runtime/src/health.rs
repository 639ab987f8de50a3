//! Liveness and readiness. A service is ready when every dependency it registered
//! (Kafka, the next hop, a sink) last answered and it is not shutting down; readiness
//! goes false first on shutdown so load balancers stop sending before the server stops.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

#[derive(Clone, Default)]
pub struct Readiness {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    shutting_down: AtomicBool,
    checks: Mutex<BTreeMap<&'static str, bool>>,
}

impl Readiness {
    /// A readiness with these dependency checks, each not ready until first reported.
    pub fn with_checks(names: &[&'static str]) -> Self {
        let readiness = Self::default();
        for name in names {
            readiness.set(name, false);
        }
        readiness
    }

    /// Records the latest result of one dependency check.
    pub fn set(&self, name: &'static str, ok: bool) {
        let mut checks = self.inner.checks.lock().unwrap_or_else(PoisonError::into_inner);
        let previous = checks.insert(name, ok);
        if previous != Some(ok) && previous.is_some() {
            if ok {
                tracing::info!(dependency = name, "dependency is reachable");
            } else {
                tracing::warn!(dependency = name, "dependency is unreachable");
            }
        }
    }

    pub fn begin_shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.report().0
    }

    /// Whether the service is ready, and a JSON body saying why.
    pub fn report(&self) -> (bool, String) {
        let shutting_down = self.inner.shutting_down.load(Ordering::SeqCst);
        let checks = self.inner.checks.lock().unwrap_or_else(PoisonError::into_inner);
        let ready = !shutting_down && checks.values().all(|ok| *ok);
        let detail: Vec<String> = checks.iter().map(|(name, ok)| format!("\"{name}\":{ok}")).collect();
        let body =
            format!("{{\"ready\":{ready},\"shutting_down\":{shutting_down},\"checks\":{{{}}}}}", detail.join(","));
        (ready, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_check_passes_and_not_shutting_down() {
        let readiness = Readiness::with_checks(&["kafka", "redis"]);
        assert!(!readiness.is_ready());
        readiness.set("kafka", true);
        assert!(!readiness.is_ready());
        readiness.set("redis", true);
        assert!(readiness.is_ready());
        assert_eq!(
            readiness.report().1,
            r#"{"ready":true,"shutting_down":false,"checks":{"kafka":true,"redis":true}}"#
        );
        readiness.begin_shutdown();
        assert!(!readiness.is_ready());
    }
}
