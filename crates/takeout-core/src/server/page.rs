//! `GET /`: one self-contained page (no CDN, no external files) that shows the signature and
//! lets a person try a call. Built once at start; the function's texts are HTML-escaped.

use serde_json::json;

use super::openapi::first_example;
use super::params::Params;

const TEMPLATE: &str = include_str!("page.html");

pub(crate) fn render(sig: &Params, predict_path: &str, token: bool) -> Vec<u8> {
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
        let html = String::from_utf8(render(&sig, "/v1/models/f:predict", false)).unwrap();
        assert!(html.contains("f(x: list[int]) -&gt; dict[str, int]"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &#123;&#123;DATA}}"));
        assert!(!html.contains("<script>alert"));
        assert!(
            !html.contains("cdn"),
            "the page must not load anything from elsewhere"
        );
        assert!(!html.contains("src=\"http"));
    }
}
