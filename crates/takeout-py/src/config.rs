//! `takeout.serving.ServeConfig` as Rust structs: the one place where the Python configuration
//! becomes the core's `Options`, `Logger` and `http::Config`. The dataclass has already checked
//! every value; what is checked here is only what would otherwise panic in Rust.
//!
//! A new option is one field of the dataclass and, when Rust needs it, one field here (read by
//! name with `getattr`).

use std::time::Duration;

use pyo3::prelude::*;

use takeout_core::server::host::Hosts;
use takeout_core::server::http;
use takeout_core::server::{LogFormat, Logger, Options};

use crate::errors::serve_error;

#[derive(FromPyObject)]
pub(crate) struct ServeConfig {
    pub(crate) host: String,
    pub(crate) port: u16,
    workers: usize,
    token: Option<String>,
    max_body: usize,
    timeout: f64,
    max_concurrency: usize,
    pub(crate) threads: usize,
    io_threads: usize,
    grace: f64,
    body_timeout: f64,
    log_format: String,
    access_log: bool,
    pub(crate) debug: bool,
    allow_host: String,
    max_connections: usize,
    /// `None`: 128 MiB, or `max_body` if larger.
    body_budget: Option<usize>,
    stuck_restart: f64,
}

impl ServeConfig {
    /// The request core's limits and switches.
    pub(crate) fn options(&self) -> PyResult<Options> {
        Ok(Options {
            token: self.token.clone().filter(|t| !t.is_empty()),
            max_body: self.max_body,
            timeout: seconds("timeout", self.timeout)?,
            max_concurrency: self.max_concurrency.max(1),
            debug: self.debug,
            workers: self.workers.max(1),
            // 0: never.
            stuck_restart: Some(seconds("stuck_restart", self.stuck_restart)?)
                .filter(|d| !d.is_zero()),
            ..Options::default()
        })
    }

    pub(crate) fn logger(&self) -> PyResult<Logger> {
        let format: LogFormat = self.log_format.parse().map_err(serve_error)?;
        Ok(Logger {
            format,
            access: self.access_log,
            quiet: false,
            ..Logger::default()
        })
    }

    /// The hyper transport's settings, for a listener bound to `bind`.
    pub(crate) fn http(&self, bind: std::net::IpAddr) -> PyResult<http::Config> {
        let extra: Vec<String> = self
            .allow_host
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
            .collect();
        Ok(http::Config {
            hosts: Hosts::for_bind(bind, &extra),
            io_threads: self.io_threads.max(1),
            body_timeout: seconds("body_timeout", self.body_timeout)?,
            grace: seconds("grace", self.grace)?,
            max_connections: self.max_connections.max(1),
            body_budget: self
                .body_budget
                .unwrap_or_else(|| http::Config::default().body_budget.max(self.max_body)),
            ..http::Config::default()
        })
    }
}

fn seconds(name: &str, value: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value).map_err(|_| {
        serve_error(format!(
            "`{name}` must be a number of seconds, not `{value}`"
        ))
    })
}
