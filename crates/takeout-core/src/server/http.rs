//! The hyper transport: HTTP/1.1 with keep-alive on a tokio runtime of its own thread, so the
//! Python side never runs an event loop for it. Slow clients are cut off (head and body
//! deadlines), connections and the bytes of bodies being received are capped server-wide
//! ([`limits`](super::limits)), and shutdown drains: stop accepting, let in-flight requests
//! finish within `grace`, then return.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::io;
use std::net::{SocketAddr, TcpListener as StdListener, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{
    HeaderValue, ACCEPT, AUTHORIZATION, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST,
};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};

use super::host::Hosts;
use super::limits::{self, BodyBudget, Connections, Reservation};
use super::{ApiError, CallError, Head, Invoke, Outcome, Response, Service, Start, Step};

#[derive(Debug, Clone)]
pub struct Config {
    /// tokio worker threads doing HTTP and JSON (the Python calls run elsewhere).
    pub io_threads: usize,
    /// A request head, and an idle keep-alive connection, must arrive within this.
    pub header_timeout: Duration,
    /// A request body must arrive within this once its head has.
    pub body_timeout: Duration,
    /// How long shutdown waits for in-flight requests.
    pub grace: Duration,
    /// Poll briefly for a lone call's outcome instead of parking; worth it only with a core
    /// to spare.
    pub spin: bool,
    /// The `Host` values answered (`None`: any); see [`Hosts::for_bind`].
    pub hosts: Option<Hosts>,
    /// Connections open at once; at the cap the longest-idle keep-alive one is closed for a
    /// new one, and with none idle the new one gets a 503. Lowered to fit the file limit.
    pub max_connections: usize,
    /// Bytes of request bodies being received at once, over every connection; past it, 503.
    pub body_budget: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            io_threads: 1,
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(30),
            grace: Duration::from_secs(30),
            spin: true,
            hosts: None,
            max_connections: 4096,
            body_budget: 128 << 20,
        }
    }
}

/// A listening socket. `reuse_port` lets several worker processes each bind the same port
/// (`SO_REUSEPORT`), the kernel spreading connections across them.
pub fn bind(host: &str, port: u16, reuse_port: bool) -> io::Result<StdListener> {
    let addr = (host, port).to_socket_addrs()?.next().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            format!("`{host}` resolves to no address"),
        )
    })?;
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        #[cfg(unix)]
        socket.set_reuse_port(true)?;
        #[cfg(not(unix))]
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "several workers on one port need SO_REUSEPORT, which this platform lacks",
        ));
    }
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

struct State {
    service: Arc<Service>,
    invoker: Arc<dyn Invoke>,
    config: Config,
    conns: Arc<Connections>,
    budget: Arc<BodyBudget>,
    /// Refused connections still being answered (each holds a descriptor for a moment).
    refusing: AtomicUsize,
}

/// A running server. Dropping it does not stop it; call [`ServerHandle::shutdown`].
pub struct ServerHandle {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    done: Arc<(Mutex<bool>, Condvar)>,
    thread: Mutex<Option<thread::JoinHandle<()>>>,
    dropped: Arc<AtomicUsize>,
}

