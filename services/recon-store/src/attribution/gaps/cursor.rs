//! The opaque cursor of the gap listing: the last id a page showed and a fingerprint
//! of the filters it was asked with. Pages are keyset pages (`id > last`), so a gap
//! inserted while someone pages is neither skipped nor shown twice; the fingerprint
//! refuses a cursor replayed with other filters, which would silently skip rows.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use super::GapFilter;

/// Why a cursor was refused (the API answers 400 with this text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    #[error("the cursor is not one this API gave out; start again without `cursor`")]
    Malformed,
    #[error(
        "the cursor was given out for other filters; ask again with the same month, account, \
         class and status, or start again without `cursor`"
    )]
    OtherFilters,
}

const VERSION: &str = "g1";

fn fingerprint(filter: &GapFilter) -> String {
    // Unit separators between fields, so no two filters print the same.
    let canonical = format!(
        "{}\u{1f}{}\u{1f}{}\u{1f}{}",
        filter.month.map(|m| m.to_string()).unwrap_or_default(),
        filter.account.as_deref().unwrap_or_default(),
        filter.class.map(|c| c.as_str()).unwrap_or_default(),
        filter.status.map(|s| s.as_str()).unwrap_or_default(),
    );
    Sha256::digest(canonical.as_bytes())[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The cursor after the gap `last_id` for `filter`.
pub fn encode(last_id: i64, filter: &GapFilter) -> String {
    URL_SAFE_NO_PAD.encode(format!("{VERSION}.{last_id}.{}", fingerprint(filter)))
}

/// The last id a cursor names, when it was given out for `filter`.
pub fn decode(cursor: &str, filter: &GapFilter) -> Result<i64, CursorError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor.trim())
        .map_err(|_| CursorError::Malformed)?;
    let text = String::from_utf8(bytes).map_err(|_| CursorError::Malformed)?;
    let mut parts = text.split('.');
    let (Some(VERSION), Some(id), Some(print), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(CursorError::Malformed);
    };
    let id: i64 = id.parse().map_err(|_| CursorError::Malformed)?;
    if id < 0 {
        return Err(CursorError::Malformed);
    }
    if print != fingerprint(filter) {
        return Err(CursorError::OtherFilters);
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use recon_attribution::{GapClass, GapStatus, Month};

    use super::*;

    fn november() -> GapFilter {
        GapFilter {
            month: Month::new(2026, 11),
            ..GapFilter::default()
        }
    }

    #[test]
    fn a_cursor_round_trips_with_its_own_filters_only() {
        let filter = november();
        let cursor = encode(42, &filter);
        assert_eq!(decode(&cursor, &filter), Ok(42));
        let other = GapFilter {
            class: Some(GapClass::Unattributed),
            ..november()
        };
        assert_eq!(decode(&cursor, &other), Err(CursorError::OtherFilters));
        let status = GapFilter {
            status: Some(GapStatus::Open),
            ..november()
        };
        assert_eq!(decode(&cursor, &status), Err(CursorError::OtherFilters));
        assert_eq!(
            decode(&cursor, &GapFilter::default()),
            Err(CursorError::OtherFilters)
        );
    }

    #[test]
    fn junk_cursors_are_refused() {
        let filter = november();
        for junk in [
            "",
            "x",
            "!!!",
            &URL_SAFE_NO_PAD.encode("g1.-1.00"),
            &URL_SAFE_NO_PAD.encode("g1.5"),
        ] {
            assert_eq!(decode(junk, &filter), Err(CursorError::Malformed), "{junk}");
        }
    }
}
