//! The accept loop, ours rather than `axum::serve`'s, because that one has no bound on
//! connections and no timeouts: a client that opens connections and sends nothing (or half
//! a request head) could hold the server's file descriptors until `/health` stopped
//! answering. Here:
//!
//! - a request head must be complete within `Limits::header` of the connection opening or of
//!   its previous response (hyper's header-read timer, which is therefore also the
//!   keep-alive idle timeout);
//! - a request body that sends nothing for `Limits::body_idle` fails, and a response the
//!   client stops reading for `Limits::send_stall` ends the connection;
//! - at most `Limits::connections` connections are served at once. At the cap, the
//!   connection longest without a request in progress (an idle keep-alive one, or one still
//!   sending its head) is closed to make room; when every one is busy, new connections wait
//!   in the listen queue until one finishes.
//!
//! Shutdown is graceful: requests in progress finish (for `SHUTDOWN_GRACE` at most), idle
//! connections close at once.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body as AxBody;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio::time::Sleep;
use tower::ServiceExt;

/// How long a graceful shutdown waits for requests in progress.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Descriptors kept free of connections: the store's database, objects being hashed, logs.
const RESERVED_FDS: u64 = 256;

/// The server's timeouts and its connection cap.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub header: Duration,
    pub body_idle: Duration,
    pub send_stall: Duration,
    pub connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header: Duration::from_secs(15),
            body_idle: Duration::from_secs(60),
            send_stall: Duration::from_secs(60),
            connections: 4096,
        }
    }
}

/// The connections that fit under the limit on open files: `wanted`, or fewer when the
/// limit is lower, leaving room for the store's own files. With `raise`, the soft limit is
/// first raised towards the hard one (many systems start processes at 1,024, the hard limit
/// far above) — for `repro serve` only: `repro run`'s server shares its process with the
/// command it starts, whose limits must stay the user's.
pub fn fit_connections(wanted: usize, raise: bool) -> usize {
    let limit = nofile(raise);
    let room = limit.saturating_sub(RESERVED_FDS.min(limit / 4));
    wanted.min(usize::try_from(room).unwrap_or(usize::MAX)).max(1)
}

fn nofile(raise: bool) -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes the struct it is given, which lives on this stack frame.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    // A generous ceiling: more connections than this are not what one store serves.
    let target = lim.rlim_max.min(1 << 16);
    if raise && lim.rlim_cur < target {
        let raised = libc::rlimit { rlim_cur: target, rlim_max: lim.rlim_max };
        // SAFETY: setrlimit reads the struct it is given; raising the soft limit up to the
        // hard one needs no privilege and affects this process only.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = target;
        }
    }
    lim.rlim_cur
}

/// One served connection, as the accept loop sees it.
struct Conn {
    /// Requests whose response has not been fully sent.
    in_flight: AtomicUsize,
    /// Milliseconds since the loop started at the last request's start or end.
    last_active: AtomicU64,
    /// Asked to close (shed), so not picked twice.
    shed: AtomicBool,
    close: Notify,
    drain: Notify,
}

type Conns = Arc<Mutex<BTreeMap<u64, Arc<Conn>>>>;

/// Closes the connection that has waited longest without a request in progress; false
/// when every connection is busy.
fn shed_one(conns: &Conns) -> bool {
    let Ok(map) = conns.lock() else { return false };
    let idle = map
        .values()
        .filter(|c| c.in_flight.load(Ordering::Acquire) == 0 && !c.shed.load(Ordering::Acquire))
        .min_by_key(|c| c.last_active.load(Ordering::Acquire));
    match idle {
        Some(c) => {
            c.shed.store(true, Ordering::Release);
            c.close.notify_one();
            true
        }
        None => false,
    }
}

