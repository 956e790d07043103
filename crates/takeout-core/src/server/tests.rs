//! The request core and the hyper transport with test doubles for the function: no Python.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::http::{self, Config};
use super::json::Json;
use super::*;

const ADD: &str = r#"{
  "name": "add",
  "function": {
    "qualname": "add", "signature": "(x: float, y: float = 1.0) -> float", "doc": "Add two numbers.",
    "is_async": false, "is_generator": false,
    "parameters": [
      {"name": "x", "kind": "POSITIONAL_OR_KEYWORD", "required": true, "schema": {"type": "number"}},
      {"name": "y", "kind": "POSITIONAL_OR_KEYWORD", "required": false, "default": 1.0, "schema": {"type": "number"}}
    ],
    "schema": {"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
               "required": ["x"], "additionalProperties": false},
    "returns": {"type": "number"}
  },
  "examples": [{"args": [1.0, 2.0], "kwargs": {}, "output": 3.0}]
}"#;

const SHAPES: &str = r##"{
  "name": "shapes",
  "function": {
    "qualname": "shapes", "signature": "(a, /, b=2, *rest, k: Point, **extra)",
    "parameters": [
      {"name": "a", "kind": "POSITIONAL_ONLY", "required": true, "schema": {}},
      {"name": "b", "kind": "POSITIONAL_OR_KEYWORD", "required": false, "default": 2, "schema": {}},
      {"name": "rest", "kind": "VAR_POSITIONAL", "required": false, "schema": {"type": "integer"}},
      {"name": "k", "kind": "KEYWORD_ONLY", "required": false, "schema": {"$ref": "#/$defs/Point"}},
      {"name": "extra", "kind": "VAR_KEYWORD", "required": false, "schema": {"type": "string"}}
    ],
    "schema": {"type": "object",
      "properties": {"a": {}, "b": {}, "k": {"$ref": "#/$defs/Point"}},
      "required": ["a"], "additionalProperties": {"type": "string"},
      "$defs": {"Point": {"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
                          "required": ["x", "y"]}}}
  }
}"##;

const ONE: &str = r#"{"name": "km_predict_two", "function": {"qualname": "km_predict_two",
  "signature": "(sample)", "parameters": [
    {"name": "sample", "kind": "POSITIONAL_OR_KEYWORD", "required": true, "schema": {}}],
  "schema": {"type": "object", "properties": {"sample": {}}, "required": ["sample"], "additionalProperties": false},
  "returns": {}}, "examples": []}"#;

fn service(manifest: &str, opts: Options) -> Arc<Service> {
    let log = Logger {
        quiet: true,
        ..Logger::default()
    };
    Arc::new(Service::new(manifest, opts, log).unwrap())
}

fn post(path: &str) -> Head<'_> {
    Head {
        method: "POST",
        path,
        content_type: Some(b"application/json"),
        ..Head::default()
    }
}

/// Run a request through the core; `calls` receives the bound arguments and answers.
fn run(
    svc: &Service,
    head: &Head<'_>,
    body: &str,
    calls: impl FnOnce(Vec<Args>) -> Outcome,
) -> (u16, Value) {
    let now = Instant::now();
    let response = match svc.start(head, now) {
        Start::Respond(r) => r,
        Start::NeedBody(route) => match svc.begin(route, body.as_bytes(), now) {
            Step::Respond(r) => r,
            Step::Call(ticket, args) => svc.finish(ticket, calls(args)),
        },
    };
    let value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    (response.status, value)
}

fn bound(svc: &Service, body: &str) -> Result<Args, Value> {
    let mut out = None;
    let (status, value) = run(svc, &post("/call"), body, |mut calls| {
        out = calls.pop();
        Ok(vec![b"null".to_vec()])
    });
    if let Some(args) = out {
        Ok(args)
    } else {
        assert_eq!(status, 422, "{value}");
        Err(value["error"]["details"].clone())
    }
}

fn num(x: f64) -> Json {
    Json::Float(x)
}

