//! The request core: routing, the token, content checks, JSON, binding and validation,
//! concurrency, and turning a call's outcome into a response. Transport-free: the hyper server
//! and the ASGI adapter both drive it, so they answer every request with the same bytes.
//!
//! A request goes `start` (head only) → `begin` (body) → the transport runs the calls through
//! its [`Invoke`](super::Invoke) → `finish` (or `timed_out`). Every response the core returns
//! has already been counted in the metrics.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strum::IntoEnumIterator as _;

use serde_json::{json, Value};

use super::bind::{Args, Binder};
use super::json::{self, Json, ParseError};
use super::kserve_v2;
use super::log::Logger;
use super::metrics::{InFlight, Metrics};
use super::negotiate::{self, Accept};
use super::openapi;
use super::page;
use super::params::{ManifestError, Params};
use super::response::{self, ApiError, Response};
use super::CallThreads;

/// Limits and switches of one server; `takeout serve` flags map onto these one to one.
#[derive(Debug, Clone)]
pub struct Options {
    /// Required as `Authorization: Bearer <token>` on calls and metrics.
    pub token: Option<String>,
    pub max_body: usize,
    /// How long a call may take before the client gets a 504.
    pub timeout: Duration,
    /// Calls queued or running at once; past it, 503 with `Retry-After`.
    pub max_concurrency: usize,
    /// Nesting of arrays and objects in a body (at most 127).
    pub max_depth: usize,
    /// Tracebacks in 500 responses.
    pub debug: bool,
    /// Worker processes that will be forked from this one; more than one shares the metrics.
    pub workers: usize,
    /// Once every call thread has been stuck (past `timeout`) this long, `/healthz` fails so
    /// that the worker is restarted; `None`: never.
    pub stuck_restart: Option<Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            token: None,
            max_body: 10 << 20,
            timeout: Duration::from_mins(1),
            max_concurrency: 1024,
            max_depth: 64,
            debug: false,
            workers: 1,
            stuck_restart: Some(Duration::from_secs(30)),
        }
    }
}

/// The call threads as the probes report them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Health {
    pub threads: usize,
    /// Calls running past `--timeout` that have not returned.
    pub stuck: usize,
    /// Every thread is stuck: not ready, new calls could only time out.
    pub all_stuck: bool,
    /// Every thread has been stuck past `--stuck-restart`: not live either.
    pub stuck_too_long: bool,
}

/// Every route the server answers. `RouteKind` (without the per-request data) is what the
/// metrics count by; [`RouteKind::endpoint`] is the one table of paths and methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumDiscriminants, strum::EnumIter)]
#[strum_discriminants(name(RouteKind), derive(strum::VariantArray, strum::EnumCount))]
pub enum Route {
    /// With what the request's `Accept` prefers for a rich result.
    Call(Accept),
    Predict,
    Model,
    Healthz,
    Readyz,
    Metrics,
    OpenApi,
    Index,
    /// `GET /v1/models`: the list `KServe` v1 clients ask for.
    ModelList,
    V2Server,
    V2Live,
    V2Ready,
    V2Model,
    V2ModelReady,
    /// With the request's `Inference-Header-Content-Length`, if any.
    V2Infer(Option<u64>),
}

impl RouteKind {
    /// The path and method of the route for the function `name`: the router matches these, and
    /// the metrics label their series with them.
    pub(crate) fn endpoint(self, name: &str) -> (String, &'static str) {
        match self {
            Self::Call => ("/call".into(), "POST"),
            Self::Predict => (format!("{MODEL_LIST_PATH}/{name}:predict"), "POST"),
            Self::Model => (format!("{MODEL_LIST_PATH}/{name}"), "GET"),
            Self::Healthz => ("/healthz".into(), "GET"),
            Self::Readyz => ("/readyz".into(), "GET"),
            Self::Metrics => ("/metrics".into(), "GET"),
            Self::OpenApi => ("/openapi.json".into(), "GET"),
            Self::Index => ("/".into(), "GET"),
            Self::ModelList => (MODEL_LIST_PATH.into(), "GET"),
            Self::V2Server => ("/v2".into(), "GET"),
            Self::V2Live => ("/v2/health/live".into(), "GET"),
            Self::V2Ready => ("/v2/health/ready".into(), "GET"),
            Self::V2Model => (format!("/v2/models/{name}"), "GET"),
            Self::V2ModelReady => (format!("/v2/models/{name}/ready"), "GET"),
            Self::V2Infer => (format!("/v2/models/{name}/infer"), "POST"),
        }
    }