impl ServerHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Begin a graceful shutdown; returns at once.
    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
    }

    /// Wait until the server has stopped, at most `timeout`; true if it has.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        let (lock, cvar) = &*self.done;
        let mut done = lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let deadline = timeout.map(|t| Instant::now() + t);
        while !*done {
            match deadline {
                None => {
                    done = cvar
                        .wait(done)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return false;
                    }
                    done = cvar
                        .wait_timeout(done, left)
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .0;
                }
            }
        }
        drop(done);
        if let Some(t) = self
            .thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            let _ = t.join();
        }
        true
    }

    /// Calls still running when the grace period ended (their clients got no answer).
    pub fn dropped_calls(&self) -> usize {
        self.dropped.load(Ordering::Acquire)
    }

    pub fn is_finished(&self) -> bool {
        *self
            .done
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Serve `listener` on a new thread with its own tokio runtime.
pub fn spawn(
    listener: StdListener,
    service: Arc<Service>,
    invoker: Arc<dyn Invoke>,
    config: Config,
) -> io::Result<ServerHandle> {
    let addr = listener.local_addr()?;
    let log = service.log().clone();
    let fd_limit = limits::raise_fd_limit();
    let fits = fd_limit.map_or(usize::MAX, |n| {
        usize::try_from(n.saturating_sub(limits::RESERVED_FDS).max(1)).unwrap_or(usize::MAX)
    });
    let max_connections = config.max_connections.min(fits);
    if max_connections < config.max_connections {
        log.warn(
            "--max-connections lowered to fit the open-file limit",
            &[
                ("max_connections", max_connections.into()),
                ("open_file_limit", fd_limit.unwrap_or_default().into()),
            ],
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.io_threads.max(1))
        .thread_name("takeout-http")
        .enable_all()
        .build()?;
    let (stop, stop_rx) = watch::channel(false);
    let done = Arc::new((Mutex::new(false), Condvar::new()));
    let state = Arc::new(State {
        service,
        invoker,
        conns: Connections::new(max_connections),
        budget: BodyBudget::new(config.body_budget),
        refusing: AtomicUsize::new(0),
        config,
    });
    let finished = done.clone();
    let dropped = Arc::new(AtomicUsize::new(0));
    let dropped_in = dropped.clone();
    log.start();
    let thread = thread::Builder::new()
        .name("takeout-server".into())
        .spawn(move || {
            let result = runtime.block_on(async move {
                let listener = TcpListener::from_std(listener)?;
                serve(listener, state, stop_rx, &dropped_in).await;
                Ok::<(), io::Error>(())
            });
            // Calls still running in Python must not hold the process: let them go.
            runtime.shutdown_background();
            if let Err(err) = result {
                log.error("server stopped", &[("error", err.to_string().into())]);
            }
            // The process may exit as soon as `wait` returns: the last lines first.
            log.flush(Duration::from_secs(1));
            let (lock, cvar) = &*finished;
            *lock
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = true;
            cvar.notify_all();
        })?;
    Ok(ServerHandle {
        addr,
        stop,
        done,
        thread: Mutex::new(Some(thread)),
        dropped,
    })
}

/// How long accepting waits for a connection shed to make room to close.
const SETTLE: Duration = Duration::from_millis(100);

async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    mut stop: watch::Receiver<bool>,
    dropped: &AtomicUsize,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(state.config.header_timeout)
        .keep_alive(true);
    // The call threads and connections are looked at every second, not only when a probe
    // or a scrape asks: the supervisor reads what a stuck worker wrote in the shared metrics.
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut accept_errors = Repeats::default();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let Some((registered, shed)) = state.conns.open() else {
                        refuse(&state, stream);
                        continue;
                    };
                    let metrics = state.service.metrics();
                    if shed {
                        metrics.connection_shed();
                        state.conns.settle(SETTLE).await;
                    }
                    metrics.set_connections(state.conns.len());
                    // Responses are one write; Nagle would hold each back for the client's ACK.
                    let _ = stream.set_nodelay(true);
                    let state_in = state.clone();
                    let conn = registered.conn.clone();
                    let svc = service_fn(move |req| {
                        let busy = conn.enter(&state_in.conns);
                        let state = state_in.clone();
                        async move {
                            let response = handle(state, req).await;
                            drop(busy);
                            response
                        }
                    });
                    let conn = builder.serve_connection(TokioIo::new(stream), svc);
                    let conn = graceful.watch(conn);
                    tokio::spawn(async move {
                        // A connection error (reset, bad request line) ends that connection only;
                        // shed (idle, to make room), it is dropped, which closes it.
                        tokio::select! {
                            _ = conn => {}
                            () = registered.conn.shed.notified() => {}
                        }
                        drop(registered);
                    });
                }
                Err(err) => {
                    // Out of file descriptors: an idle connection gives one back. Never fatal,
                    // but neither a spin nor a line per attempt.
                    let out_of_files = matches!(err.raw_os_error(), Some(libc::EMFILE | libc::ENFILE));
                    if let Some(repeats) = accept_errors.note() {
                        state.service.log().warn(
                            "accept failed",
                            &[("error", err.to_string().into()), ("repeats", repeats.into())],
                        );
                    }
                    if out_of_files && state.conns.shed_idle() {
                        state.service.metrics().connection_shed();
                        state.conns.settle(SETTLE).await;
                    } else {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            },
            _ = tick.tick() => {
                state.service.health();
                state.service.metrics().set_connections(state.conns.len());
            }
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    state.service.drain();
    let grace = state.config.grace;
    let in_flight = state.service.calls_in_flight();
    state.service.log().info(
        "shutting down",
        &[
            ("calls_in_flight", in_flight.into()),
            ("grace_s", grace.as_secs_f64().into()),
        ],
    );
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        let lost = state.service.calls_in_flight();
        dropped.store(lost, Ordering::Release);
        state.service.log().warn(
            "grace period over; closing the remaining connections",
            &[("calls_dropped", lost.into())],
        );
    }
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let started = Instant::now();
    let service = &state.service;
    let _in_flight = service.enter();
    let (parts, body) = req.into_parts();
    if let Some(hosts) = &state.config.hosts {
        let host = parts.headers.get(HOST).map(HeaderValue::as_bytes);
        if !hosts.allows(host) {
            let r = service.refuse(
                ApiError::host_not_allowed(host.unwrap_or_default()),
                started,
            );
            let head = Head {
                method: parts.method.as_str(),
                path: parts.uri.path(),
                ..Head::default()
            };
            return Ok(finish(&state, &head, r, started));
        }
    }
    let head = Head {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        content_type: parts.headers.get(CONTENT_TYPE).map(HeaderValue::as_bytes),
        authorization: parts.headers.get(AUTHORIZATION).map(HeaderValue::as_bytes),
        content_length: parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok()),
        inference_header_length: parts
            .headers
            .get(super::kserve_v2::HEADER_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok()),
        accept: parts.headers.get(ACCEPT).map(HeaderValue::as_bytes),
    };
    let route = match service.start(&head, started) {
        Start::Respond(r) => return Ok(finish(&state, &head, r, started)),
        Start::NeedBody(route) => route,
    };
    let opts = service.options();
    let limit = opts.max_body;
    let read = read_body(body, limit, head.content_length, &state.budget);
    let (bytes, reservation) = match tokio::time::timeout(state.config.body_timeout, read).await {
        Ok(Ok(read)) => read,
        Ok(Err(err)) => {
            let r = service.reject(route, err, started);
            return Ok(finish(&state, &head, r, started));
        }
        Err(_) => {
            let err = ApiError::body_timeout(state.config.body_timeout.as_secs_f64());
            let r = service.reject(route, err, started);
            return Ok(finish(&state, &head, r, started));
        }
    };
    let step = service.begin(route, &bytes, started);
    // The body is parsed: its bytes go back to the budget while the call runs.
    drop(bytes);
    drop(reservation);
    let response = match step {
        Step::Respond(r) => r,
        Step::Call(ticket, calls) => {
            let (tx, mut rx) = oneshot::channel();
            state.invoker.invoke(calls, Box::new(tx));
            let quick = if state.config.spin {
                spin(service, &mut rx).await
            } else {
                None
            };
            let waited = match quick {
                Some(outcome) => Ok(Ok(outcome)),
                None => tokio::time::timeout(opts.timeout, rx).await,
            };
            match waited {
                Ok(Ok(outcome)) => service.finish(ticket, outcome),
                Ok(Err(_)) => service.finish(
                    ticket,
                    Err(CallError::Internal(
                        "the worker pool stopped before the call finished".into(),
                    )),
                ),
                Err(_) => service.timed_out(ticket),
            }
        }
    };
    Ok(finish(&state, &head, response, started))
}