/// Serves `app` on `listener` until `shutdown` resolves.
pub async fn run(listener: TcpListener, app: Router, limits: Limits, shutdown: impl Future<Output = ()>) {
    let cap = limits.connections.max(1);
    let permits = Arc::new(Semaphore::new(cap));
    let conns: Conns = Arc::default();
    let started = Instant::now();
    let mut next_id = 0u64;
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of descriptors, or a connection reset before it was taken: wait a
                    // moment rather than spin, and go on.
                    tracing::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let permit = loop {
            if let Ok(p) = Arc::clone(&permits).try_acquire_owned() {
                break Some(p);
            }
            shed_one(&conns);
            tokio::select! {
                _ = &mut shutdown => break None,
                p = Arc::clone(&permits).acquire_owned() => break p.ok(),
                // A connection that was busy may have gone idle since: look again.
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        };
        let Some(permit) = permit else { break };
        let _ = stream.set_nodelay(true);
        next_id += 1;
        let id = next_id;
        let now = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let conn = Arc::new(Conn {
            in_flight: AtomicUsize::new(0),
            last_active: AtomicU64::new(now),
            shed: AtomicBool::new(false),
            close: Notify::new(),
            drain: Notify::new(),
        });
        if let Ok(mut map) = conns.lock() {
            map.insert(id, Arc::clone(&conn));
        }
        let conns = Arc::clone(&conns);
        let app = app.clone();
        tokio::spawn(async move {
            serve_connection(stream, peer, app, limits, Arc::clone(&conn), started).await;
            if let Ok(mut map) = conns.lock() {
                map.remove(&id);
            }
            drop(permit);
        });
    }
    drop(listener);
    let open: Vec<Arc<Conn>> = conns.lock().map(|m| m.values().cloned().collect()).unwrap_or_default();
    for c in open {
        c.drain.notify_one();
    }
    let all = u32::try_from(cap).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, permits.acquire_many(all)).await;
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: Limits,
    conn: Arc<Conn>,
    started: Instant,
) {
    let tracker = Arc::clone(&conn);
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        let app = app.clone();
        let guard = InFlight::start(Arc::clone(&tracker), started);
        req.extensions_mut().insert(ConnectInfo(peer));
        merge_slashes(req.uri_mut());
        let req = req.map(|body| AxBody::new(IdleBody::new(body, limits.body_idle)));
        async move {
            let response = app.oneshot(req).await.unwrap_or_else(|e: Infallible| match e {});
            Ok::<_, Infallible>(response.map(|body| Tracked { body, _guard: guard }))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header);
    let io = TokioIo::new(Stalling::new(stream, limits.send_stall));
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let drained = tokio::select! {
        // Errors here are the client's doing (a reset, a timeout): nothing to report.
        _ = connection.as_mut() => return,
        _ = conn.close.notified() => false,
        _ = conn.drain.notified() => true,
    };
    // A connection with no request in progress (idle, or still sending its head) has
    // nothing to finish: it closes at once.
    if drained && conn.in_flight.load(Ordering::Acquire) > 0 {
        connection.as_mut().graceful_shutdown();
        tokio::select! {
            _ = connection.as_mut() => {}
            _ = conn.close.notified() => {}
        }
    }
}

/// Runs of slashes in a path are one slash, as Werkzeug (MLflow's server) treats them:
/// `//model-versions/get-artifact` is that route, not an unknown one.
fn merge_slashes(uri: &mut axum::http::Uri) {
    if !uri.path().contains("//") {
        return;
    }
    let mut path = String::with_capacity(uri.path().len());
    for c in uri.path().chars() {
        if !(c == '/' && path.ends_with('/')) {
            path.push(c);
        }
    }
    let whole = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    let mut parts = uri.clone().into_parts();
    if let Ok(pq) = whole.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(merged) = axum::http::Uri::from_parts(parts) {
            *uri = merged;
        }
    }
}

/// Counts a request as in progress from its start until its response body is done.
struct InFlight {
    conn: Arc<Conn>,
    started: Instant,
}

impl InFlight {
    fn start(conn: Arc<Conn>, started: Instant) -> InFlight {
        conn.in_flight.fetch_add(1, Ordering::AcqRel);
        let guard = InFlight { conn, started };
        guard.touch();
        guard
    }

