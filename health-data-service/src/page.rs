//! Pagination and date ranges shared by every list: `limit` (default 50, at most 500, by the one
//! page rule of `common::http::page`), an opaque `cursor` naming the last item of the previous
//! page (keyset pagination), and `from`/`to` calendar dates, both inclusive.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use common::error::AppError;
use common::http::{PageRule, truncate_page};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Items per page when `limit` is absent.
pub const DEFAULT_LIMIT: i64 = 50;
/// The largest `limit`.
pub const MAX_LIMIT: i64 = 500;
/// Every list's `limit` rule.
pub const LIST_PAGE: PageRule = PageRule::new(DEFAULT_LIMIT, MAX_LIMIT);

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    /// The items, in the list's order.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// `limit` and `cursor` of a list request.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct PageParams {
    /// Items per page (1..=500, default 50).
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// `from` and `to` of a date-range request (calendar dates, inclusive).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct RangeParams {
    /// First day, `YYYY-MM-DD` (inclusive).
    pub from: Option<NaiveDate>,
    /// Last day, `YYYY-MM-DD` (inclusive).
    pub to: Option<NaiveDate>,
}

impl RangeParams {
    /// 400 when `from` is after `to`.
    pub fn checked(self) -> Result<Self, AppError> {
        match (self.from, self.to) {
            (Some(f), Some(t)) if f > t => {
                Err(AppError::BadRequest("from must not be after to".into()))
            }
            _ => Ok(self),
        }
    }
}

impl PageParams {
    /// The page size; 400 outside 1..=500.
    pub fn limit(&self) -> Result<i64, AppError> {
        LIST_PAGE.limit(self.limit)
    }

    /// The cursor's plain text, if one was given.
    fn plain(&self) -> Result<Option<String>, AppError> {
        let Some(token) = self
            .cursor
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
        else {
            return Ok(None);
        };
        URL_SAFE_NO_PAD
            .decode(token.trim_end_matches('='))
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            // Its key reaches SQL as text: a forged cursor must not carry a NUL there.
            .filter(|plain| !crate::text::has_controls(plain))
            .map(Some)
            .ok_or_else(invalid_cursor)
    }

    /// A cursor naming a day.
    pub fn date_cursor(&self) -> Result<Option<NaiveDate>, AppError> {
        self.plain()?
            .map(|p| p.parse().map_err(|_| invalid_cursor()))
            .transpose()
    }

    /// A cursor naming an instant.
    pub fn time_cursor(&self) -> Result<Option<DateTime<Utc>>, AppError> {
        self.plain()?
            .map(|p| {
                DateTime::parse_from_rfc3339(&p)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| invalid_cursor())
            })
            .transpose()
    }

    /// A cursor naming `(key, id)`: a text or instant key and the row's id.
    pub fn keyed_cursor(&self) -> Result<Option<(String, Uuid)>, AppError> {
        self.plain()?
            .map(|p| {
                let (key, id) = p.rsplit_once('|').ok_or_else(invalid_cursor)?;
                let id = id.parse().map_err(|_| invalid_cursor())?;
                Ok((key.to_owned(), id))
            })
            .transpose()
    }
}

fn invalid_cursor() -> AppError {
    AppError::BadRequest("cursor is not a valid cursor".into())
}

/// The token for a cursor's plain text.
pub fn encode(plain: &str) -> String {
    URL_SAFE_NO_PAD.encode(plain)
}

/// The plain text of an instant in a cursor (microseconds: PostgreSQL's precision).
pub fn instant(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Parses an instant written by [`instant`].
pub fn parse_instant(s: &str) -> Result<DateTime<Utc>, AppError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| invalid_cursor())
}

/// A page from `limit + 1` fetched rows: the extra row only says that another page exists.
pub fn page<T>(mut rows: Vec<T>, limit: i64, key: impl Fn(&T) -> String) -> Page<T> {
    let next_cursor = if truncate_page(&mut rows, limit) {
        rows.last().map(|last| encode(&key(last)))
    } else {
        None
    };
    Page {
        items: rows,
        next_cursor,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn pages_and_cursors_round_trip() {
        let p = page(vec![1, 2, 3], 2, |n| format!("2024-03-0{n}"));
        assert_eq!(p.items, vec![1, 2]);
        let params = PageParams {
            limit: Some(2),
            cursor: p.next_cursor,
        };
        assert_eq!(
            params.date_cursor().unwrap(),
            NaiveDate::from_ymd_opt(2024, 3, 2)
        );
        assert!(page(vec![1, 2], 2, |n| n.to_string()).next_cursor.is_none());
        let id = Uuid::now_v7();
        let keyed = PageParams {
            limit: None,
            cursor: Some(encode(&format!("a|b|{id}"))),
        };
        assert_eq!(keyed.keyed_cursor().unwrap(), Some(("a|b".into(), id)));
        let bad = PageParams {
            limit: Some(0),
            cursor: Some("!!".into()),
        };
        assert!(bad.limit().is_err() && bad.date_cursor().is_err());
    }
}
