//! grpc-client's grpc-servers: every address `GRPC_SERVER_URL` names (comma-separated URLs;
//! a headless Service's name resolves to every ready grpc-server pod), re-resolved every
//! few seconds, with one lazily connected HTTP/2 channel each. One channel to a ClusterIP
//! would carry every call of a front to whichever pod its one connection reached.
//!
//! A call goes to a serving server with the fewest calls in flight (ties in turn). A call
//! that did not reach its server (connection refused, reset or closed) is tried on the
//! next one at once: the vote keeps its vote_id, so a copy that did reach Kafka is stored
//! and counted once by the consumer. A server answering NOT_SERVING (the first thing a
//! grpc-server does on shutdown) gets no new calls; its calls in flight finish there.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::{Code, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use voteflow_domain::refusal::GRPC_CODE_KEY;
use voteflow_service::settings::mask_password;

use crate::rpc::vote_service_client::VoteServiceClient;

/// How often the names are looked up again (CoreDNS answers a headless Service with a
/// 5 s TTL by default).
const RESOLVE_EVERY: Duration = Duration::from_secs(5);
/// How long a server that could not be reached gets no calls, unless its health check
/// answers SERVING first.
const DOWN_FOR: Duration = Duration::from_secs(1);
const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Looks up a host's addresses (tests swap in their own).
pub(crate) type Resolve =
    Arc<dyn Fn(String, u16) -> BoxFuture<'static, std::io::Result<Vec<SocketAddr>>> + Send + Sync>;

/// One grpc-server address and its channel.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    pub(crate) votes: VoteServiceClient<Channel>,
    health: HealthClient<Channel>,
    in_flight: AtomicUsize,
    serving: AtomicBool,
    down_until: Mutex<Option<Instant>>,
}

impl Server {
    fn new(addr: SocketAddr, timeout: Duration) -> Result<Self, tonic::transport::Error> {
        let channel = Endpoint::from_shared(format!("http://{addr}"))?
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true)
            .connect_lazy();
        Ok(Self {
            addr,
            votes: VoteServiceClient::new(channel.clone()),
            health: HealthClient::new(channel),
            in_flight: AtomicUsize::new(0),
            // Until its first health check, a new server is tried.
            serving: AtomicBool::new(true),
            down_until: Mutex::new(None),
        })
    }

    fn usable(&self, now: Instant) -> bool {
        let down = self.down_until.lock().unwrap_or_else(PoisonError::into_inner);
        self.serving.load(Ordering::Relaxed) && down.is_none_or(|until| now >= until)
    }

    fn mark_down(&self) {
        *self.down_until.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now() + DOWN_FOR);
    }

    async fn check_health(&self) -> bool {
        let request = HealthCheckRequest { service: String::new() };
        let answer = tokio::time::timeout(HEALTH_TIMEOUT, self.health.clone().check(request)).await;
        let serving = matches!(answer, Ok(Ok(response)) if response.get_ref().status == ServingStatus::Serving as i32);
        if serving != self.serving.swap(serving, Ordering::Relaxed) {
            tracing::info!(server = %self.addr, serving, "grpc-server health changed");
        }
        if serving {
            *self.down_until.lock().unwrap_or_else(PoisonError::into_inner) = None;
        }
        serving
    }
}

/// Counts a call in flight on a server for as long as it lives.
struct InFlight(Arc<Server>);

