//! Which `Host` values a server answers. A server bound to loopback with no token is open to
//! any web page the user visits through DNS rebinding (the page's own name resolves to
//! 127.0.0.1, and the browser sends that name as `Host`), so on a loopback bind only loopback
//! names are answered, plus those the user adds with `--allow-host`.

use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hosts {
    /// Lowercase, without a port or a trailing dot; IPv6 addresses in brackets.
    extra: Vec<String>,
}

impl Hosts {
    /// The allow-list for a server bound to `bind`: `None` (any `Host`) unless it is loopback.
    pub fn for_bind(bind: IpAddr, extra: &[String]) -> Option<Self> {
        bind.is_loopback().then(|| Self {
            extra: extra
                .iter()
                .map(|h| normalise(h.as_bytes()))
                .filter(|h| !h.is_empty())
                .collect(),
        })
    }

    /// True if `host` (a `Host` header value, with or without a port) may be answered.
    /// A request without `Host` is HTTP/1.0 from a tool, never from a browser: answered.
    pub fn allows(&self, host: Option<&[u8]>) -> bool {
        let Some(host) = host else {
            return true;
        };
        let name = normalise(host);
        is_loopback_name(&name) || self.extra.contains(&name)
    }
}

fn normalise(host: &[u8]) -> String {
    let text = String::from_utf8_lossy(host).trim().to_ascii_lowercase();
    let name = if text.starts_with('[') {
        // `[::1]:8000` keeps its brackets and drops the port.
        match text.find(']') {
            Some(end) => text[..=end].to_owned(),
            None => text,
        }
    } else {
        match text.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name.to_owned(),
            _ => text,
        }
    };
    name.trim_end_matches('.').to_owned()
}

fn is_loopback_name(name: &str) -> bool {
    if name == "localhost" || name.ends_with(".localhost") {
        // RFC 6761: resolvers must answer loopback for these, so no page can rebind them.
        return true;
    }
    let bare = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_binds_answer_loopback_names_and_the_added_ones() {
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        let hosts = Hosts::for_bind(loopback, &["Api.Example:9000".into()]).unwrap();
        for ok in [
            "127.0.0.1:8000",
            "127.1.2.3",
            "localhost",
            "LOCALHOST.:8000",
            "app.localhost:1",
            "[::1]:8000",
            "[::1]",
            "api.example",
            "api.example.:8000",
        ] {
            assert!(hosts.allows(Some(ok.as_bytes())), "{ok}");
        }
        assert!(hosts.allows(None));
        for refused in [
            "evil.example",
            "evil.example:8000",
            "127.0.0.1.evil.example",
            "localhost.evil.example",
            "[::2]:8000",
            "10.0.0.1",
            "",
        ] {
            assert!(!hosts.allows(Some(refused.as_bytes())), "{refused}");
        }
        assert_eq!(Hosts::for_bind("0.0.0.0".parse().unwrap(), &[]), None);
        assert!(Hosts::for_bind("::1".parse().unwrap(), &[]).is_some());
    }
}