    fn touch(&self) {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.conn.last_active.store(now, Ordering::Release);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.touch();
        self.conn.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request counted as in progress until it is sent.
struct Tracked {
    body: AxBody,
    _guard: InFlight,
}

impl Body for Tracked {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A request body that fails when the client sends nothing for `idle`.
struct IdleBody {
    body: Incoming,
    idle: Duration,
    timer: Option<Pin<Box<Sleep>>>,
}

impl IdleBody {
    fn new(body: Incoming, idle: Duration) -> IdleBody {
        IdleBody { body, idle, timer: None }
    }
}

impl Body for IdleBody {
    type Data = axum::body::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Pending => {
                let idle = self.idle;
                let timer = self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                if timer.as_mut().poll(cx).is_ready() {
                    let message = format!("the client sent nothing for {} s", idle.as_secs());
                    return Poll::Ready(Some(Err(std::io::Error::new(std::io::ErrorKind::TimedOut, message).into())));
                }
                Poll::Pending
            }
            Poll::Ready(frame) => {
                self.timer = None;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A socket whose writes fail once the client has read nothing for `stall`.
struct Stalling {
    stream: TcpStream,
    stall: Duration,
    timer: Option<Pin<Box<Sleep>>>,
}

impl Stalling {
    fn new(stream: TcpStream, stall: Duration) -> Stalling {
        Stalling { stream, stall, timer: None }
    }

    fn pending<T>(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<T>> {
        let stall = self.stall;
        let timer = self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
        if timer.as_mut().poll(cx).is_ready() {
            let message = format!("the client read nothing for {} s", stall.as_secs());
            return Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::TimedOut, message)));
        }
        Poll::Pending
    }

    fn written<T>(&mut self, cx: &mut Context<'_>, p: Poll<std::io::Result<T>>) -> Poll<std::io::Result<T>> {
        match p {
            Poll::Pending => self.pending(cx),
            ready => {
                self.timer = None;
                ready
            }
        }
    }
}

impl AsyncRead for Stalling {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Stalling {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let p = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.written(cx, p)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let p = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.written(cx, p)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let p = Pin::new(&mut self.stream).poll_flush(cx);
        self.written(cx, p)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let p = Pin::new(&mut self.stream).poll_shutdown(cx);
        self.written(cx, p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn app() -> Router {
        Router::new().route("/health", axum::routing::get(|| async { "OK" }))
    }

    async fn start(limits: Limits) -> (SocketAddr, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(run(listener, app(), limits, async {
            let _ = rx.await;
        }));
        (addr, tx, task)
    }

    /// A blocking GET /health on its own thread: (status line, seconds it took).
    async fn health(addr: SocketAddr) -> (String, f64) {
        tokio::task::spawn_blocking(move || {
            let t = Instant::now();
            let mut s = std::net::TcpStream::connect(addr).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
            s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").expect("send");
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            (out.lines().next().unwrap_or("").to_string(), t.elapsed().as_secs_f64())
        })
        .await
        .expect("thread")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stalled_head_is_cut_off_and_a_full_server_sheds_idle_connections() {
        let limits = Limits { header: Duration::from_millis(300), connections: 4, ..Limits::default() };
        let (addr, stop, task) = start(limits).await;
        // Half a request head, then nothing: closed once the header timeout passes.
        let mut half = std::net::TcpStream::connect(addr).expect("connect");
        half.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").expect("send");
        half.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let t = Instant::now();
        let mut buf = [0u8; 64];
        let got = half.read(&mut buf);
        assert!(matches!(got, Ok(0)) || got.is_err(), "{got:?}");
        let waited = t.elapsed();
        assert!(waited >= Duration::from_millis(200) && waited < Duration::from_secs(3), "closed after {waited:?}");
        // Twenty silent connections against a cap of four: /health still answers at once.
        let mut silent = Vec::new();
        for _ in 0..20 {
            silent.push(std::net::TcpStream::connect(addr).expect("connect"));
        }
        let (status, took) = health(addr).await;
        assert!(status.contains("200"), "{status}");
        assert!(took < 2.0, "{took} s");
        // The oldest silent ones were closed to make room.
        let mut closed = 0;
        for s in &mut silent {
            let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
            if matches!(s.read(&mut buf), Ok(0)) {
                closed += 1;
            }
        }
        assert!(closed >= 16, "{closed} of 20 closed");
        let _ = stop.send(());
        tokio::time::timeout(Duration::from_secs(5), task).await.expect("shut down").expect("task");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_body_that_stops_coming_fails_and_shutdown_is_graceful() {
        let limits = Limits { body_idle: Duration::from_millis(300), ..Limits::default() };
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = Router::new()
            .route("/upload", axum::routing::post(|body: axum::body::Bytes| async move { format!("{}", body.len()) }));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(run(listener, app, limits, async {
            let _ = rx.await;
        }));
        let answer = tokio::task::spawn_blocking(move || {
            let mut s = std::net::TcpStream::connect(addr).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
            s.write_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc").expect("send");
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            out
        })
        .await
        .expect("thread");
        assert!(answer.is_empty() || !answer.contains(" 200 "), "{answer}");
        // A connection with nothing in progress does not hold up the shutdown.
        let _silent = std::net::TcpStream::connect(addr).expect("connect");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let _ = tx.send(());
        tokio::time::timeout(Duration::from_secs(2), task).await.expect("shut down at once").expect("task");
    }
}
