//! `Accept` negotiation for `/call`. A rich result (a figure, an image, HTML) travels in JSON
//! as `{"media_type": "image/png", "data": "<base64>"}` (the type table's form, the same on
//! every path); when the request's `Accept` prefers that media type over JSON, `/call`
//! answers the bytes themselves, with that content type.
//!
//! The rules are RFC 9110's: each candidate takes the quality of the most specific range that
//! matches it (`image/png` over `image/*` over `*/*`), the best quality wins, and JSON wins a
//! tie, so `*/*` (what `fetch`, curl and httpx send) and no `Accept` at all keep the JSON
//! contract. A browser asking for an image (`image/*` at 1, `*/*` at 0.8) gets the image.

use base64::Engine as _;
use serde::Deserialize;

/// The media types a rich result may have (the type table's `MEDIA_REPRS`), with the
/// content type each is answered with.
pub(crate) const MEDIA: [(&str, &str); 5] = [
    ("image/png", "image/png"),
    ("image/jpeg", "image/jpeg"),
    ("image/svg+xml", "image/svg+xml"),
    ("text/html", "text/html; charset=utf-8"),
    ("text/markdown", "text/markdown; charset=utf-8"),
];

const JSON: &str = "application/json";

/// The quality (in thousandths) the request gives JSON (index 0) and each of [`MEDIA`]; small
/// and `Copy`, so it rides with the route from the head to the call's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accept {
    q: [u16; 1 + MEDIA.len()],
}

impl Default for Accept {
    /// No `Accept`: anything goes, and so JSON.
    fn default() -> Self {
        Self {
            q: [1000; 1 + MEDIA.len()],
        }
    }
}

impl Accept {
    pub fn parse(header: Option<&[u8]>) -> Self {
        let Some(text) = header.and_then(|h| std::str::from_utf8(h).ok()) else {
            return Self::default();
        };
        let ranges: Vec<(&str, &str, u16)> = text.split(',').filter_map(range).collect();
        if ranges.is_empty() {
            return Self::default();
        }
        let mut q = [0; 1 + MEDIA.len()];
        for (i, candidate) in std::iter::once(JSON)
            .chain(MEDIA.iter().map(|(m, _)| *m))
            .enumerate()
        {
            q[i] = quality(&ranges, candidate);
        }
        Self { q }
    }

    /// True when some media type beats JSON: only then is a result looked at.
    pub fn wants_media(&self) -> bool {
        self.q[1..].iter().any(|&q| q > self.q[0])
    }

    /// The content type to answer `media` with, when the request prefers it over JSON.
    pub fn choose(&self, media: &str) -> Option<&'static str> {
        let i = MEDIA
            .iter()
            .position(|(m, _)| m.eq_ignore_ascii_case(media))?;
        (self.q[i + 1] > self.q[0]).then_some(MEDIA[i].1)
    }
}

/// `type/subtype;q=0.8` as its lower-cased type, subtype and quality; None when malformed.
fn range(item: &str) -> Option<(&str, &str, u16)> {
    let mut parts = item.split(';');
    let (kind, sub) = parts.next()?.trim().split_once('/')?;
    let mut q = 1000;
    for param in parts {
        if let Some((name, value)) = param.split_once('=') {
            if name.trim().eq_ignore_ascii_case("q") {
                let value: f32 = value.trim().parse().ok()?;
                // A quality is 0 to 1 with three decimals at most, so thousandths are exact.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let thousandths = (value.clamp(0.0, 1.0) * 1000.0).round() as u16;
                q = thousandths;
            }
        }
    }
    Some((kind.trim(), sub.trim(), q))
}

