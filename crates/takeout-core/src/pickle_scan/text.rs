//! Decoders for the protocol-0 text encodings of strings. They only ever run on the few
//! strings that name a module or a global, so they favour simplicity over speed; they
//! follow `CPython`'s codecs closely enough that names round-trip, and fail instead of
//! guessing on anything they cannot represent.

/// `latin-1`: what Python 3 uses for Python 2 `str` payloads (`BINSTRING`, `STRING`).
pub(crate) fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// `raw-unicode-escape`, the encoding of `UNICODE` lines: bytes are code points, except
/// that `\uXXXX` and `\UXXXXXXXX` are escapes when preceded by an odd run of backslashes.
pub(crate) fn raw_unicode_escape(bytes: &[u8]) -> Result<String, &'static str> {
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(char::from(bytes[i]));
            i += 1;
            continue;
        }
        let run_start = i;
        while i < bytes.len() && bytes[i] == b'\\' {
            i += 1;
        }
        let run = i - run_start;
        let digits = match bytes.get(i) {
            Some(b'u') if run % 2 == 1 => 4,
            Some(b'U') if run % 2 == 1 => 8,
            _ => {
                out.extend(std::iter::repeat_n('\\', run));
                continue;
            }
        };
        // The last backslash of the run introduces the escape; the others are literal.
        out.extend(std::iter::repeat_n('\\', run - 1));
        let hex = bytes
            .get(i + 1..i + 1 + digits)
            .ok_or("truncated \\uXXXX escape")?;
        let code = parse_hex(hex).ok_or("truncated \\uXXXX escape")?;
        out.push(char::from_u32(code).ok_or("escape is not a Unicode scalar value")?);
        i += 1 + digits;
    }
    Ok(out)
}

/// The body of a `STRING` line (quotes already stripped): `codecs.escape_decode`, then
/// latin-1, as `pickle` does for Python 2 strings.
pub(crate) fn python_string_escape(bytes: &[u8]) -> Result<String, &'static str> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        i += 1;
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let Some(&esc) = bytes.get(i) else {
            return Err("trailing backslash in string");
        };
        i += 1;
        match esc {
            b'\n' => {}
            b'\\' | b'\'' | b'"' => out.push(esc),
            b'a' => out.push(0x07),
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(0x0b),
            b'0'..=b'7' => {
                let mut value = u32::from(esc - b'0');
                for _ in 0..2 {
                    match bytes.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            value = value * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                // CPython keeps the low byte of an out-of-range octal escape.
                out.push((value & 0xff) as u8);
            }
            b'x' => {
                let hex = bytes.get(i..i + 2).ok_or("invalid \\x escape")?;
                let value = parse_hex(hex).ok_or("invalid \\x escape")?;
                out.push(value as u8);
                i += 2;
            }
            // Unknown escapes are kept verbatim, backslash included.
            _ => out.extend_from_slice(&[b'\\', esc]),
        }
    }
    Ok(latin1(&out))
}

fn parse_hex(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |acc, &d| {
        let v = char::from(d).to_digit(16)?;
        Some(acc * 16 + v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_unicode_escape_matches_cpython() {
        assert_eq!(raw_unicode_escape(b"numpy").unwrap(), "numpy");
        assert_eq!(raw_unicode_escape(b"caf\xe9").unwrap(), "café");
        assert_eq!(raw_unicode_escape(b"a\\u005cb").unwrap(), "a\\b");
        assert_eq!(raw_unicode_escape(b"\\U0001f600").unwrap(), "\u{1f600}");
        // An even run of backslashes does not start an escape.
        assert_eq!(raw_unicode_escape(b"\\\\u0041").unwrap(), "\\\\u0041");
        assert_eq!(raw_unicode_escape(b"\\\\\\u0041").unwrap(), "\\\\A");
        assert_eq!(raw_unicode_escape(b"end\\").unwrap(), "end\\");
        assert!(raw_unicode_escape(b"\\u00").is_err());
        assert!(raw_unicode_escape(b"\\ud800").is_err());
        assert!(raw_unicode_escape(b"\\U00110000").is_err());
    }

    #[test]
    fn python_string_escape_matches_cpython() {
        assert_eq!(python_string_escape(b"os.path").unwrap(), "os.path");
        assert_eq!(python_string_escape(b"it\\'s").unwrap(), "it's");
        assert_eq!(
            python_string_escape(b"\\x41\\101\\n\\q").unwrap(),
            "AA\n\\q"
        );
        assert_eq!(python_string_escape(b"\\777").unwrap(), "\u{ff}");
        assert_eq!(python_string_escape(b"\\xe9").unwrap(), "é");
        assert!(python_string_escape(b"\\x4").is_err());
        assert!(python_string_escape(b"\\").is_err());
    }
}
