//! Helcim's error bodies, in every shape they come in:
//! `{"errors":"text"}`, `{"errors":{"field":"text"}}`, `{"errors":["text", ...]}` and
//! `{"status":"error","errors":[{"code","message","source","data"}]}`.

use std::fmt;

use serde_json::Value;

/// One error message from a Helcim body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiErrorItem {
    /// The field the message is about, when Helcim names one.
    pub field: Option<String>,
    /// Helcim's error code (Recurring API shape only).
    pub code: Option<String>,
    pub message: String,
}

/// Every message in one error body, in the order Helcim wrote them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ApiErrors(pub Vec<ApiErrorItem>);

impl ApiErrors {
    /// Reads an error body. Returns `None` when the body has no `errors` member.
    pub fn from_body(body: &Value) -> Option<Self> {
        let errors = body.get("errors")?;
        let items = match errors {
            Value::Null => return None,
            Value::String(text) => vec![message(None, None, text)],
            Value::Array(list) => list.iter().map(item_from_list_entry).collect(),
            Value::Object(fields) => fields
                .iter()
                .map(|(field, text)| message(Some(field), None, &scalar_text(text)))
                .collect(),
            other => vec![message(None, None, &other.to_string())],
        };
        Some(ApiErrors(items))
    }

    /// Reads a body that may not be JSON at all (a proxy's HTML page, say).
    pub fn from_bytes(body: &[u8]) -> Self {
        match serde_json::from_slice::<Value>(body) {
            Ok(json) => ApiErrors::from_body(&json).unwrap_or_else(|| {
                let text = json
                    .get("message")
                    .map(scalar_text)
                    .unwrap_or_else(|| crate::money::shorten(&json.to_string()));
                ApiErrors(vec![message(None, None, &text)])
            }),
            Err(_) if body.is_empty() => ApiErrors::default(),
            Err(_) => {
                let text = String::from_utf8_lossy(body);
                ApiErrors(vec![message(
                    None,
                    None,
                    &crate::money::shorten(text.trim()),
                )])
            }
        }
    }

    /// True when any message mentions `needle` (case-insensitive).
    pub fn mentions(&self, needle: &str) -> bool {
        let needle = needle.to_ascii_lowercase();
        self.0
            .iter()
            .any(|item| item.message.to_ascii_lowercase().contains(&needle))
    }
}

impl fmt::Display for ApiErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(no error message)");
        }
        for (index, item) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str("; ")?;
            }
            if let Some(code) = &item.code {
                write!(f, "[{code}] ")?;
            }
            if let Some(field) = &item.field {
                write!(f, "{field}: ")?;
            }
            f.write_str(&item.message)?;
        }
        Ok(())
    }
}

fn item_from_list_entry(entry: &Value) -> ApiErrorItem {
    match entry {
        Value::Object(fields) => {
            let text = |key: &str| fields.get(key).map(scalar_text).filter(|t| !t.is_empty());
            ApiErrorItem {
                field: text("source").or_else(|| text("field")),
                code: text("code"),
                message: text("message").unwrap_or_else(|| entry.to_string()),
            }
        }
        other => message(None, None, &scalar_text(other)),
    }
}

fn message(field: Option<&String>, code: Option<String>, text: &str) -> ApiErrorItem {
    ApiErrorItem {
        field: field.cloned(),
        code,
        message: text.to_string(),
    }
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_documented_shape_is_read() {
        let text = ApiErrors::from_body(&json!({"errors": "Unauthorized"})).unwrap();
        assert_eq!(text.to_string(), "Unauthorized");

        let by_field =
            ApiErrors::from_body(&json!({"errors": {"cardTransactionId": "Not found"}})).unwrap();
        assert_eq!(by_field.to_string(), "cardTransactionId: Not found");

        let list = ApiErrors::from_body(&json!({"errors": ["a", "b"]})).unwrap();
        assert_eq!(list.to_string(), "a; b");

        let recurring = ApiErrors::from_body(&json!({"status": "error", "errors": [
            {"code": "E42", "message": "Plan missing", "source": "planId", "data": null}
        ]}))
        .unwrap();
        assert_eq!(recurring.to_string(), "[E42] planId: Plan missing");
    }

    #[test]
    fn a_body_without_errors_is_not_an_error_body() {
        assert_eq!(
            ApiErrors::from_body(&json!({"message": "Connected Successfully"})),
            None
        );
    }

    #[test]
    fn non_json_bodies_still_give_a_message() {
        assert_eq!(
            ApiErrors::from_bytes(b"<html>Bad Gateway</html>").to_string(),
            "<html>Bad Gateway</html>"
        );
        assert_eq!(ApiErrors::from_bytes(b"").to_string(), "(no error message)");
    }
}