    /// The Open Inference Protocol's routes, whose errors take its own shape.
    fn is_v2(self) -> bool {
        use RouteKind::{V2Infer, V2Live, V2Model, V2ModelReady, V2Ready, V2Server};
        matches!(
            self,
            V2Server | V2Live | V2Ready | V2Model | V2ModelReady | V2Infer
        )
    }
}

/// What the core needs of a request head; transports fill it from their own header types.
#[derive(Debug, Clone, Copy, Default)]
pub struct Head<'a> {
    pub method: &'a str,
    /// Without the query string.
    pub path: &'a str,
    pub content_type: Option<&'a [u8]>,
    pub authorization: Option<&'a [u8]>,
    pub content_length: Option<u64>,
    /// `Inference-Header-Content-Length`: the JSON part of a v2 body with binary tensors.
    pub inference_header_length: Option<u64>,
    pub accept: Option<&'a [u8]>,
}

pub enum Start {
    Respond(Response),
    /// Read the body (at most `max_body` bytes), then call [`Service::begin`].
    NeedBody(Route),
}

pub enum Step {
    Respond(Response),
    /// Run `calls` in order, then hand their outcome to [`Service::finish`].
    Call(Ticket, Vec<Args>),
}

/// A request waiting for its calls; holds a concurrency slot until dropped.
pub struct Ticket {
    route: Route,
    started: Instant,
    oip: Option<kserve_v2::Pending>,
    _slot: Slot,
}

impl Ticket {
    pub fn started(&self) -> Instant {
        self.started
    }
}

struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Why a call produced no result.
#[derive(Debug, Clone, PartialEq)]
pub enum CallError {
    /// The function raised: the exception's type (qualified unless a builtin) and message.
    Raised {
        kind: String,
        message: String,
        traceback: Option<String>,
    },
    /// The result of call number `call` holds a value with no JSON form, at `path` inside it
    /// (`[2].x`; empty for the result itself).
    Unserializable {
        kind: String,
        path: String,
        call: usize,
    },
    /// The worker could not run the call (shut down, or a bug).
    Internal(String),
    /// A batch function's result was not one result per item (not a sequence, or another
    /// length): the sentence says which.
    BatchResult(String),
}

/// One encoded JSON value per call, in call order.
pub type Outcome = Result<Vec<Vec<u8>>, CallError>;

