//! Request JSON that keeps object keys in the order the client wrote them.
//!
//! `serde_json::Value` sorts keys (the workspace cannot turn on `preserve_order`: bundle signing
//! relies on sorted maps), and order reaches the function: `pd.DataFrame(records)` takes its
//! column order from the first record, and scikit-learn refuses columns in another order.
//! Nesting is bounded while parsing, so a deep body is refused before it costs a stack.
//!
//! Integers outside i64/u64 (`2**64`, 100 digits, `-2**63 - 1`) stay exact, as Python's
//! `json` keeps them: `serde_json` hands them over as an f64, so a body where one arrives is
//! parsed a second time with the text of each such literal (see [`big_integer_literals`]).
//! `serde_json`'s `arbitrary_precision` feature would keep the text, but it is workspace-wide:
//! it changes the numbers of every `Value` (the signed bytes of a bundle manifest among
//! them) and hands numbers to visitors such as ours as a private map; and on the request
//! path it allocates a string per number.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};

#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    /// An integer literal outside i64 and u64, as its decimal text.
    BigInt(String),
    Str(String),
    Array(Vec<Self>),
    /// Duplicate keys are kept; whoever reads them lets the last one win, as Python's `json` does.
    Object(Vec<(String, Self)>),
}

#[derive(Debug)]
pub enum ParseError {
    Syntax(serde_json::Error),
    TooDeep(usize),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Syntax(err) => write!(f, "the body is not valid JSON: {err}"),
            Self::TooDeep(limit) => {
                write!(
                    f,
                    "the body nests arrays and objects deeper than {limit} levels"
                )
            }
        }
    }
}

// serde_json refuses more than 128 levels on its own; past that its message is the only signal.
const SERDE_LIMIT: usize = 127;
const TOO_DEEP: &str = "takeout: nesting limit";

/// Parse a whole body: one JSON value, then only whitespace.
pub fn parse(body: &[u8], max_depth: usize) -> Result<Json, ParseError> {
    let numbers = Numbers::default();
    let value = parse_with(body, max_depth, &numbers)?;
    if !numbers.maybe_big.get() {
        return Ok(value);
    }
    // Rare: an integral f64 past i64/u64, maybe an integer literal serde_json rounded.
    let numbers = Numbers {
        big: big_integer_literals(body),
        ..Numbers::default()
    };
    parse_with(body, max_depth, &numbers)
}

fn parse_with(body: &[u8], max_depth: usize, numbers: &Numbers) -> Result<Json, ParseError> {
    let limit = max_depth.min(SERDE_LIMIT);
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = Seed {
        depth_left: limit,
        numbers,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v));
    value.map_err(|err| {
        let text = err.to_string();
        if text.starts_with(TOO_DEEP) || text.starts_with("recursion limit exceeded") {
            ParseError::TooDeep(limit)
        } else {
            ParseError::Syntax(err)
        }
    })
}

/// Numbers seen so far while parsing, in document order.
#[derive(Default)]
struct Numbers {
    seen: Cell<usize>,
    /// An integral f64 at least 2^63 in size went by.
    maybe_big: Cell<bool>,
    /// `(index among the body's numbers, text)` of each integer literal too long for u64.
    big: Vec<(usize, String)>,
}

impl Numbers {
    fn next(&self) -> usize {
        let index = self.seen.get();
        self.seen.set(index + 1);
        index
    }
}

/// Every number literal of a valid JSON text, counted in document order (`serde_json` visits
/// them in that order), and the text of those that are integers of more than 18 digits.
/// Hand-written: a few lines over bytes that already parsed, in the rare body that needs it.
fn big_integer_literals(body: &[u8]) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let (mut index, mut at, mut in_string) = (0, 0, false);
    while at < body.len() {
        let byte = body[at];
        if in_string {
            match byte {
                b'\\' => at += 1,
                b'"' => in_string = false,
                _ => {}
            }
        } else if byte == b'"' {
            in_string = true;
        } else if byte == b'-' || byte.is_ascii_digit() {
            let start = at;
            while at < body.len()
                && matches!(body[at], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
            {
                at += 1;
            }
            let token = &body[start..at];
            let integral = !token.iter().any(|b| matches!(b, b'.' | b'e' | b'E'));
            if integral && token.iter().filter(|b| b.is_ascii_digit()).count() > 18 {
                found.push((index, String::from_utf8_lossy(token).into_owned()));
            }
            index += 1;
            continue;
        }
        at += 1;
    }
    found
}

