//! Liveness and readiness. A service is ready when every dependency it registered
//! (Kafka, the next hop, a sink) last answered and it is not shutting down; readiness
//! goes false first on shutdown so load balancers stop sending before the server stops.
//! [`watch`] is the one loop that keeps a dependency's check current.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch as changes;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
pub struct Readiness {
    inner: Arc<Inner>,
}

struct Inner {
    shutting_down: AtomicBool,
    checks: Mutex<BTreeMap<&'static str, bool>>,
    /// The latest readiness, for whoever mirrors it (grpc-server's health service).
    ready: changes::Sender<bool>,
}

impl Default for Readiness {
    fn default() -> Self {
        let inner =
            Inner { shutting_down: AtomicBool::new(false), checks: Mutex::default(), ready: changes::channel(true).0 };
        Self { inner: Arc::new(inner) }
    }
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
        let ready = !self.inner.shutting_down.load(Ordering::SeqCst) && checks.values().all(|ok| *ok);
        self.inner.ready.send_if_modified(|was| std::mem::replace(was, ready) != ready);
        if previous != Some(ok) && previous.is_some() {
            if ok {
                tracing::info!(dependency = name, "dependency is reachable");
            } else {
                tracing::warn!(dependency = name, "dependency is unreachable");
            }
        }
    }

    pub fn begin_shutdown(&self) {
        let _checks = self.inner.checks.lock().unwrap_or_else(PoisonError::into_inner);
        self.inner.shutting_down.store(true, Ordering::SeqCst);
        self.inner.ready.send_replace(false);
    }

    /// Readiness as it changes: the current value first, then each change.
    pub fn subscribe(&self) -> changes::Receiver<bool> {
        self.inner.ready.subscribe()
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

/// Asks `probe` every `every` whether the dependency `name` answers, and records the
/// answer in `readiness`, until `shutdown`.
pub async fn watch<P, F>(
    readiness: Readiness,
    name: &'static str,
    every: Duration,
    mut probe: P,
    shutdown: CancellationToken,
) where
    P: FnMut() -> F,
    F: Future<Output = bool>,
{
    loop {
        let answers = tokio::select! {
            () = shutdown.cancelled() => return,
            answers = probe() => answers,
        };
        readiness.set(name, answers);
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {},
        }
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
        let mut changes = readiness.subscribe();
        assert!(*changes.borrow_and_update());
        readiness.begin_shutdown();
        assert!(!readiness.is_ready());
        assert!(changes.has_changed().unwrap() && !*changes.borrow_and_update(), "a subscriber sees the change");
    }

    #[tokio::test]
    async fn watch_records_each_answer_of_its_probe_until_shutdown() {
        let readiness = Readiness::with_checks(&["kafka"]);
        let answers = Arc::new(Mutex::new(vec![true, false, true]));
        let shutdown = CancellationToken::new();
        let probe = {
            let answers = answers.clone();
            move || {
                let answer = answers.lock().unwrap().pop().unwrap_or(true);
                async move { answer }
            }
        };
        let watching =
            tokio::spawn(watch(readiness.clone(), "kafka", Duration::from_millis(20), probe, shutdown.clone()));
        let mut seen = Vec::new();
        for _ in 0..40 {
            seen.push(readiness.is_ready());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(seen.contains(&true) && seen.contains(&false), "{seen:?}");
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(1), watching).await.expect("stops at shutdown").unwrap();
    }
}