pub struct Service {
    sig: Params,
    opts: Options,
    binder: Binder,
    metrics: Arc<Metrics>,
    openapi: Vec<u8>,
    page: page::Page,
    /// Each route with its path and method, in [`RouteKind`]'s order.
    routes: Vec<(String, Route, &'static str)>,
    v2: kserve_v2::Model,
    expected_auth: Option<Vec<u8>>,
    calls_in_flight: Arc<AtomicUsize>,
    draining: AtomicBool,
    log: Logger,
    threads: Option<Arc<dyn CallThreads>>,
    /// The last health reported: 0 fine, 1 every thread stuck, 2 stuck too long.
    health_seen: AtomicU8,
}

impl Service {
    pub fn new(manifest_json: &str, opts: Options, log: Logger) -> Result<Self, ManifestError> {
        let sig = Params::from_manifest(manifest_json)?;
        let binder = Binder::new(&sig)?;
        let routes: Vec<_> = Route::iter()
            .map(|route| {
                let (path, method) = RouteKind::from(route).endpoint(&sig.name);
                (path, route, method)
            })
            .collect();
        let predict_path = &routes[RouteKind::Predict as usize].0;
        let model_path = &routes[RouteKind::Model as usize].0;
        let token = opts.token.as_deref().filter(|t| !t.is_empty());
        let mut doc = openapi::document(&sig, predict_path, model_path, token.is_some());
        for (path, item) in kserve_v2::openapi_paths(&sig.name, MODEL_LIST_PATH) {
            doc["paths"][path] = item;
        }
        let openapi = serde_json::to_vec(&doc).expect("a JSON value serialises");
        let page = page::render(&sig, predict_path, token.is_some());
        let expected_auth = token.map(|t| format!("Bearer {t}").into_bytes());
        let metrics = Arc::new(Metrics::new(
            routes.iter().map(|(path, ..)| path.clone()),
            opts.workers,
        ));
        log.count_drops_in(metrics.clone());
        Ok(Self {
            v2: kserve_v2::Model::new(&sig),
            metrics,
            sig,
            binder,
            openapi,
            page,
            routes,
            expected_auth,
            calls_in_flight: Arc::new(AtomicUsize::new(0)),
            draining: AtomicBool::new(false),
            log,
            opts,
            threads: None,
            health_seen: AtomicU8::new(0),
        })
    }

    /// The threads that run this service's calls, which the probes and metrics watch.
    #[must_use]
    pub fn with_call_threads(mut self, threads: Arc<dyn CallThreads>) -> Self {
        self.threads = Some(threads);
        self
    }

    /// Look at the call threads now: the probes' answer, also kept in the metrics (where the
    /// supervisor reads it). Logged when it gets worse.
    pub fn health(&self) -> Health {
        let Some(threads) = &self.threads else {
            return Health::default();
        };
        let n = threads.threads();
        let stuck = threads.running_longer_than(self.opts.timeout);
        let all_stuck = n > 0 && stuck >= n;
        let stuck_too_long = all_stuck
            && self.opts.stuck_restart.is_some_and(|bound| {
                threads.running_longer_than(self.opts.timeout.saturating_add(bound)) >= n
            });
        self.metrics.set_call_threads(n, stuck, stuck_too_long);
        let level = u8::from(all_stuck) + u8::from(stuck_too_long);
        let before = self.health_seen.swap(level, Ordering::AcqRel);
        if level < before && !all_stuck {
            self.log
                .info("a call thread is free again; /readyz answers 200", &[]);
        }
        if level > before {
            let fields = [
                ("threads", n.into()),
                ("timeout_s", self.opts.timeout.as_secs_f64().into()),
            ];
            if stuck_too_long {
                self.log.error(
                    "every call thread is still stuck past --stuck-restart; /healthz now fails",
                    &fields,
                );
            } else {
                self.log.warn(
                    "every call thread is in a call past --timeout; /readyz now fails",
                    &fields,
                );
            }
        }
        Health {
            threads: n,
            stuck,
            all_stuck,
            stuck_too_long,
        }
    }

    fn ready(&self) -> Result<(), ApiError> {
        if self.draining.load(Ordering::Acquire) {
            return Err(ApiError::draining());
        }
        let health = self.health();
        if health.all_stuck {
            return Err(ApiError::calls_stuck(format!(
                "every call thread ({} of {}) is in a call that ran past `--timeout` ({} s) and \
                 has not returned; new calls would only time out",
                health.stuck,
                health.threads,
                self.opts.timeout.as_secs_f64()
            )));
        }
        Ok(())
    }

    fn live(&self) -> Result<(), ApiError> {
        let health = self.health();
        match self.opts.stuck_restart {
            Some(bound) if health.stuck_too_long => Err(ApiError::calls_stuck(format!(
                "every call thread ({}) has been stuck for more than {} s past `--timeout` \
                 (`--stuck-restart`); restart this worker",
                health.threads,
                bound.as_secs_f64()
            ))),
            _ => Ok(()),
        }
    }

    pub fn name(&self) -> &str {
        &self.sig.name
    }