/// While this is the only call in flight, poll for its outcome instead of letting the thread
/// park: a wake-up costs tens of microseconds on a virtual CPU, more than many calls take.
/// Yielding between polls keeps the runtime serving every other connection meanwhile.
async fn spin(service: &Service, rx: &mut oneshot::Receiver<Outcome>) -> Option<Outcome> {
    const BUDGET: Duration = Duration::from_micros(200);
    let start = Instant::now();
    loop {
        match rx.try_recv() {
            Ok(outcome) => return Some(outcome),
            Err(oneshot::error::TryRecvError::Closed) => return None,
            Err(oneshot::error::TryRecvError::Empty) => {}
        }
        if start.elapsed() > BUDGET || service.calls_in_flight() > 1 {
            return None;
        }
        tokio::task::yield_now().await;
    }
}

/// The body, at most `limit` bytes, counted against the server's budget from its head on: a
/// declared length is reserved before a byte is read, so clients that all announce large
/// bodies and stall get a 503 instead of the server's memory.
async fn read_body(
    mut body: Incoming,
    limit: usize,
    declared: Option<u64>,
    budget: &Arc<BodyBudget>,
) -> Result<(Bytes, Reservation), ApiError> {
    let declared = declared.map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX).min(limit));
    let over_budget = || ApiError::bodies_over_budget(budget.limit());
    let mut reservation = budget.reserve(declared).ok_or_else(over_budget)?;
    // Most bodies arrive as one chunk, kept as it is; more are copied into one buffer.
    let mut first: Option<Bytes> = None;
    let mut joined: Vec<u8> = Vec::new();
    let mut len = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| {
            ApiError::new(
                400,
                "bad_body",
                format!("the request body could not be read: {err}"),
            )
            .closing()
        })?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        len += data.len();
        if len > limit {
            return Err(ApiError::too_large(limit));
        }
        if !reservation.cover(len) {
            return Err(over_budget());
        }
        if first.is_none() && joined.is_empty() {
            first = Some(data);
            continue;
        }
        if let Some(first) = first.take() {
            joined.reserve_exact(declared.max(len));
            joined.extend_from_slice(&first);
        }
        joined.extend_from_slice(&data);
    }
    let bytes = first.unwrap_or_else(|| Bytes::from(joined));
    Ok((bytes, reservation))
}