#[test]
fn binds_objects_and_arrays() {
    let svc = service(ADD, Options::default());
    let args = bound(&svc, r#"{"x": 1.5}"#).unwrap();
    assert_eq!(args.keywords, vec![("x".to_string(), num(1.5))]);
    let args = bound(&svc, "[1.5, 2]").unwrap();
    assert_eq!(args.positional, vec![num(1.5), Json::Int(2)]);
    assert!(args.keywords.is_empty());
}

#[test]
fn binding_errors_name_the_field() {
    let svc = service(ADD, Options::default());
    let details = bound(&svc, r#"{"y": "two", "z": 1}"#).unwrap_err();
    let locs: Vec<&Value> = details
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["loc"])
        .collect();
    assert!(locs.contains(&&json!(["body", "x"])), "{details}");
    assert!(locs.contains(&&json!(["body", "y"])), "{details}");
    assert!(locs.contains(&&json!(["body", "z"])), "{details}");
    let types: Vec<&str> = details
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["type"].as_str().unwrap())
        .collect();
    assert!(types.contains(&"missing"));
    assert!(types.contains(&"schema.type"));
    assert!(types.contains(&"unexpected_argument"));

    let details = bound(&svc, "[1, 2, 3]").unwrap_err();
    assert_eq!(details[0]["loc"], json!(["body", 2]));
    assert_eq!(details[0]["type"], "too_many_positional");
    assert!(details[0]["msg"]
        .as_str()
        .unwrap()
        .contains("takes 2 positional arguments but 3 were given"));

    let details = bound(&svc, r#"["one"]"#).unwrap_err();
    assert_eq!(details[0]["loc"], json!(["body", "x"]));

    let details = bound(&svc, "3").unwrap_err();
    assert_eq!(details[0]["type"], "body_type");
}

#[test]
fn positional_only_var_args_kwargs_and_refs() {
    let svc = service(SHAPES, Options::default());
    // `a` is positional-only but may be named; extra keywords go to **extra.
    let args = bound(&svc, r#"{"a": 1, "k": {"x": 1, "y": 2}, "z": "s"}"#).unwrap();
    assert_eq!(args.positional, vec![Json::Int(1)]);
    assert_eq!(args.keywords[0].0, "k");
    assert_eq!(args.keywords[1], ("z".to_string(), Json::Str("s".into())));
    // Extra positional items go to *rest and are checked against its schema.
    let args = bound(&svc, "[1, 2, 3, 4]").unwrap();
    assert_eq!(args.positional.len(), 4);
    let details = bound(&svc, r#"[1, 2, 3, "four"]"#).unwrap_err();
    assert_eq!(details[0]["loc"], json!(["body", 3]));
    // `$ref` into `$defs` resolves, and the path goes inside the argument.
    let details = bound(&svc, r#"{"a": 1, "k": {"x": "no"}}"#).unwrap_err();
    let locs: Vec<&Value> = details
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["loc"])
        .collect();
    assert!(locs.contains(&&json!(["body", "k", "x"])), "{details}");
    assert!(locs.contains(&&json!(["body", "k"])), "{details}"); // `y` is required
    let details = bound(&svc, r#"{"a": 1, "z": 5}"#).unwrap_err();
    assert_eq!(details[0]["loc"], json!(["body", "z"]));
}

#[test]
fn duplicate_keys_last_wins() {
    let svc = service(ADD, Options::default());
    let args = bound(&svc, r#"{"x": 1, "x": 2}"#).unwrap();
    assert_eq!(args.keywords, vec![("x".to_string(), Json::Int(2))]);
}

#[test]
fn keywords_match_parameters_as_python_identifiers() {
    // `def add(𝑥, y=1.0)` has the parameter `x`: Python normalises identifiers (NFKC).
    let svc = service(ADD, Options::default());
    let args = bound(&svc, r#"{"𝑥": 1.5}"#).unwrap();
    assert_eq!(args.keywords, vec![("x".to_string(), num(1.5))]);
    let details = bound(&svc, r#"{"𝑥": "one"}"#).unwrap_err();
    assert_eq!(details[0]["loc"], json!(["body", "x"]), "{details}");
    // A key that names no parameter even after normalising is reported as sent.
    let details = bound(&svc, r#"{"x": 1, "𝑧": 2}"#).unwrap_err();
    assert_eq!(details[0]["loc"], json!(["body", "𝑧"]), "{details}");
}

const FIGURE: &str = r#"{"name": "plot", "function": {"qualname": "plot", "signature": "()",
  "parameters": [], "schema": {"type": "object", "properties": {}, "additionalProperties": false},
  "returns": {"type": "object", "required": ["media_type", "data"],
    "properties": {"media_type": {"enum": ["image/png"]},
                   "data": {"type": "string", "contentEncoding": "base64", "contentMediaType": "image/png"}},
    "additionalProperties": false}}, "examples": []}"#;

fn call_accepting(svc: &Service, accept: Option<&[u8]>, result: &[u8]) -> Response {
    let now = Instant::now();
    let head = Head {
        accept,
        ..post("/call")
    };
    let Start::NeedBody(route) = svc.start(&head, now) else {
        panic!("/call needs its body");
    };
    let Step::Call(ticket, _) = svc.begin(route, b"{}", now) else {
        panic!("the call binds");
    };
    svc.finish(ticket, Ok(vec![result.to_vec()]))
}

#[test]
fn rich_results_answer_their_media_type_when_accept_prefers_it() {
    let svc = service(FIGURE, Options::default());
    let png = br#"{"media_type":"image/png","data":"iVBORw0KGgo="}"#;
    let browser = b"text/html,application/xhtml+xml,application/xml;q=0.9,image/*,*/*;q=0.8";
    let r = call_accepting(&svc, Some(browser), png);
    assert_eq!((r.status, r.content_type), (200, "image/png"));
    assert_eq!(r.body, b"\x89PNG\r\n\x1a\n");
    assert!(r.headers.contains(&("vary", "accept".into())));
    for accept in [None, Some(&b"*/*"[..]), Some(b"application/json")] {
        let r = call_accepting(&svc, accept, png);
        assert_eq!(r.content_type, response::JSON, "{accept:?}");
        assert!(r.headers.contains(&("vary", "accept".into())));
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["result"]["media_type"], "image/png");
    }
    // HTML from the function runs no script with the server's origin.
    let html = br#"{"media_type":"text/html","data":"PGI+aGk8L2I+"}"#;
    let r = call_accepting(&svc, Some(b"text/html"), html);
    assert_eq!(r.content_type, "text/html; charset=utf-8");
    assert_eq!(r.body, b"<b>hi</b>");
    assert!(r
        .headers
        .contains(&("content-security-policy", "sandbox".into())));
    // Any other result is JSON whatever the client asked for.
    let r = call_accepting(&svc, Some(b"image/png"), b"[1, 2]");
    assert_eq!(
        (r.content_type, r.body.as_slice()),
        (response::JSON, &br#"{"result":[1, 2]}"#[..])
    );
    // The media types are in the OpenAPI document.
    let doc: Value = {
        let r = match svc.start(
            &Head {
                method: "GET",
                path: "/openapi.json",
                ..Head::default()
            },
            Instant::now(),
        ) {
            Start::Respond(r) => r,
            Start::NeedBody(_) => unreachable!(),
        };
        serde_json::from_slice(&r.body).unwrap()
    };
    let content = &doc["paths"]["/call"]["post"]["responses"]["200"]["content"];
    assert_eq!(
        content["image/png"]["schema"]["contentMediaType"],
        "image/png"
    );
    assert!(content["application/json"].is_object());
}

#[test]
fn results_and_kserve_predictions() {
    let svc = service(ONE, Options::default());
    let (status, body) = run(&svc, &post("/call"), r#"{"sample": [0.5, 0.5]}"#, |calls| {
        assert_eq!(calls.len(), 1);
        Ok(vec![b"7".to_vec()])
    });
    assert_eq!((status, body), (200, json!({"result": 7})));

    let head = post("/v1/models/km_predict_two:predict");
    let (status, body) = run(
        &svc,
        &head,
        r#"{"instances": [[0.5, 0.5], [0.1, 0.9]]}"#,
        |calls| {
            // A one-parameter function gets each instance as its argument.
            assert_eq!(
                calls[1].positional,
                vec![Json::Array(vec![num(0.1), num(0.9)])]
            );
            Ok(vec![b"7".to_vec(), b"2".to_vec()])
        },
    );
    assert_eq!((status, body), (200, json!({"predictions": [7, 2]})));

    // A lone value is the argument of a one-parameter function, as in `takeout call`.
    let (status, _) = run(&svc, &post("/call"), "3", |calls| {
        assert_eq!(calls[0].positional, vec![Json::Int(3)]);
        Ok(vec![b"1".to_vec()])
    });
    assert_eq!(status, 200);

    let (status, body) = run(&svc, &head, r#"{"inputs": []}"#, |_| unreachable!());
    assert_eq!(status, 422);
    assert_eq!(
        body["error"]["details"][0]["loc"],
        json!(["body", "instances"])
    );

    let svc = service(ADD, Options::default());
    let head = post("/v1/models/add:predict");
    let (status, body) = run(
        &svc,
        &head,
        r#"{"instances": [{"x": 1}, [2, 3], {"x": "no"}]}"#,
        |_| unreachable!(),
    );
    assert_eq!(status, 422);
    assert_eq!(
        body["error"]["details"][0]["loc"],
        json!(["body", "instances", 2, "x"])
    );
}

#[test]
fn function_errors_are_500s_with_type_and_message() {
    let svc = service(ADD, Options::default());
    let raised = || {
        Err(CallError::Raised {
            kind: "ValueError".into(),
            message: "bad x".into(),
            traceback: Some("Traceback ...".into()),
        })
    };
    let (status, body) = run(&svc, &post("/call"), r#"{"x": 1}"#, |_| raised());
    assert_eq!(status, 500);
    assert_eq!(body["error"]["type"], "ValueError");
    assert_eq!(body["error"]["message"], "bad x");
    assert_eq!(
        body["error"]["details"],
        json!([]),
        "no traceback without debug"
    );

    let debug = service(
        ADD,
        Options {
            debug: true,
            ..Options::default()
        },
    );
    let (_, body) = run(&debug, &post("/call"), r#"{"x": 1}"#, |_| raised());
    assert_eq!(body["error"]["details"][0]["traceback"], "Traceback ...");

    let (status, body) = run(&svc, &post("/call"), r#"{"x": 1}"#, |_| {
        Err(CallError::Unserializable {
            kind: "socket.socket".into(),
            path: "[0]".into(),
            call: 0,
        })
    });
    assert_eq!(status, 500);
    assert_eq!(body["error"]["type"], "unserializable_result");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("`socket.socket` at `result[0]`"));
    let metrics = svc.metrics().render();
    assert!(metrics.contains("takeout_function_errors_total{type=\"ValueError\"} 1"));
    assert!(metrics.contains("takeout_requests_total{route=\"/call\",status=\"500\"} 2"));
}

#[test]
fn request_errors() {
    let token = Options {
        token: Some("s3cret".into()),
        max_body: 64,
        max_depth: 3,
        ..Options::default()
    };
    let svc = service(ADD, token);
    let never = |_| -> Outcome { unreachable!() };
    let authed = |head: Head<'static>| Head {
        authorization: Some(b"Bearer s3cret"),
        ..head
    };
    // 401 without or with a wrong token; probes stay open.
    assert_eq!(run(&svc, &post("/call"), "{}", never).0, 401);
    let wrong = Head {
        authorization: Some(b"Bearer nope"),
        ..post("/call")
    };
    assert_eq!(run(&svc, &wrong, "{}", never).0, 401);
    let get = |path| Head {
        method: "GET",
        path,
        ..Head::default()
    };
    assert_eq!(run(&svc, &get("/healthz"), "", never).0, 200);
    assert_eq!(run(&svc, &get("/metrics"), "", never).0, 401);
    // 400 malformed and too deep.
    let (status, body) = run(&svc, &authed(post("/call")), "{\"x\": ", never);
    assert_eq!(
        (status, body["error"]["type"].as_str()),
        (400, Some("malformed_json"))
    );
    let (status, body) = run(&svc, &authed(post("/call")), "[[[[1]]]]", never);
    assert_eq!(
        (status, body["error"]["type"].as_str()),
        (400, Some("too_deep"))
    );
    // 413 by declared length and by actual length.
    let big = Head {
        content_length: Some(65),
        ..authed(post("/call"))
    };
    assert_eq!(run(&svc, &big, "", never).0, 413);
    let long = format!("[{}]", "1,".repeat(40) + "1");
    assert_eq!(run(&svc, &authed(post("/call")), &long, never).0, 413);
    // 415 without JSON.
    let form = Head {
        content_type: Some(b"application/x-www-form-urlencoded"),
        ..authed(post("/call"))
    };
    assert_eq!(run(&svc, &form, "x=1", never).0, 415);
    // 404 and 405.
    assert_eq!(run(&svc, &get("/nope"), "", never).0, 404);
    let (status, body) = run(&svc, &get("/call"), "", never);
    assert_eq!(
        (status, body["error"]["type"].as_str()),
        (405, Some("method_not_allowed"))
    );
    assert_eq!(
        run(&svc, &authed(post("/v1/models/other:predict")), "{}", never).0,
        404
    );
}

#[test]
fn get_routes() {
    let svc = service(ADD, Options::default());
    let get = |path| Head {
        method: "GET",
        path,
        ..Head::default()
    };
    let never = |_| -> Outcome { unreachable!() };
    let (status, doc) = run(&svc, &get("/openapi.json"), "", never);
    assert_eq!(status, 200);
    assert_eq!(doc["info"]["title"], "add");
    assert!(doc["paths"]["/v1/models/add:predict"].is_object());
    let (_, model) = run(&svc, &get("/v1/models/add"), "", never);
    assert_eq!(model, json!({"name": "add", "ready": true}));
    assert_eq!(run(&svc, &get("/readyz"), "", never).0, 200);
    svc.drain();
    assert_eq!(run(&svc, &get("/readyz"), "", never).0, 503);
    match svc.start(&get("/"), Instant::now()) {
        Start::Respond(r) => {
            assert_eq!(r.content_type, response::HTML);
            let html = String::from_utf8(r.body).unwrap();
            assert!(html.contains("add(x: float, y: float = 1.0) -&gt; float"));
        }
        Start::NeedBody(_) => panic!("GET / needs no body"),
    }
}

#[test]
fn concurrency_limit_answers_503_with_retry_after() {
    let svc = service(
        ADD,
        Options {
            max_concurrency: 1,
            ..Options::default()
        },
    );
    let now = Instant::now();
    let Start::NeedBody(route) = svc.start(&post("/call"), now) else {
        panic!()
    };
    let Step::Call(ticket, _) = svc.begin(route, br#"{"x": 1}"#, now) else {
        panic!()
    };
    let Step::Respond(r) = svc.begin(route, br#"{"x": 1}"#, now) else {
        panic!("a second call must be refused")
    };
    assert_eq!(r.status, 503);
    assert!(r.headers.contains(&("retry-after", "1".into())));
    drop(ticket);
    assert!(matches!(
        svc.begin(route, br#"{"x": 1}"#, now),
        Step::Call(..)
    ));
}

// ── over real sockets ───────────────────────────────────────────────────────────────────────

/// Answers every call with the sum of its numeric arguments, after `delay`, on its own thread.
struct Adder {
    delay: Duration,
    started: Arc<AtomicUsize>,
}

impl Invoke for Adder {
    fn invoke(&self, calls: Vec<Args>, reply: Box<dyn Reply>) {
        let delay = self.delay;
        self.started.fetch_add(1, Ordering::SeqCst);
        thread::spawn(move || {
            thread::sleep(delay);
            let results = calls
                .iter()
                .map(|args| {
                    let total: f64 = args
                        .positional
                        .iter()
                        .chain(args.keywords.iter().map(|(_, v)| v))
                        .map(|v| match v {
                            Json::Int(i) => *i as f64,
                            Json::Float(f) => *f,
                            _ => 0.0,
                        })
                        .sum();
                    total.to_string().into_bytes()
                })
                .collect();
            reply.send(Ok(results));
        });
    }
}

fn start(opts: Options, config: Config, delay: Duration) -> (http::ServerHandle, Arc<AtomicUsize>) {
    let started = Arc::new(AtomicUsize::new(0));
    let invoker = Arc::new(Adder {
        delay,
        started: started.clone(),
    });
    let listener = http::bind("127.0.0.1", 0, false).unwrap();
    let handle = http::spawn(listener, service(ADD, opts), invoker, config).unwrap();
    (handle, started)
}

/// One request on a fresh connection; `(status, headers, body)`.
fn request(addr: std::net::SocketAddr, raw: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(raw.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_owned())
}

fn post_json(addr: std::net::SocketAddr, path: &str, body: &str) -> (u16, String, String) {
    request(
        addr,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

#[test]
fn serves_calls_over_http() {
    let (server, _) = start(Options::default(), Config::default(), Duration::ZERO);
    let addr = server.local_addr();
    let (status, _, body) = post_json(addr, "/call", r#"{"x": 1.5, "y": 2}"#);
    assert_eq!((status, body.as_str()), (200, r#"{"result":3.5}"#));
    let (status, _, body) = post_json(
        addr,
        "/v1/models/add:predict",
        r#"{"instances": [[1], [2, 2]]}"#,
    );
    assert_eq!((status, body.as_str()), (200, r#"{"predictions":[1,4]}"#));
    let (status, _, _) = request(
        addr,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200);
    let (status, _, body) = request(
        addr,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200);
    assert!(body.contains("takeout_requests_total{route=\"/call\",status=\"200\"} 1"));
    server.shutdown();
    assert!(server.wait(Some(Duration::from_secs(5))));
}

#[test]
fn slow_calls_time_out_with_504() {
    let opts = Options {
        timeout: Duration::from_millis(100),
        ..Options::default()
    };
    let (server, _) = start(opts, Config::default(), Duration::from_millis(400));
    let (status, _, body) = post_json(server.local_addr(), "/call", r#"{"x": 1}"#);
    assert_eq!(status, 504, "{body}");
    assert!(body.contains("\"timeout\""));
    server.shutdown();
    assert!(server.wait(Some(Duration::from_secs(5))));
}

#[test]
fn a_body_that_never_ends_is_cut_off() {
    let config = Config {
        body_timeout: Duration::from_millis(200),
        ..Config::default()
    };
    let (server, started) = start(Options::default(), config, Duration::ZERO);
    let t0 = Instant::now();
    let (status, head, _) = request(
        server.local_addr(),
        "POST /call HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"x\":",
    );
    assert_eq!(status, 408);
    assert!(head.contains("connection: close"));
    assert!(t0.elapsed() < Duration::from_secs(3));
    assert_eq!(started.load(Ordering::SeqCst), 0);
    server.shutdown();
    assert!(server.wait(Some(Duration::from_secs(5))));
}

#[test]
fn shutdown_lets_in_flight_calls_finish() {
    let (server, started) = start(
        Options::default(),
        Config::default(),
        Duration::from_millis(300),
    );
    let addr = server.local_addr();
    let clients: Vec<_> = (0..8)
        .map(|i| thread::spawn(move || post_json(addr, "/call", &format!("[{i}]"))))
        .collect();
    while started.load(Ordering::SeqCst) < 8 {
        thread::sleep(Duration::from_millis(5));
    }
    server.shutdown();
    for (i, c) in clients.into_iter().enumerate() {
        let (status, _, body) = c.join().unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body, format!("{{\"result\":{}}}", i as f64));
    }
    assert!(server.wait(Some(Duration::from_secs(5))));
    // Nothing listens any more.
    assert!(TcpStream::connect(addr).is_err());
}

#[test]
fn reuse_port_lets_two_listeners_share_a_port() {
    let a = http::bind("127.0.0.1", 0, true).unwrap();
    let port = a.local_addr().unwrap().port();
    let b = http::bind("127.0.0.1", port, true);
    assert!(b.is_ok(), "{b:?}");
    assert!(http::bind("127.0.0.1", port, false).is_err());
}

#[test]
fn open_inference_protocol_routes() {
    let svc = service(
        ADD,
        Options {
            token: Some("s3cret".into()),
            ..Options::default()
        },
    );
    let get = |path| Head {
        method: "GET",
        path,
        ..Head::default()
    };
    let never = |_: Vec<Args>| -> Outcome { panic!("no call expected") };
    assert_eq!(
        run(&svc, &get("/v1/models"), "", never),
        (200, json!({"models": ["add"]}))
    );
    assert_eq!(
        run(&svc, &get("/v2/health/live"), "", never).1,
        json!({"live": true})
    );
    assert_eq!(
        run(&svc, &get("/v2/health/ready"), "", never).1,
        json!({"ready": true})
    );
    assert_eq!(run(&svc, &get("/v2"), "", never).1["name"], "takeout");
    let meta = run(&svc, &get("/v2/models/add/versions/1"), "", never).1;
    assert_eq!(
        meta["inputs"],
        json!([{"name": "x", "datatype": "FP64", "shape": [1]},
               {"name": "y", "datatype": "FP64", "shape": [1]}])
    );
    // Errors on the v2 routes are the protocol's `{"error": "..."}`.
    let (status, body) = run(&svc, &get("/v2/models/other"), "", never);
    assert_eq!(status, 404);
    assert!(
        body["error"].as_str().unwrap().contains("/v2/models/other"),
        "{body}"
    );
    let infer = Head {
        method: "POST",
        path: "/v2/models/add/infer",
        authorization: Some(b"Bearer s3cret"),
        ..Head::default()
    };
    let (status, body) = run(
        &svc,
        &Head {
            authorization: None,
            ..infer
        },
        "{}",
        never,
    );
    assert_eq!((status, body["error"].is_string()), (401, true), "{body}");
    let request = r#"{"id": "7", "inputs": [
        {"name": "x", "shape": [1], "datatype": "FP64", "data": [1.5]},
        {"name": "y", "shape": [1], "datatype": "INT32", "data": [2]}]}"#;
    let (status, body) = run(&svc, &infer, request, |calls| {
        let args = &calls[0];
        assert_eq!(
            args.keywords,
            vec![("x".to_string(), num(1.5)), ("y".to_string(), Json::Int(2))]
        );
        Ok(vec![b"3.5".to_vec()])
    });
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"model_name": "add", "model_version": "1", "id": "7", "outputs": [
            {"name": "output-0", "datatype": "FP64", "shape": [1], "data": [3.5]}]})
    );
    // The schema still applies: a string for `x` is a 400 naming the input.
    let bad = r#"{"inputs": [{"name": "x", "shape": [1], "datatype": "BYTES", "data": ["a"]}]}"#;
    let (status, body) = run(&svc, &infer, bad, never);
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().starts_with("input `x`: "),
        "{body}"
    );
    let (status, body) = run(&svc, &infer, request, |_| {
        Err(CallError::Raised {
            kind: "ValueError".into(),
            message: "no".into(),
            traceback: None,
        })
    });
    assert_eq!((status, body), (500, json!({"error": "no"})));
    let text = String::from_utf8(svc.metrics().render().into_bytes()).unwrap();
    assert!(
        text.contains("route=\"/v2/models/add/infer\",status=\"200\"} 1"),
        "{text}"
    );
    svc.drain();
    assert_eq!(
        run(&svc, &get("/v2/models/add/ready"), "", never),
        (503, json!({"name": "add", "ready": false}))
    );
}

/// Threads whose calls started `ages` ago (`None`: between calls).
struct Threads(std::sync::Mutex<Vec<Option<Duration>>>);

impl CallThreads for Threads {
    fn threads(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    fn running_longer_than(&self, age: Duration) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.is_some_and(|a| a > age))
            .count()
    }
}

#[test]
fn stuck_threads_fail_readiness_then_liveness() {
    let threads = Arc::new(Threads(std::sync::Mutex::new(vec![
        Some(Duration::from_secs(2)),
        None,
    ])));
    let opts = Options {
        timeout: Duration::from_secs(1),
        stuck_restart: Some(Duration::from_secs(5)),
        ..Options::default()
    };
    let log = Logger {
        quiet: true,
        ..Logger::default()
    };
    let svc = Service::new(ADD, opts, log)
        .unwrap()
        .with_call_threads(threads.clone());
    let get = |path| Head {
        method: "GET",
        path,
        ..Head::default()
    };
    let never = |_| -> Outcome { unreachable!() };
    let metric = |svc: &Service| svc.metrics().render();
    // One of two stuck: still ready, and counted.
    assert_eq!(run(&svc, &get("/readyz"), "", never).0, 200);
    assert!(metric(&svc).contains("takeout_calls_stuck 1\n"));
    // Both stuck: not ready, still live.
    threads.0.lock().unwrap()[1] = Some(Duration::from_millis(1500));
    let (status, body) = run(&svc, &get("/readyz"), "", never);
    assert_eq!(status, 503);
    assert_eq!(body["error"]["type"], "calls_stuck");
    assert_eq!(run(&svc, &get("/v2/health/ready"), "", never).0, 503);
    assert_eq!(run(&svc, &get("/healthz"), "", never).0, 200);
    assert!(svc.metrics().wedged_workers().is_empty());
    // Both stuck past the bound: not live either, and flagged for the supervisor.
    threads.0.lock().unwrap()[1] = Some(Duration::from_secs(7));
    threads.0.lock().unwrap()[0] = Some(Duration::from_secs(9));
    assert_eq!(run(&svc, &get("/healthz"), "", never).0, 503);
    assert_eq!(run(&svc, &get("/v2/health/live"), "", never).0, 503);
    assert_eq!(svc.metrics().wedged_workers().len(), 1);
    // One returns: ready and live again.
    threads.0.lock().unwrap()[0] = None;
    assert_eq!(run(&svc, &get("/readyz"), "", never).0, 200);
    assert_eq!(run(&svc, &get("/healthz"), "", never).0, 200);
    assert!(metric(&svc).contains("takeout_calls_stuck 1\n"));
}