fn quality(ranges: &[(&str, &str, u16)], candidate: &str) -> u16 {
    let (kind, sub) = candidate.split_once('/').unwrap_or((candidate, ""));
    let mut best: Option<(u8, u16)> = None;
    for &(k, s, q) in ranges {
        let specificity = if k.eq_ignore_ascii_case(kind) && s.eq_ignore_ascii_case(sub) {
            2
        } else if k.eq_ignore_ascii_case(kind) && s == "*" {
            1
        } else if k == "*" && s == "*" {
            0
        } else {
            continue;
        };
        if best.is_none_or(|(spec, _)| specificity > spec) {
            best = Some((specificity, q));
        }
    }
    best.map_or(0, |(_, q)| q)
}

/// A result in the table's rich form, as the encoder writes it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rich {
    media_type: String,
    data: String,
}

/// Whether a result may be a rich value (whose answer then depends on `Accept`). The encoder
/// writes keys in order and without spaces, so most results are ruled out without parsing.
pub(crate) fn maybe_rich(result: &[u8]) -> bool {
    result.starts_with(br#"{"media_type":""#)
}

/// The media type and bytes of a result that is a rich value; None for any other result.
pub(crate) fn rich(result: &[u8]) -> Option<(String, Vec<u8>)> {
    if !maybe_rich(result) {
        return None;
    }
    let rich: Rich = serde_json::from_slice(result).ok()?;
    let data = base64::engine::general_purpose::STANDARD
        .decode(rich.data)
        .ok()?;
    Some((rich.media_type, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAVIGATION: &[u8] =
        b"text/html,application/xhtml+xml,application/xml;q=0.9,image/*,*/*;q=0.8";
    const IMG: &[u8] = b"image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8";

    #[test]
    fn json_wins_ties_and_defaults() {
        for header in [
            None,
            Some(&b"*/*"[..]),
            Some(b"application/json"),
            Some(b""),
        ] {
            let accept = Accept::parse(header);
            assert!(!accept.wants_media(), "{header:?}");
            assert_eq!(accept.choose("image/png"), None);
        }
        // A browser navigation without `image/*` ranks PNG and JSON alike, at `*/*`.
        let firefox = Accept::parse(Some(
            b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ));
        assert_eq!(firefox.choose("image/png"), None);
        assert_eq!(
            firefox.choose("text/html"),
            Some("text/html; charset=utf-8")
        );
    }

    #[test]
    fn browsers_asking_for_images_get_them() {
        for header in [
            NAVIGATION,
            IMG,
            b"image/png",
            b"application/json;q=0.5, image/png",
        ] {
            let accept = Accept::parse(Some(header));
            assert!(accept.wants_media());
            assert_eq!(accept.choose("image/png"), Some("image/png"));
        }
        assert_eq!(Accept::parse(Some(IMG)).choose("text/html"), None);
    }

    #[test]
    fn the_most_specific_range_decides() {
        let accept = Accept::parse(Some(b"image/*;q=0.9, image/png;q=0.1, */*;q=0.5"));
        assert_eq!(accept.choose("image/png"), None);
        assert_eq!(accept.choose("image/jpeg"), Some("image/jpeg"));
        assert_eq!(
            Accept::parse(Some(b"image/png;q=0")).choose("image/png"),
            None
        );
        assert_eq!(
            Accept::parse(Some(b"IMAGE/PNG")).choose("image/png"),
            Some("image/png")
        );
        // Unknown media types never leave JSON.
        assert_eq!(Accept::parse(Some(b"image/gif")).choose("image/gif"), None);
    }

    #[test]
    fn reads_back_the_rich_form() {
        let (media, data) = rich(br#"{"media_type":"image/png","data":"iVBORw=="}"#).unwrap();
        assert_eq!(media, "image/png");
        assert_eq!(data, b"\x89PNG");
        assert!(rich(br#"{"media_type":"image/png","data":"!"}"#).is_none());
        assert!(rich(br#"{"media_type":"image/png","data":"","x":1}"#).is_none());
        assert!(rich(br#"{"data":"","media_type":"image/png"}"#).is_none());
        assert!(rich(b"[1]").is_none());
    }
}
