//! Request JSON that keeps object keys in the order the client wrote them.
//!
//! `serde_json::Value` sorts keys (the workspace cannot turn on `preserve_order`: bundle signing
//! relies on sorted maps), and order reaches the function: `pd.DataFrame(records)` takes its
//! column order from the first record, and scikit-learn refuses columns in another order.
//! Nesting is bounded while parsing, so a deep body is refused before it costs a stack.

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
    let limit = max_depth.min(SERDE_LIMIT);
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = Seed { depth_left: limit }
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

impl Json {
    /// The same value as `serde_json::Value`, for the schema validator.
    pub fn to_value(&self) -> Value {
        match self {
            Self::Null => Value::Null,
            Self::Bool(b) => Value::Bool(*b),
            Self::Int(i) => Value::from(*i),
            Self::UInt(u) => Value::from(*u),
            Self::Float(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
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
            Self::Int(_) | Self::UInt(_) | Self::Float(_) => "a number",
            Self::Str(_) => "a string",
            Self::Array(_) => "an array",
            Self::Object(_) => "an object",
        }
    }
}

struct Seed {
    depth_left: usize,
}

impl Seed {
    fn nested<E: de::Error>(&self) -> Result<Self, E> {
        match self.depth_left.checked_sub(1) {
            Some(depth_left) => Ok(Self { depth_left }),
            None => Err(E::custom(TOO_DEEP)),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Seed {
    type Value = Json;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed {
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
        Ok(Json::Int(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(i64::try_from(v).map_or(Json::UInt(v), Json::Int))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Json, E> {
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