    pub fn params(&self) -> &Params {
        &self.sig
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// For a batch function, the batcher to put in front of `inner` (the invoker that runs
    /// the function, which then receives one call per batch, with the list of items first).
    pub fn batcher(&self, inner: Arc<dyn super::Invoke>) -> Option<super::batch::Batcher> {
        let spec = self.sig.batch.clone()?;
        Some(super::batch::Batcher::new(
            spec,
            inner,
            self.metrics.clone(),
        ))
    }

    pub fn log(&self) -> &Logger {
        &self.log
    }

    pub fn enter(&self) -> InFlight {
        self.metrics.enter()
    }

    /// From now on `/readyz` answers 503, so a load balancer stops sending new work.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub fn calls_in_flight(&self) -> usize {
        self.calls_in_flight.load(Ordering::Acquire)
    }

    /// Everything that needs only the head: routing, the token, the media type, a declared
    /// length over the limit; GET routes are answered here.
    pub fn start(&self, head: &Head<'_>, started: Instant) -> Start {
        let route = match self.route(head.method, head.path) {
            Ok(Route::Call(_)) => Route::Call(Accept::parse(head.accept)),
            Ok(route) => route,
            Err(err) => {
                let response = if is_v2(head.path) {
                    kserve_v2::error_response(err)
                } else {
                    err.into_response()
                };
                self.record(None, response.status, started);
                return Start::Respond(response);
            }
        };
        let label = Some(RouteKind::from(route));
        if matches!(
            route,
            Route::Call(_) | Route::Predict | Route::Metrics | Route::V2Infer(_)
        ) {
            if let Some(expected) = &self.expected_auth {
                let given = head.authorization.unwrap_or_default();
                if !bearer_matches(given, expected) {
                    let err = ApiError::unauthorized(head.authorization.is_some());
                    return Start::Respond(self.fail(label, err, started));
                }
            }
        }
        let response = match route {
            Route::Call(_) | Route::Predict | Route::V2Infer(_) => {
                let accepted = match route {
                    // tritonclient sends no content type; binary tensors come as octet-stream.
                    Route::V2Infer(_) => head
                        .content_type
                        .is_none_or(|ct| is_json(Some(ct)) || is_octet_stream(ct)),
                    _ => is_json(head.content_type),
                };
                if !accepted {
                    let ct = head.content_type.map(String::from_utf8_lossy);
                    let err = ApiError::not_json(ct.as_deref());
                    return Start::Respond(self.fail(label, err, started));
                }
                if head
                    .content_length
                    .is_some_and(|n| n > self.opts.max_body as u64)
                {
                    let err = ApiError::too_large(self.opts.max_body);
                    return Start::Respond(self.fail(label, err, started));
                }
                return Start::NeedBody(match route {
                    Route::V2Infer(_) => Route::V2Infer(head.inference_header_length),
                    other => other,
                });
            }
            Route::ModelList => {
                let body = json!({"models": [self.sig.name]});
                Response::json(200, body.to_string().into_bytes())
            }
            Route::V2Server => Response::json(200, kserve_v2::server_metadata()),
            Route::V2Live => match self.live() {
                Ok(()) => Response::json(200, br#"{"live":true}"#.to_vec()),
                Err(_) => Response::json(503, br#"{"live":false}"#.to_vec()),
            },
            Route::V2Ready | Route::V2ModelReady => {
                let ready = self.ready().is_ok();
                let mut body = json!({"ready": ready});
                if route == Route::V2ModelReady {
                    body["name"] = self.sig.name.clone().into();
                }
                let status = if ready { 200 } else { 503 };
                Response::json(status, body.to_string().into_bytes())
            }
            Route::V2Model => Response::json(200, self.v2.metadata()),
            Route::Healthz => match self.live() {
                Ok(()) => Response::json(200, br#"{"status":"ok"}"#.to_vec()),
                Err(err) => err.into_response(),
            },
            Route::Readyz => match self.ready() {
                Ok(()) => Response::json(200, br#"{"status":"ready"}"#.to_vec()),
                Err(err) => err.into_response(),
            },
            Route::Model => {
                let ready = self.ready().is_ok();
                let body = json!({"name": self.sig.name, "ready": ready});
                Response::json(200, body.to_string().into_bytes())
            }
            Route::Metrics => Response {
                status: 200,
                content_type: response::PROMETHEUS,
                body: {
                    self.health();
                    self.metrics.render().into_bytes()
                },
                headers: Vec::new(),
                close: false,
            },
            Route::OpenApi => Response::json(200, self.openapi.clone()),
            Route::Index => Response {
                status: 200,
                content_type: response::HTML,
                body: self.page.body.clone(),
                headers: vec![
                    ("content-security-policy", self.page.csp.clone()),
                    ("x-content-type-options", "nosniff".into()),
                ],
                close: false,
            },
        };
        self.record(label, response.status, started);
        Start::Respond(response)
    }

    /// Parse, bind and validate the body, then take a concurrency slot for the calls.
    pub fn begin(&self, route: Route, body: &[u8], started: Instant) -> Step {
        let label = Some(RouteKind::from(route));
        if body.len() > self.opts.max_body {
            return Step::Respond(self.fail(
                label,
                ApiError::too_large(self.opts.max_body),
                started,
            ));
        }
        let (value, mut oip) = match route {
            Route::V2Infer(header) => {
                match kserve_v2::decode(&self.v2, body, header, self.opts.max_depth) {
                    Ok((args, pending)) => (args, Some(pending)),
                    Err(err) => return Step::Respond(self.fail(label, err, started)),
                }
            }
            _ => match json::parse(body, self.opts.max_depth) {
                Ok(v) => (v, None),
                Err(err @ ParseError::TooDeep(_)) => {
                    let err = ApiError::new(400, "too_deep", err.to_string());
                    return Step::Respond(self.fail(label, err, started));
                }
                Err(err) => {
                    return Step::Respond(self.fail(
                        label,
                        ApiError::malformed(err.to_string()),
                        started,
                    ))
                }
            },
        };
        let bound = match route {
            Route::Predict => self.bind_instances(value),
            Route::V2Infer(_) if self.v2.batch_input().is_some() => {
                let pending = oip.as_mut().expect("a v2 request has its pending part");
                pending.batched = true;
                self.bind_v2_batch(value)
            }
            _ => self
                .binder
                .bind(value, &[Value::from("body")])
                .map(|args| vec![args]),
        };
        let calls = match bound {
            Ok(calls) => calls,
            // The protocol's errors are one string, so the first problem names its input.
            Err(issues) if oip.is_some() => {
                let err = ApiError::invalid(issues.clone());
                let message = match issues[0]["loc"].get(1).and_then(Value::as_str) {
                    Some(input) => format!("input `{input}`: {}", err.message),
                    None => err.message,
                };
                let err = ApiError::new(400, "invalid_arguments", message);
                return Step::Respond(self.fail(label, err, started));
            }
            Err(issues) => {
                return Step::Respond(self.fail(label, ApiError::invalid(issues), started))
            }
        };
        let previous = self.calls_in_flight.fetch_add(1, Ordering::AcqRel);
        let slot = Slot(self.calls_in_flight.clone());
        if previous >= self.opts.max_concurrency {
            drop(slot);
            let err = ApiError::overloaded(self.opts.max_concurrency);
            return Step::Respond(self.fail(label, err, started));
        }
        Step::Call(
            Ticket {
                route,
                started,
                oip,
                _slot: slot,
            },
            calls,
        )
    }

    /// A v2 request to a batch function: the first input's outer dimension is the batch, and
    /// each of its rows is bound as one call with the other inputs.
    fn bind_v2_batch(&self, value: Json) -> Result<Vec<Args>, Vec<Value>> {
        let name = self.v2.batch_input().unwrap_or_default();
        let Json::Object(mut members) = value else {
            return self
                .binder
                .bind(value, &[Value::from("body")])
                .map(|a| vec![a]);
        };
        let Some(at) = members.iter().rposition(|(k, _)| k == name) else {
            return self
                .binder
                .bind(Json::Object(members), &[Value::from("body")])
                .map(|a| vec![a]);
        };
        let rows = match members.remove(at).1 {
            Json::Array(rows) => rows,
            one => vec![one],
        };
        let mut calls = Vec::with_capacity(rows.len());
        for (i, row) in rows.into_iter().enumerate() {
            let mut object = members.clone();
            object.push((name.to_owned(), row));
            let bound = self
                .binder
                .bind(Json::Object(object), &[Value::from("body")]);
            calls.push(bound.map_err(|mut issues| {
                // Name the row: `["body", "x", 3, ...]`.
                for issue in &mut issues {
                    if let Some(loc) = issue["loc"].as_array_mut() {
                        if loc.get(1).and_then(Value::as_str) == Some(name) {
                            loc.insert(2, Value::from(i));
                        }
                    }
                }
                issues
            })?);
        }
        Ok(calls)
    }

    fn bind_instances(&self, value: Json) -> Result<Vec<Args>, Vec<Value>> {
        let Json::Object(members) = value else {
            return Err(vec![response::issue(
                vec!["body".into()],
                format!(
                    "a KServe request is an object `{{\"instances\": [...]}}`, not {}",
                    value.kind()
                ),
                "body_type",
            )]);
        };
        let instances = members
            .into_iter()
            .rev()
            .find(|(k, _)| k == "instances")
            .map(|(_, v)| v);
        let instances = match instances {
            Some(Json::Array(items)) => items,
            other => {
                let msg = match other {
                    Some(v) => format!("`instances` must be an array, not {}", v.kind()),
                    None => "missing `instances`: send `{\"instances\": [...]}`".into(),
                };
                return Err(vec![response::issue(
                    vec!["body".into(), "instances".into()],
                    msg,
                    "missing",
                )]);
            }
        };
        let sole = self.sig.sole_param().is_some();
        let mut calls = Vec::with_capacity(instances.len());
        let mut issues = Vec::new();
        for (i, instance) in instances.into_iter().enumerate() {
            let loc = [
                Value::from("body"),
                Value::from("instances"),
                Value::from(i),
            ];
            let bound = if sole {
                self.binder.bind_sole(instance, &loc)
            } else {
                self.binder.bind(instance, &loc)
            };
            match bound {
                Ok(args) => calls.push(args),
                Err(mut more) => issues.append(&mut more),
            }
            if issues.len() >= 20 {
                break;
            }
        }
        if issues.is_empty() {
            Ok(calls)
        } else {
            issues.truncate(20);
            Err(issues)
        }
    }

    /// The response for finished calls: `{"result": ...}`, `{"predictions": [...]}` or a 500.
    pub fn finish(&self, ticket: Ticket, outcome: Outcome) -> Response {
        let label = Some(RouteKind::from(ticket.route));
        self.metrics.called(match &outcome {
            Ok(results) => results.len(),
            Err(_) => 1,
        });
        let response = match (ticket.route, outcome) {
            (Route::V2Infer(_), Ok(results)) if ticket.oip.as_ref().is_some_and(|p| p.batched) => {
                // One row of the output tensor per row of the batch input.
                let pending = ticket.oip.clone().unwrap_or_default();
                kserve_v2::encode(&self.v2, &pending, &join_array(&results))
            }
            (Route::V2Infer(_), Ok(results)) if results.len() == 1 => {
                let pending = ticket.oip.clone().unwrap_or_default();
                kserve_v2::encode(&self.v2, &pending, &results[0])
            }
            (Route::Predict, Ok(results)) => {
                let mut body = Vec::with_capacity(results.iter().map(Vec::len).sum::<usize>() + 20);
                body.extend_from_slice(b"{\"predictions\":");
                body.extend_from_slice(&join_array(&results));
                body.push(b'}');
                Response::json(200, body)
            }
            (route, Ok(mut results)) if results.len() == 1 => {
                let result = results.pop().unwrap_or_default();
                let mut vary = false;
                if let Route::Call(accept) = route {
                    if let Some(response) = media_response(accept, &result) {
                        self.record(label, response.status, ticket.started);
                        return response;
                    }
                    vary = negotiate::maybe_rich(&result);
                }
                let mut body = Vec::with_capacity(result.len() + 11);
                body.extend_from_slice(b"{\"result\":");
                body.extend_from_slice(&result);
                body.push(b'}');
                let response = Response::json(200, body);
                if vary {
                    // Another `Accept` would have had the media type itself.
                    response.with_header("vary", "accept")
                } else {
                    response
                }
            }
            (route, Ok(results)) => self.call_error(
                route,
                CallError::Internal(format!(
                    "the worker returned {} results for one call",
                    results.len()
                )),
            ),
            (route, Err(err)) => self.call_error(route, err),
        };
        self.record(label, response.status, ticket.started);
        response
    }

    pub fn timed_out(&self, ticket: Ticket) -> Response {
        let err = ApiError::timed_out(self.opts.timeout.as_secs_f64());
        self.log.warn(
            "call timed out",
            &[("timeout_s", self.opts.timeout.as_secs_f64().into())],
        );
        self.fail(Some(RouteKind::from(ticket.route)), err, ticket.started)
    }

    /// A request the transport refuses from its head alone (a `Host` it does not answer for).
    pub fn refuse(&self, err: ApiError, started: Instant) -> Response {
        self.fail(None, err, started)
    }

    /// Errors only a transport sees (a body too large while streaming, a body too slow).
    pub fn reject(&self, route: Route, err: ApiError, started: Instant) -> Response {
        self.fail(Some(RouteKind::from(route)), err, started)
    }

    fn call_error(&self, route: Route, err: CallError) -> Response {
        let api = match err {
            CallError::Raised {
                kind,
                message,
                traceback,
            } => {
                self.metrics.function_error(&kind);
                self.log.warn(
                    "the function raised",
                    &[
                        ("type", kind.as_str().into()),
                        ("message", message.as_str().into()),
                    ],
                );
                let details = match traceback {
                    Some(tb) if self.opts.debug => vec![json!({"traceback": tb})],
                    _ => Vec::new(),
                };
                ApiError::new(500, kind, message).with_details(details)
            }
            CallError::Unserializable { kind, path, call } => {
                self.metrics.function_error("unserializable_result");
                let path = match route {
                    Route::Predict => format!("predictions[{call}]{path}"),
                    _ => format!("result{path}"),
                };
                let message = format!(
                    "the function returned `{kind}` at `{path}`, which has no JSON form; \
                     return lists, dicts, numbers, strings, numpy or pandas objects, or dataclasses"
                );
                self.log.warn(
                    "unserializable result",
                    &[("message", message.as_str().into())],
                );
                ApiError::new(500, "unserializable_result", message)
                    .with_details(vec![json!({"loc": path, "type": kind})])
            }
            CallError::Internal(message) => {
                self.log
                    .error("internal error", &[("message", message.as_str().into())]);
                ApiError::new(500, "internal_error", message)
            }
            CallError::BatchResult(message) => {
                self.metrics.function_error("invalid_batch_result");
                self.log.warn(
                    "invalid batch result",
                    &[("message", message.as_str().into())],
                );
                ApiError::new(500, "invalid_batch_result", message)
            }
        };
        error_response(Some(RouteKind::from(route)), api)
    }

    fn fail(&self, label: Option<RouteKind>, err: ApiError, started: Instant) -> Response {
        let response = error_response(label, err);
        self.record(label, response.status, started);
        response
    }

    fn record(&self, label: Option<RouteKind>, status: u16, started: Instant) {
        self.metrics.observe(label, status, started.elapsed());
    }

    fn route(&self, method: &str, path: &str) -> Result<Route, ApiError> {
        let canonical = self.v2.unversioned(path);
        let Some(&(_, route, allow)) = self.routes.iter().find(|(p, ..)| *p == canonical) else {
            return Err(ApiError::not_found(path));
        };
        let ok = match allow {
            "GET" => method == "GET" || method == "HEAD",
            _ => method == allow,
        };
        if ok {
            Ok(route)
        } else {
            let allow = if allow == "GET" { "GET, HEAD" } else { allow };
            Err(ApiError::method_not_allowed(method, path, allow))
        }
    }
}

pub(crate) const MODEL_LIST_PATH: &str = "/v1/models";

/// Encoded JSON values as one JSON array.
fn join_array(results: &[Vec<u8>]) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(results.iter().map(Vec::len).sum::<usize>() + results.len() + 2);
    out.push(b'[');
    for (i, r) in results.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(r);
    }
    out.push(b']');
    out
}

/// A rich result's own bytes, when the request's `Accept` prefers its media type to JSON.
fn media_response(accept: Accept, result: &[u8]) -> Option<Response> {
    if !accept.wants_media() {
        return None;
    }
    let (media, data) = negotiate::rich(result)?;
    let content_type = accept.choose(&media)?;
    let mut response = Response {
        status: 200,
        content_type,
        body: data,
        headers: vec![("vary", "accept".to_owned())],
        close: false,
    };
    if media != "image/png" && media != "image/jpeg" {
        // HTML and SVG made by the function (from the caller's arguments, perhaps) must not
        // run scripts with this origin's rights.
        response = response
            .with_header("content-security-policy", "sandbox")
            .with_header("x-content-type-options", "nosniff");
    }
    Some(response)
}

fn is_v2(path: &str) -> bool {
    path == "/v2" || path.starts_with("/v2/")
}

/// The Open Inference Protocol's routes answer errors in its own shape, `{"error": "..."}`.
fn error_response(label: Option<RouteKind>, err: ApiError) -> Response {
    if label.is_some_and(RouteKind::is_v2) {
        kserve_v2::error_response(err)
    } else {
        err.into_response()
    }
}

/// `application/json`, `application/<x>+json`, with or without parameters.
fn is_json(content_type: Option<&[u8]>) -> bool {
    let Some(ct) = content_type else {
        return false;
    };
    let essence = ct.split(|&b| b == b';').next().unwrap_or_default();
    let essence = essence.trim_ascii().to_ascii_lowercase();
    essence == b"application/json"
        || (essence.starts_with(b"application/") && essence.ends_with(b"+json"))
}

fn is_octet_stream(content_type: &[u8]) -> bool {
    let essence = content_type
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default();
    essence
        .trim_ascii()
        .eq_ignore_ascii_case(b"application/octet-stream")
}

/// Compares every byte whatever the first difference, so timing does not leak the token.
fn bearer_matches(given: &[u8], expected: &[u8]) -> bool {
    // The scheme is case-insensitive (RFC 7235); the token is not.
    let (scheme, token) = (given.get(..7), given.get(7..));
    let (Some(scheme), Some(token)) = (scheme, token) else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case(&expected[..7]) {
        return false;
    }
    let expected = &expected[7..];
    let mut diff = u8::from(token.len() != expected.len());
    for (i, &b) in expected.iter().enumerate() {
        diff |= b ^ token.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types() {
        assert!(is_json(Some(b"application/json")));
        assert!(is_json(Some(b"Application/JSON; charset=utf-8")));
        assert!(is_json(Some(b"application/vnd.api+json")));
        assert!(!is_json(Some(b"text/plain")));
        assert!(!is_json(Some(b"application/x-www-form-urlencoded")));
        assert!(!is_json(None));
    }

    #[test]
    fn bearer_tokens() {
        let expected = b"Bearer s3cret";
        assert!(bearer_matches(b"Bearer s3cret", expected));
        assert!(bearer_matches(b"bearer s3cret", expected));
        assert!(!bearer_matches(b"Bearer s3cre", expected));
        assert!(!bearer_matches(b"Bearer s3cret2", expected));
        assert!(!bearer_matches(b"Basic s3cret", expected));
        assert!(!bearer_matches(b"", expected));
    }
}
