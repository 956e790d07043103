//! `GET /`: one self-contained page (no CDN, no external files) that shows the signature and
//! lets a person try a call. Built once at start; the function's texts are HTML-escaped.

use serde_json::json;
use sha2::{Digest, Sha256};

use super::openapi::first_example;
use super::params::Params;

const TEMPLATE: &str = include_str!("page.html");

pub(crate) struct Page {
    pub(crate) body: Vec<u8>,
    /// Only this page's own inline script and style run, and it talks only to this server:
    /// text the function's manifest puts in the page can never become code. Images only as
    /// `data:` URLs: how the page shows a rich result (a figure) that `/call` returned.
    pub(crate) csp: String,
}

pub(crate) fn render(sig: &Params, predict_path: &str, token: bool) -> Page {
    let body = render_body(sig, predict_path, token);
    let csp = format!(
        "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; img-src data:; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        element_hash(TEMPLATE, "<script>", "</script>"),
        element_hash(TEMPLATE, "<style>", "</style>"),
    );
    Page { body, csp }
}

/// The CSP source `'sha256-...'` of the text between `open` and `close` in the template (its
/// inline script and style hold no placeholder, so their hash is the template's).
fn element_hash(template: &str, open: &str, close: &str) -> String {
    let start = template.find(open).map_or(0, |i| i + open.len());
    let end = template[start..].find(close).map_or(start, |i| start + i);
    let digest = Sha256::digest(&template.as_bytes()[start..end]);
    format!("'sha256-{}'", base64(&digest))
}

/// Standard base64 with padding; hand-written because a 32-byte digest is all it encodes and
/// no crate of the dependency tree offers it.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn render_body(sig: &Params, predict_path: &str, token: bool) -> Vec<u8> {
    let example = serde_json::to_string_pretty(&first_example(sig)).unwrap_or_default();
    let data = json!({"name": sig.name, "token": token, "predict": predict_path});
    // Inside <script>, only `<` can end the element early; JSON allows it escaped.
    let data = data.to_string().replace('<', "\\u003c");
    let signature = format!("{}{}", sig.qualname, sig.text);
    TEMPLATE
        .replace("{{TITLE}}", &escape(&sig.name))
        .replace("{{PREDICT}}", &escape(predict_path))
        .replace("{{SIGNATURE}}", &escape(&signature))
        .replace("{{DOC}}", &escape(sig.doc.as_deref().unwrap_or("")))
        .replace("{{EXAMPLE}}", &escape(&example))
        .replace("{{DATA}}", &data)
        .into_bytes()
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Braces cannot reach a later placeholder this way.
            '{' => out.push_str("&#123;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_the_function_says() {
        let sig = Params::from_manifest(
            r#"{"name": "f", "function": {"qualname": "f", "signature": "(x: list[int]) -> dict[str, int]",
                "doc": "<script>alert(1)</script> {{DATA}}"}}"#,
        )
        .unwrap();
        let html = String::from_utf8(render(&sig, "/v1/models/f:predict", false).body).unwrap();
        assert!(html.contains("f(x: list[int]) -&gt; dict[str, int]"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &#123;&#123;DATA}}"));
        assert!(!html.contains("<script>alert"));
        assert!(
            !html.contains("cdn"),
            "the page must not load anything from elsewhere"
        );
        assert!(!html.contains("src=\"http"));
    }

    #[test]
    fn base64_and_the_policy() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        // The placeholder-free script and style: the policy's hashes cover what the page sends.
        let sig = Params::from_manifest(r#"{"name": "f", "function": {"qualname": "f"}}"#).unwrap();
        let page = render(&sig, "/p", false);
        let html = String::from_utf8(page.body).unwrap();
        assert_eq!(
            element_hash(&html, "<script>", "</script>"),
            element_hash(TEMPLATE, "<script>", "</script>")
        );
        assert!(page.csp.contains("default-src 'none'"));
        assert!(page.csp.contains("; img-src data:;"));
        assert!(!page.csp.contains("unsafe-inline"));
    }
}
