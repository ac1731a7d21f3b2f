//! The API key an MCP session is bound to.
//!
//! Invariant: a session calls the node with one key for its whole life. Over stdio it is the
//! key the command was started with. Over HTTP it is the bearer token of the `initialize`
//! request, and every later request of the session must carry the same token (MCP's
//! authorization rules send it with every request); a request with none or another is refused
//! before the node is called.

use std::fmt;
use std::str::FromStr;
use std::sync::{Mutex, PoisonError};

use hyper::http::request::Parts;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use rmcp::model::Extensions;

use crate::error::{CallError, McpError};

/// Longest token accepted: the node's are `sdb_` + a 16-hex-digit id + a 64-hex-digit secret,
/// so this leaves room and refuses a megabyte of header.
const TOKEN_BYTES_MAX: usize = 256;

/// A StemeDB API key's token (`sdb_<id>_<secret>`). Its `Debug` does not show the secret, and
/// its header value is marked sensitive.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken {
    header: HeaderValue,
}

impl ApiToken {
    /// The `Authorization: Bearer ...` value.
    pub(crate) fn header(&self) -> HeaderValue {
        self.header.clone()
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken(..)")
    }
}

impl FromStr for ApiToken {
    type Err = McpError;

    /// Parses a token, ignoring surrounding whitespace (a token file's newline): 1 to 256
    /// visible ASCII characters.
    fn from_str(text: &str) -> Result<Self, McpError> {
        let token = text.trim();
        if token.is_empty() || token.len() > TOKEN_BYTES_MAX {
            return Err(McpError::Token(format!(
                "expected 1 to {TOKEN_BYTES_MAX} bytes, found {}",
                token.len()
            )));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(McpError::Token(
                "only visible ASCII characters are allowed".to_owned(),
            ));
        }
        let mut header =
            HeaderValue::from_str(&format!("Bearer {token}")).map_err(|e| McpError::Token(e.to_string()))?;
        header.set_sensitive(true);
        Ok(Self { header })
    }
}

/// Where a session's key comes from.
#[derive(Debug)]
pub(crate) enum SessionKey {
    /// Fixed when the server started (stdio): this key, or none.
    Fixed(Option<ApiToken>),
    /// The bearer token of the session's `initialize` request (streamable HTTP); none until
    /// then, or when it carried none.
    FromHttp(Mutex<Option<ApiToken>>),
}

impl SessionKey {
    /// At `initialize`: an HTTP session binds the bearer token its request carries.
    pub(crate) fn bind(&self, extensions: &Extensions) {
        if let Self::FromHttp(bound) = self {
            let token = bearer(extensions).and_then(Result::ok);
            *bound.lock().unwrap_or_else(PoisonError::into_inner) = token;
        }
    }

    /// The key to call the node with for a request whose context holds `extensions`.
    pub(crate) fn key(&self, extensions: &Extensions) -> Result<ApiToken, CallError> {
        match self {
            Self::Fixed(token) => token.clone().ok_or(CallError::NoKey),
            Self::FromHttp(bound) => {
                let bound = self::bound(bound).ok_or(CallError::NoKey)?;
                match bearer(extensions) {
                    Some(Ok(sent)) if sent == bound => Ok(bound),
                    Some(_) => Err(CallError::KeyMismatch),
                    // No HTTP request behind this call (the session's own work): the bound key.
                    None if extensions.get::<Parts>().is_none() => Ok(bound),
                    None => Err(CallError::NoKey),
                }
            }
        }
    }
}

fn bound(slot: &Mutex<Option<ApiToken>>) -> Option<ApiToken> {
    slot.lock().unwrap_or_else(PoisonError::into_inner).clone()
}

/// The bearer token of the HTTP request behind a call: none without an HTTP request or an
/// `Authorization: Bearer` header; an error for a header that is not a usable token.
fn bearer(extensions: &Extensions) -> Option<Result<ApiToken, McpError>> {
    let parts = extensions.get::<Parts>()?;
    let value = parts.headers.get(AUTHORIZATION)?;
    let Ok(text) = value.to_str() else {
        return Some(Err(McpError::Token("not visible ASCII".to_owned())));
    };
    let (scheme, token) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    Some(token.parse())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_with(authorization: Option<&str>) -> Extensions {
        let mut builder = hyper::http::Request::builder().uri("/mcp");
        if let Some(value) = authorization {
            builder = builder.header(AUTHORIZATION, value);
        }
        let (parts, ()) = builder
            .body(())
            .map(|r| r.into_parts())
            .unwrap_or_else(|e| panic!("{e}"));
        let mut extensions = Extensions::new();
        extensions.insert(parts);
        extensions
    }

    #[test]
    fn token_is_trimmed_and_checked() {
        assert!("sdb_1_2\n".parse::<ApiToken>().is_ok());
        assert!("".parse::<ApiToken>().is_err());
        assert!("sdb with space".parse::<ApiToken>().is_err());
        assert!("x".repeat(TOKEN_BYTES_MAX + 1).parse::<ApiToken>().is_err());
        let token: ApiToken = "sdb_secret".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(!format!("{token:?}").contains("secret"));
    }

    #[test]
    fn http_session_binds_the_initialize_token_and_refuses_another() {
        let key = SessionKey::FromHttp(Mutex::new(None));
        assert_eq!(
            key.key(&request_with(Some("Bearer sdb_a"))),
            Err(CallError::NoKey)
        );
        key.bind(&request_with(Some("Bearer sdb_a")));
        let a: ApiToken = "sdb_a".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(key.key(&request_with(Some("Bearer sdb_a"))), Ok(a.clone()));
        assert_eq!(
            key.key(&request_with(Some("Bearer sdb_b"))),
            Err(CallError::KeyMismatch)
        );
        assert_eq!(key.key(&request_with(None)), Err(CallError::NoKey));
        assert_eq!(key.key(&Extensions::new()), Ok(a));
    }

    #[test]
    fn stdio_session_uses_its_fixed_key() {
        assert_eq!(
            SessionKey::Fixed(None).key(&Extensions::new()),
            Err(CallError::NoKey)
        );
        let a: ApiToken = "sdb_a".parse().unwrap_or_else(|e| panic!("{e}"));
        let key = SessionKey::Fixed(Some(a.clone()));
        assert_eq!(key.key(&Extensions::new()), Ok(a));
    }
}
