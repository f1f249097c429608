//! `Token`: the Titan API secret. Invariant: it is never formatted — `Debug`
//! and `Display` print `Token(***)` — and only `api::http` reads it, to build
//! the auth header for requests to the configured origin.

use std::fmt;

use super::ApiError;

/// The API secret (API key or JWT). Validated once so it is always a legal
/// HTTP header value.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    /// Trims surrounding whitespace; rejects an empty token and any byte that
    /// is not visible ASCII (controls, spaces inside, non-ASCII), which would
    /// be illegal or ambiguous in a header. The error never quotes the token.
    pub fn new(s: impl Into<String>) -> Result<Self, ApiError> {
        let s = s.into();
        let trimmed = s.trim();
        if trimmed.is_empty() {
            return Err(ApiError::InvalidConfig {
                field: "token",
                reason: "is empty".into(),
            });
        }
        if let Some(pos) = trimmed.bytes().position(|b| !b.is_ascii_graphic()) {
            return Err(ApiError::InvalidConfig {
                field: "token",
                reason: format!(
                    "has a character not allowed in an HTTP header (control, space or non-ASCII) at byte {pos}"
                ),
            });
        }
        Ok(Token(trimmed.to_owned()))
    }

    /// The secret itself; only for building the auth header.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_redacts() {
        let t = Token::new("  sk-live-abc123\n").expect("valid token");
        assert_eq!(t.expose(), "sk-live-abc123");
        assert_eq!(format!("{t:?}"), "Token(***)");
        assert_eq!(format!("{t}"), "Token(***)");
        assert_eq!(format!("{:#?}", Some(t)), "Some(\n    Token(***),\n)");
    }

    #[test]
    fn rejects_unusable_tokens_without_echoing_them() {
        for bad in ["", "   ", "ab\ncd", "ab cd", "sécret", "a\u{7f}b"] {
            let err = Token::new(bad).expect_err("token must be rejected");
            assert!(matches!(
                err,
                ApiError::InvalidConfig { field: "token", .. }
            ));
            if bad.trim().len() > 1 {
                assert!(!err.to_string().contains(bad.trim()), "{err}");
            }
        }
    }
}