impl Json {
    /// The same value as `serde_json::Value`, for the schema validator.
    pub fn to_value(&self) -> Value {
        match self {
            Self::Null => Value::Null,
            Self::Bool(b) => Value::Bool(*b),
            Self::Int(i) => Value::from(*i),
            Self::UInt(u) => Value::from(*u),
            Self::Float(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
            // The validator sees the nearest f64: an integer still, of about the same size.
            Self::BigInt(text) => text
                .parse::<f64>()
                .ok()
                .and_then(Number::from_f64)
                .map_or(Value::Null, Value::Number),
            Self::Str(s) => Value::String(s.clone()),
            Self::Array(items) => Value::Array(items.iter().map(Self::to_value).collect()),
            Self::Object(members) => Value::Object(
                members
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_value()))
                    .collect(),
            ),
        }
    }

    /// From a `serde_json::Value` (manifest defaults and examples), keys in its order.
    pub fn from_value(value: &Value) -> Self {
        match value {
            Value::Null => Self::Null,
            Value::Bool(b) => Self::Bool(*b),
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Self::Int(i)
                } else if let Some(u) = n.as_u64() {
                    Self::UInt(u)
                } else {
                    Self::Float(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => Self::Str(s.clone()),
            Value::Array(items) => Self::Array(items.iter().map(Self::from_value).collect()),
            Value::Object(map) => Self::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), Self::from_value(v)))
                    .collect(),
            ),
        }
    }

    /// What the value is, in the words of a 422 message.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Bool(_) => "a boolean",
            Self::Int(_) | Self::UInt(_) | Self::Float(_) | Self::BigInt(_) => "a number",
            Self::Str(_) => "a string",
            Self::Array(_) => "an array",
            Self::Object(_) => "an object",
        }
    }
}

struct Seed<'n> {
    depth_left: usize,
    numbers: &'n Numbers,
}

impl Seed<'_> {
    fn nested<E: de::Error>(&self) -> Result<Self, E> {
        match self.depth_left.checked_sub(1) {
            Some(depth_left) => Ok(Self {
                depth_left,
                numbers: self.numbers,
            }),
            None => Err(E::custom(TOO_DEEP)),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Json;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        self.numbers.next();
        Ok(Json::Int(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        self.numbers.next();
        Ok(i64::try_from(v).map_or(Json::UInt(v), Json::Int))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Json, E> {
        let index = self.numbers.next();
        let big = &self.numbers.big;
        if let Ok(at) = big.binary_search_by_key(&index, |(i, _)| *i) {
            return Ok(Json::BigInt(big[at].1.clone()));
        }
        // 2^63: below it every integer literal arrived as an i64 or u64.
        if v.fract() == 0.0 && v.abs() >= 9_223_372_036_854_775_808.0 {
            self.numbers.maybe_big.set(true);
        }
        Ok(Json::Float(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::Str(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Json, E> {
        Ok(Json::Str(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element_seed(self.nested()?)? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut members = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(self.nested()?)?;
            members.push((key, value));
        }
        Ok(Json::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_key_order_and_number_kinds() {
        let v = parse(br#"{"b": 1, "a": [2.5, -3, 18446744073709551615]}"#, 64).unwrap();
        assert_eq!(
            v,
            Json::Object(vec![
                ("b".into(), Json::Int(1)),
                (
                    "a".into(),
                    Json::Array(vec![Json::Float(2.5), Json::Int(-3), Json::UInt(u64::MAX)])
                ),
            ])
        );
    }

    #[test]
    fn integers_past_64_bits_stay_exact() {
        let hundred = "9".repeat(100);
        let body = format!(
            r#"{{"a": [18446744073709551616, -9223372036854775809, 1e30, 2.5, "1{hundred}"],
                "b": {hundred}, "c": 18446744073709551615, "d": 1.8446744073709552e19}}"#
        );
        let v = parse(body.as_bytes(), 64).unwrap();
        assert_eq!(
            v,
            Json::Object(vec![
                (
                    "a".into(),
                    Json::Array(vec![
                        Json::BigInt("18446744073709551616".into()),
                        Json::BigInt("-9223372036854775809".into()),
                        Json::Float(1e30),
                        Json::Float(2.5),
                        Json::Str(format!("1{hundred}")),
                    ])
                ),
                ("b".into(), Json::BigInt(hundred.clone())),
                ("c".into(), Json::UInt(u64::MAX)),
                ("d".into(), Json::Float(18_446_744_073_709_551_616.0)),
            ])
        );
        // What the schema validator sees is an integer of about that size.
        let value = Json::BigInt("18446744073709551616".into()).to_value();
        assert_eq!(value.as_f64(), Some(18_446_744_073_709_551_616.0));
    }

    #[test]
    fn refuses_depth_past_the_limit() {
        let ok = "[".repeat(4) + &"]".repeat(4);
        assert!(parse(ok.as_bytes(), 4).is_ok());
        let deep = "[".repeat(5) + &"]".repeat(5);
        assert!(matches!(
            parse(deep.as_bytes(), 4),
            Err(ParseError::TooDeep(4))
        ));
        let very = "[".repeat(100_000);
        assert!(matches!(
            parse(very.as_bytes(), 1000),
            Err(ParseError::TooDeep(_))
        ));
    }

    #[test]
    fn syntax_errors_say_where() {
        let err = parse(b"{\"a\": }", 64).unwrap_err();
        assert!(err.to_string().contains("line 1 column 7"), "{err}");
        assert!(matches!(parse(b"1 2", 64), Err(ParseError::Syntax(_))));
        assert!(matches!(parse(b"", 64), Err(ParseError::Syntax(_))));
    }
}
