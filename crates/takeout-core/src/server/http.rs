//! The hyper transport: HTTP/1.1 with keep-alive on a tokio runtime of its own thread, so the
//! Python side never runs an event loop for it. Slow clients are cut off (head and body
//! deadlines), and shutdown drains: stop accepting, let in-flight requests finish within
//! `grace`, then return.

use std::convert::Infallible;
use std::io;
use std::net::{SocketAddr, TcpListener as StdListener, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
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
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

use super::host::Hosts;
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
        config,
    });
    let finished = done.clone();
    let dropped = Arc::new(AtomicUsize::new(0));
    let dropped_in = dropped.clone();
    let log = state.service.log().clone();
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
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    // Responses are one write; Nagle would hold each back for the client's ACK.
                    let _ = stream.set_nodelay(true);
                    let state = state.clone();
                    let svc = service_fn(move |req| handle(state.clone(), req));
                    let conn = builder.serve_connection(TokioIo::new(stream), svc);
                    let conn = graceful.watch(conn);
                    tokio::spawn(async move {
                        // A connection error (reset, bad request line) ends that connection only.
                        let _ = conn.await;
                    });
                }
                Err(err) => {
                    // Out of file descriptors or the like: never fatal, but do not spin.
                    state.service.log().warn("accept failed", &[("error", err.to_string().into())]);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
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
    let bytes = match read_body(body, opts.max_body, state.config.body_timeout).await {
        Ok(bytes) => bytes,
        Err(err) => {
            let r = service.reject(route, err, started);
            return Ok(finish(&state, &head, r, started));
        }
    };
    let response = match service.begin(route, &bytes, started) {
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

async fn read_body(body: Incoming, limit: usize, deadline: Duration) -> Result<Bytes, ApiError> {
    match tokio::time::timeout(deadline, Limited::new(body, limit).collect()).await {
        Err(_) => Err(ApiError::body_timeout(deadline.as_secs_f64())),
        Ok(Err(err)) if err.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ApiError::too_large(limit))
        }
        Ok(Err(err)) => Err(ApiError::new(
            400,
            "bad_body",
            format!("the request body could not be read: {err}"),
        )
        .closing()),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
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
