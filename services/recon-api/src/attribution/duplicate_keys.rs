//! Refusing JSON whose objects name a key twice. `serde_json` keeps the last value of
//! a repeated key without a word, so `{"amount": "1.00", "amount": "1000.00"}` would be
//! read as 1,000.00 when the caller may have meant either: a receipt says how much was
//! paid, and a guess is worse than a refusal (RFC 8259 leaves such objects' meaning to
//! the reader).
//!
//! A pass over the body that checks keys and keeps nothing; the body is read into a
//! `Value` separately. With `serde_json`'s `arbitrary_precision` a number arrives as a
//! one-key map, which this pass takes like any other object.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// `Ok` unless some object in `body` names a key twice (or `body` is not JSON); the
/// error names the key and where.
pub fn check(body: &[u8]) -> Result<(), serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    NoDuplicateKeys.deserialize(&mut deserializer)?;
    deserializer.end()
}

struct NoDuplicateKeys;

impl<'de> DeserializeSeed<'de> for NoDuplicateKeys {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NoDuplicateKeys {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<(), A::Error> {
        while items.next_element_seed(NoDuplicateKeys)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut fields: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = fields.next_key::<String>()? {
            if seen.contains(&key) {
                let shown: String = key.chars().take(64).collect();
                return Err(de::Error::custom(format!(
                    "an object names `{shown}` twice; send each field once"
                )));
            }
            fields.next_value_seed(NoDuplicateKeys)?;
            seen.insert(key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_named_twice_in_any_object_is_named_in_the_error() {
        let top = check(br#"{"receipts": [], "receipts": []}"#).unwrap_err();
        assert!(top.to_string().contains("`receipts` twice"), "{top}");
        let nested = check(
            br#"{"receipts": [{"amount": "1.00", "x": [1, {"a": 1}], "amount": "1000.00"}]}"#,
        )
        .unwrap_err();
        assert!(nested.to_string().contains("`amount` twice"), "{nested}");
    }

    #[test]
    fn the_same_key_in_different_objects_and_every_kind_of_value_pass() {
        let body =
            br#"{"receipts": [{"amount": "1.00", "n": 1.5, "big": 123456789012345678901234567890,
            "neg": -3, "t": true, "z": null, "s": "x"}, {"amount": "2.00"}]}"#;
        assert!(check(body).is_ok());
        assert!(check(b"[1, 2, 3]").is_ok());
        assert!(check(b"{\"a\": 1} trailing").is_err());
    }
}