/// Answer a connection the cap has no room for with a 503 and close it. Written by hand, not
/// by hyper, which would first wait for the request head and hold the descriptor meanwhile;
/// the client's request is read and dropped for at most a second, so that closing does not
/// reset the connection before the client has read the answer.
fn refuse(state: &Arc<State>, mut stream: TcpStream) {
    const AT_ONCE: usize = 64;
    let started = Instant::now();
    let cap = state.conns.cap();
    let r = state
        .service
        .refuse(ApiError::too_many_connections(cap), started);
    let mut bytes = format!(
        "HTTP/1.1 {} Service Unavailable\r\ncontent-type: {}\r\ncontent-length: {}\r\n",
        r.status,
        r.content_type,
        r.body.len()
    );
    for (name, value) in &r.headers {
        let _ = write!(bytes, "{name}: {value}\r\n");
    }
    bytes.push_str("connection: close\r\n\r\n");
    let mut bytes = bytes.into_bytes();
    bytes.extend_from_slice(&r.body);
    if state.refusing.fetch_add(1, Ordering::AcqRel) >= AT_ONCE {
        // A flood: no lingering, the descriptors matter more than the answer.
        let _ = stream.try_write(&bytes);
        state.refusing.fetch_sub(1, Ordering::AcqRel);
        return;
    }
    let state = state.clone();
    tokio::spawn(async move {
        let answer = async {
            stream.write_all(&bytes).await?;
            stream.shutdown().await?;
            let mut sink = [0u8; 4096];
            while stream.read(&mut sink).await? > 0 {}
            Ok::<(), io::Error>(())
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), answer).await;
        state.refusing.fetch_sub(1, Ordering::AcqRel);
    });
}

/// A failure that repeats is logged once, then once per minute with how often it recurred.
#[derive(Default)]
struct Repeats {
    last: Option<Instant>,
    since: u64,
}

impl Repeats {
    /// `Some(repeats since the last line)` when a line is due.
    fn note(&mut self) -> Option<u64> {
        const EVERY: Duration = Duration::from_mins(1);
        if self.last.is_some_and(|last| last.elapsed() < EVERY) {
            self.since += 1;
            return None;
        }
        self.last = Some(Instant::now());
        Some(std::mem::take(&mut self.since))
    }
}

fn finish(
    state: &State,
    head: &Head<'_>,
    r: Response,
    started: Instant,
) -> hyper::Response<Full<Bytes>> {
    state
        .service
        .log()
        .access(head.method, head.path, r.status, started.elapsed());
    let mut builder = hyper::Response::builder()
        .status(StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(CONTENT_TYPE, r.content_type);
    for (name, value) in &r.headers {
        builder = builder.header(*name, value.as_str());
    }
    if r.close {
        builder = builder.header(CONNECTION, "close");
    }
    builder
        .body(Full::new(Bytes::from(r.body)))
        .unwrap_or_else(|_| {
            let mut fallback = hyper::Response::new(Full::new(Bytes::from_static(
                br#"{"error":{"type":"internal_error","message":"bad response header","details":[]}}"#,
            )));
            *fallback.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            fallback
        })
}
