//! Winner resources: `stemedb://winner/{subject}/{predicate}` with an optional `?lens=NAME`.
//!
//! Subject, predicate and lens are percent-encoded (every byte but RFC 3986's unreserved
//! characters), so a subject holding `/`, `?` or spaces round-trips. Described and encoded here
//! and nowhere else.

use std::fmt;
use std::str::FromStr;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// What is left as is in a component: RFC 3986's unreserved characters.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The scheme and authority every winner resource starts with.
pub const WINNER_PREFIX: &str = "stemedb://winner/";

/// The RFC 6570 template of winner resources, as listed to clients.
pub const WINNER_TEMPLATE: &str = "stemedb://winner/{subject}/{predicate}{?lens}";

/// Longest URI parsed: a subject and a predicate at the node's limits, percent-encoded three
/// bytes per byte, fit; a longer one is refused before it is decoded.
const URI_BYTES_MAX: usize = 8192;

/// The winner of (subject, predicate) under a lens (the node's default when `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WinnerUri {
    /// The subject.
    pub subject: String,
    /// The predicate.
    pub predicate: String,
    /// The lens, when not the node's default.
    pub lens: Option<String>,
}

/// Why a text is not a winner resource URI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a winner resource ({WINNER_TEMPLATE}): {0}")]
pub struct UriError(String);

impl fmt::Display for WinnerUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{WINNER_PREFIX}{}/{}",
            utf8_percent_encode(&self.subject, COMPONENT),
            utf8_percent_encode(&self.predicate, COMPONENT)
        )?;
        if let Some(lens) = &self.lens {
            write!(f, "?lens={}", utf8_percent_encode(lens, COMPONENT))?;
        }
        Ok(())
    }
}

impl FromStr for WinnerUri {
    type Err = UriError;

    fn from_str(uri: &str) -> Result<Self, UriError> {
        if uri.len() > URI_BYTES_MAX {
            return Err(UriError(format!("longer than {URI_BYTES_MAX} bytes")));
        }
        let rest = uri
            .strip_prefix(WINNER_PREFIX)
            .ok_or_else(|| UriError(format!("does not start with {WINNER_PREFIX}")))?;
        let (path, query) = match rest.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (rest, None),
        };
        let mut segments = path.split('/');
        let (Some(subject), Some(predicate), None) = (segments.next(), segments.next(), segments.next())
        else {
            return Err(UriError("expected exactly {subject}/{predicate}".to_owned()));
        };
        let lens = match query {
            None => None,
            Some(query) => Some(decode(
                "lens",
                query
                    .strip_prefix("lens=")
                    .ok_or_else(|| UriError("the only query parameter is lens".to_owned()))?,
            )?),
        };
        Ok(Self {
            subject: decode("subject", subject)?,
            predicate: decode("predicate", predicate)?,
            lens,
        })
    }
}

fn decode(what: &str, component: &str) -> Result<String, UriError> {
    let text = percent_decode_str(component)
        .decode_utf8()
        .map_err(|_| UriError(format!("the {what} is not UTF-8 once decoded")))?;
    if text.is_empty() {
        return Err(UriError(format!("the {what} is empty")));
    }
    Ok(text.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn winner(subject: &str, predicate: &str, lens: Option<&str>) -> WinnerUri {
        WinnerUri {
            subject: subject.to_owned(),
            predicate: predicate.to_owned(),
            lens: lens.map(str::to_owned),
        }
    }

    #[test]
    fn plain_pair_reads_as_written() {
        let uri = winner("city:paris", "population", None);
        assert_eq!(uri.to_string(), "stemedb://winner/city%3Aparis/population");
        assert_eq!("stemedb://winner/city%3Aparis/population".parse(), Ok(uri));
    }

    #[test]
    fn awkward_characters_round_trip() {
        for (subject, predicate, lens) in [
            ("city/paris", "a?b#c", Some("recency")),
            ("espace et accent é", "100%", None),
            ("q=1&lens=x", "/", Some("consensus")),
        ] {
            let uri = winner(subject, predicate, lens);
            let text = uri.to_string();
            assert_eq!(text.matches('/').count(), 4, "{text}");
            assert_eq!(text.parse::<WinnerUri>(), Ok(uri), "{text}");
        }
    }

    #[test]
    fn malformed_uris_are_refused() {
        for bad in [
            "stemedb://other/a/b",
            "stemedb://winner/a",
            "stemedb://winner/a/b/c",
            "stemedb://winner//b",
            "stemedb://winner/a/b?limit=3",
            "stemedb://winner/a/b?lens=",
            "stemedb://winner/%FF/b",
        ] {
            assert!(bad.parse::<WinnerUri>().is_err(), "{bad}");
        }
        let long = format!("{WINNER_PREFIX}{}/b", "a".repeat(URI_BYTES_MAX));
        assert!(long.parse::<WinnerUri>().is_err());
    }
}
