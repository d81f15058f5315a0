//! The one `limit` rule of every list: a default when absent, and 400 `limit must be between 1
//! and <max>` outside `1..=max` (an oversized `limit` is refused, never silently shortened), plus
//! the keyset step shared by the lists that fetch one row more than a page.

use crate::error::AppError;

/// A list's page size: its default and its largest `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRule {
    /// Items per page when `limit` is absent.
    pub default: i64,
    /// The largest `limit` accepted.
    pub max: i64,
}

impl PageRule {
    /// A rule with this default and maximum.
    pub const fn new(default: i64, max: i64) -> Self {
        Self { default, max }
    }

    /// The page size for a requested `limit`; 400 outside `1..=max`.
    pub fn limit(self, requested: Option<i64>) -> Result<i64, AppError> {
        match requested {
            None => Ok(self.default),
            Some(n) if (1..=self.max).contains(&n) => Ok(n),
            Some(_) => Err(AppError::BadRequest(format!(
                "limit must be between 1 and {}",
                self.max
            ))),
        }
    }
}

/// Cuts `limit + 1` fetched rows to `limit`; true when the extra row said another page exists.
pub fn truncate_page<T>(rows: &mut Vec<T>, limit: i64) -> bool {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let more = rows.len() > limit;
    rows.truncate(limit);
    more
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn limits_outside_the_rule_are_refused() {
        let rule = PageRule::new(20, 100);
        assert_eq!(rule.limit(None).unwrap(), 20);
        assert_eq!(rule.limit(Some(100)).unwrap(), 100);
        for bad in [0, -1, 101] {
            let e = rule.limit(Some(bad)).unwrap_err();
            assert_eq!(e.to_string(), "limit must be between 1 and 100");
        }
        let mut rows = vec![1, 2, 3];
        assert!(truncate_page(&mut rows, 2));
        assert_eq!(rows, vec![1, 2]);
        assert!(!truncate_page(&mut rows, 2));
    }
}