impl InFlight {
    fn new(server: Arc<Server>) -> Self {
        server.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(server)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The grpc-servers behind one front.
pub(crate) struct Upstreams {
    targets: Vec<(String, u16)>,
    timeout: Duration,
    resolve: Resolve,
    servers: RwLock<Arc<Vec<Arc<Server>>>>,
    turn: AtomicUsize,
    resolved_at: Mutex<Option<Instant>>,
}

/// Parses `GRPC_SERVER_URL`: comma-separated `http://host:port` URLs.
pub(crate) fn parse_targets(urls: &str) -> anyhow::Result<Vec<(String, u16)>> {
    let mut targets = Vec::new();
    for url in urls.split(',').map(str::trim).filter(|url| !url.is_empty()) {
        let shown = mask_password(url);
        let uri: Uri = url.parse().map_err(|error| anyhow::anyhow!("GRPC_SERVER_URL: {shown:?}: {error}"))?;
        anyhow::ensure!(uri.scheme_str() == Some("http"), "GRPC_SERVER_URL: {shown:?} must be an http:// URL (h2c)");
        let host = uri.host().ok_or_else(|| anyhow::anyhow!("GRPC_SERVER_URL: {shown:?} names no host"))?;
        let port = uri.port_u16().ok_or_else(|| anyhow::anyhow!("GRPC_SERVER_URL: {shown:?} names no port"))?;
        targets.push((host.trim_matches(['[', ']']).to_owned(), port));
    }
    anyhow::ensure!(!targets.is_empty(), "GRPC_SERVER_URL names no server");
    Ok(targets)
}

impl Upstreams {
    /// The servers of `urls`, resolved through the system's resolver.
    pub(crate) fn new(urls: &str, timeout: Duration) -> anyhow::Result<Self> {
        let resolve: Resolve = Arc::new(|host, port| {
            Box::pin(async move { Ok(tokio::net::lookup_host((host.as_str(), port)).await?.collect()) })
        });
        Self::with_resolver(urls, timeout, resolve)
    }

    pub(crate) fn with_resolver(urls: &str, timeout: Duration, resolve: Resolve) -> anyhow::Result<Self> {
        Ok(Self {
            targets: parse_targets(urls)?,
            timeout,
            resolve,
            servers: RwLock::new(Arc::new(Vec::new())),
            turn: AtomicUsize::new(0),
            resolved_at: Mutex::new(None),
        })
    }

    fn snapshot(&self) -> Arc<Vec<Arc<Server>>> {
        self.servers.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The addresses known now.
    #[cfg(test)]
    pub(crate) fn addresses(&self) -> Vec<SocketAddr> {
        self.snapshot().iter().map(|server| server.addr).collect()
    }

    /// Looks every name up again; servers that stay keep their channel. A lookup that
    /// fails removes nothing (a DNS hiccup must not empty the set).
    pub(crate) async fn resolve_now(&self) {
        *self.resolved_at.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        let mut found = BTreeSet::new();
        let mut failed = false;
        for (host, port) in &self.targets {
            match (self.resolve)(host.clone(), *port).await {
                Ok(addrs) => found.extend(addrs),
                Err(error) => {
                    failed = true;
                    tracing::warn!(%host, %error, "cannot resolve grpc-server");
                }
            }
        }
        let current = self.snapshot();
        if failed {
            found.extend(current.iter().map(|server| server.addr));
        }
        let mut next = Vec::with_capacity(found.len());
        for addr in found {
            match current.iter().find(|server| server.addr == addr) {
                Some(server) => next.push(server.clone()),
                None => match Server::new(addr, self.timeout) {
                    Ok(server) => next.push(Arc::new(server)),
                    Err(error) => tracing::warn!(%addr, %error, "cannot make a channel to grpc-server"),
                },
            }
        }
        let (before, after): (Vec<_>, Vec<_>) =
            (current.iter().map(|s| s.addr).collect(), next.iter().map(|s| s.addr).collect());
        if before != after {
            tracing::info!(?before, ?after, "grpc-server addresses changed");
        }
        *self.servers.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(next);
    }

    /// Looks the names up again when due, then asks every server's health; true when at
    /// least one serves.
    pub(crate) async fn refresh(&self) -> bool {
        let due = self
            .resolved_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none_or(|at| at.elapsed() >= RESOLVE_EVERY);
        if due || self.snapshot().is_empty() {
            self.resolve_now().await;
        }
        let servers = self.snapshot();
        let healthy = futures::future::join_all(servers.iter().map(|server| server.check_health())).await;
        healthy.into_iter().any(|serving| serving)
    }

    /// The server for the next call: a usable one with the fewest calls in flight, taking
    /// turns among equals; failing that, any not yet tried.
    pub(crate) fn pick(&self, tried: &[SocketAddr]) -> Option<Arc<Server>> {
        let servers = self.snapshot();
        if servers.is_empty() {
            return None;
        }
        let start = self.turn.fetch_add(1, Ordering::Relaxed) % servers.len();
        let now = Instant::now();
        let untried =
            || (0..servers.len()).map(|i| &servers[(start + i) % servers.len()]).filter(|s| !tried.contains(&s.addr));
        untried()
            .filter(|server| server.usable(now))
            .min_by_key(|server| server.in_flight.load(Ordering::Relaxed))
            .or_else(|| untried().next())
            .cloned()
    }

    /// Runs `attempt` on a server, and on the next one while it could not reach its
    /// server; the last failure when none could be reached.
    pub(crate) async fn call<T, F, Fut>(&self, mut attempt: F) -> Result<T, Status>
    where
        F: FnMut(Arc<Server>) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        if self.snapshot().is_empty() {
            self.resolve_now().await;
        }
        let mut tried = Vec::new();
        let mut last = None;
        while let Some(server) = self.pick(&tried) {
            let in_flight = InFlight::new(server.clone());
            match attempt(server.clone()).await {
                Err(status) if unreached(&status) => {
                    server.mark_down();
                    tracing::warn!(server = %server.addr, error = %status.message(), "grpc-server not reached; trying the next");
                    tried.push(server.addr);
                    last = Some(status);
                }
                result => return result,
            }
            drop(in_flight);
        }
        Err(last.unwrap_or_else(|| Status::unavailable("no grpc-server address is known")))
    }
}

/// A failure of the connection rather than an answer of grpc-server (whose own failures
/// carry the `voteflow-error` code): refused, reset, cancelled or an HTTP/2 protocol error
/// when the connection closed under the call (a server going away). A call cut by its own
/// timeout is cancelled too, but by then the front's bound on the whole call has passed as
/// well, so it is not tried again.
fn unreached(status: &Status) -> bool {
    status.metadata().get(GRPC_CODE_KEY).is_none()
        && match status.code() {
            Code::Unavailable | Code::Unknown | Code::Cancelled => true,
            Code::Internal => status.message().starts_with("h2 protocol error"),
            _ => false,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// A resolver whose answer the test changes.
    fn resolver() -> (Resolve, Arc<Mutex<Vec<SocketAddr>>>) {
        let answer = Arc::new(Mutex::new(Vec::new()));
        let shared = answer.clone();
        let resolve: Resolve = Arc::new(move |_host, _port| {
            let answer = shared.lock().unwrap().clone();
            Box::pin(
                async move { if answer.is_empty() { Err(std::io::Error::other("no such host")) } else { Ok(answer) } },
            )
        });
        (resolve, answer)
    }

    #[test]
    fn urls_name_hosts_and_ports() {
        let targets = parse_targets("http://grpc-server-headless:3001, http://127.0.0.1:3002").unwrap();
        assert_eq!(targets, vec![("grpc-server-headless".to_owned(), 3001), ("127.0.0.1".to_owned(), 3002)]);
        for bad in ["", "https://a:1", "http://a", "a:1"] {
            assert!(parse_targets(bad).is_err(), "{bad:?}");
        }
        let refused = parse_targets("https://user:hunter2@a:1").unwrap_err().to_string();
        assert!(refused.contains("user:****@a:1") && !refused.contains("hunter2"), "{refused}");
    }

    #[tokio::test]
    async fn servers_follow_the_names_as_pods_come_and_go_and_keep_their_channels() {
        let (resolve, answer) = resolver();
        let upstreams =
            Upstreams::with_resolver("http://grpc-server-headless:3001", Duration::from_secs(1), resolve).unwrap();
        *answer.lock().unwrap() = vec![addr(1)];
        upstreams.resolve_now().await;
        let first = upstreams.pick(&[]).unwrap();
        *answer.lock().unwrap() = vec![addr(1), addr(2)];
        upstreams.resolve_now().await;
        assert_eq!(upstreams.addresses(), vec![addr(1), addr(2)]);
        let kept = upstreams.snapshot().iter().find(|s| s.addr == addr(1)).unwrap().clone();
        assert!(Arc::ptr_eq(&first, &kept), "a server that stays keeps its channel");
        answer.lock().unwrap().clear();
        upstreams.resolve_now().await;
        assert_eq!(upstreams.addresses(), vec![addr(1), addr(2)], "a failed lookup removes nothing");
        *answer.lock().unwrap() = vec![addr(2)];
        upstreams.resolve_now().await;
        assert_eq!(upstreams.addresses(), vec![addr(2)], "a pod gone from the name is dropped");
    }

    #[tokio::test]
    async fn calls_take_turns_prefer_the_least_busy_and_skip_servers_down_or_not_serving() {
        let (resolve, answer) = resolver();
        let upstreams = Upstreams::with_resolver("http://a:1", Duration::from_secs(1), resolve).unwrap();
        *answer.lock().unwrap() = vec![addr(1), addr(2), addr(3)];
        upstreams.resolve_now().await;
        let picks: Vec<_> = (0..6).map(|_| upstreams.pick(&[]).unwrap().addr).collect();
        assert_eq!(picks, vec![addr(1), addr(2), addr(3), addr(1), addr(2), addr(3)]);

        let busy = InFlight::new(upstreams.pick(&[]).unwrap());
        let busy_addr = busy.0.addr;
        assert!((0..6).all(|_| upstreams.pick(&[]).unwrap().addr != busy_addr), "the busy server waits its turn");
        drop(busy);

        let servers = upstreams.snapshot();
        servers[0].mark_down();
        servers[1].serving.store(false, Ordering::Relaxed);
        assert!((0..6).all(|_| upstreams.pick(&[]).unwrap().addr == addr(3)));
        let fallback = upstreams.pick(&[addr(3)]).map(|s| s.addr);
        assert!(fallback == Some(addr(1)) || fallback == Some(addr(2)), "with none usable, any untried: {fallback:?}");
        assert!(upstreams.pick(&[addr(1), addr(2), addr(3)]).is_none());
    }

    #[tokio::test]
    async fn a_call_that_does_not_reach_its_server_goes_to_the_next_and_an_answer_does_not() {
        let (resolve, answer) = resolver();
        let upstreams = Upstreams::with_resolver("http://a:1", Duration::from_secs(1), resolve).unwrap();
        *answer.lock().unwrap() = vec![addr(1), addr(2)];
        upstreams.resolve_now().await;
        let attempts = Mutex::new(Vec::new());
        let result = upstreams
            .call(|server| {
                attempts.lock().unwrap().push(server.addr);
                let refused = attempts.lock().unwrap().len() == 1;
                async move { if refused { Err(Status::unavailable("connection refused")) } else { Ok(server.addr) } }
            })
            .await;
        let attempts = attempts.into_inner().unwrap();
        assert_eq!(attempts.len(), 2);
        assert_eq!(result.unwrap(), attempts[1]);
        assert_ne!(attempts[0], attempts[1]);

        for (status, unreachable) in [
            (Status::unavailable("tcp connect error"), true),
            (Status::cancelled("operation was canceled"), true),
            (Status::internal("h2 protocol error: http2 error"), true),
            (Status::internal("boom"), false),
            (Status::invalid_argument("band"), false),
        ] {
            assert_eq!(unreached(&status), unreachable, "{status:?}");
        }
        let mut kafka_down = Status::unavailable("Kafka did not acknowledge");
        kafka_down.metadata_mut().insert(GRPC_CODE_KEY, "kafka_unavailable".parse().unwrap());
        let calls = AtomicUsize::new(0);
        let result: Result<(), Status> = upstreams
            .call(|_| {
                calls.fetch_add(1, Ordering::Relaxed);
                let status = kafka_down.clone();
                async move { Err(status) }
            })
            .await;
        assert_eq!((result.unwrap_err().code(), calls.into_inner()), (Code::Unavailable, 1), "an answer is final");
    }
}
