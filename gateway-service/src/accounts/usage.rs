//! A tenant's token usage, from the assistant messages the chat-worker stores with their usage.

use chrono::{DateTime, Utc};
use common::error::AppError;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

/// Usage of one model at one provider.
#[derive(Debug, Clone, Serialize)]
pub struct ModelUsage {
    /// The model that answered (null for turns that failed before a model was chosen).
    pub model: Option<String>,
    /// The provider that served it.
    pub provider: Option<String>,
    /// Assistant messages (answered turns, including cancelled and failed ones).
    pub messages: i64,
    /// Sum of `usage.input_tokens`.
    pub input_tokens: i64,
    /// Sum of `usage.output_tokens`.
    pub output_tokens: i64,
}

/// `GET /api/v1/admin/usage` answer.
#[derive(Debug, Serialize)]
pub struct UsageReport {
    /// The tenant reported on (the caller's).
    pub tenant_id: Uuid,
    /// Start of the range (inclusive), if given.
    pub from: Option<DateTime<Utc>>,
    /// End of the range (exclusive), if given.
    pub to: Option<DateTime<Utc>>,
    /// Everything in the range.
    pub totals: Totals,
    /// Per model and provider, ordered by model then provider.
    pub by_model: Vec<ModelUsage>,
}

/// Sums over every model.
#[derive(Debug, Default, Serialize)]
pub struct Totals {
    /// Assistant messages.
    pub messages: i64,
    /// Input tokens.
    pub input_tokens: i64,
    /// Output tokens.
    pub output_tokens: i64,
}

/// Parses an optional RFC 3339 bound named `what`.
pub fn parse_bound(value: Option<&str>, what: &str) -> Result<Option<DateTime<Utc>>, AppError> {
    value
        .filter(|v| !v.trim().is_empty())
        .map(|v| {
            DateTime::parse_from_rfc3339(v.trim())
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    AppError::BadRequest(format!(
                        "{what} must be an RFC 3339 time, e.g. 2026-01-31T00:00:00Z"
                    ))
                })
        })
        .transpose()
}

/// The tenant's usage in `[from, to)`, grouped by model and provider. Token counts that are not
/// JSON numbers (or are absent) count as zero.
pub async fn report(
    db: &PgPool,
    tenant_id: Uuid,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Result<UsageReport, AppError> {
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        return Err(AppError::BadRequest("from must not be after to".into()));
    }
    let by_model = sqlx::query_as!(
        ModelUsage,
        r#"SELECT model, provider,
                  count(*) AS "messages!",
                  coalesce(sum(CASE WHEN jsonb_typeof(usage->'input_tokens') = 'number'
                               THEN (usage->>'input_tokens')::numeric END), 0)::bigint
                      AS "input_tokens!",
                  coalesce(sum(CASE WHEN jsonb_typeof(usage->'output_tokens') = 'number'
                               THEN (usage->>'output_tokens')::numeric END), 0)::bigint
                      AS "output_tokens!"
           FROM chat_messages
           WHERE tenant_id = $1 AND role = 'assistant'
             AND ($2::timestamptz IS NULL OR created_at >= $2)
             AND ($3::timestamptz IS NULL OR created_at < $3)
           GROUP BY model, provider
           ORDER BY model NULLS LAST, provider NULLS LAST"#,
        tenant_id,
        from,
        to
    )
    .fetch_all(db)
    .await?;
    let totals = by_model.iter().fold(Totals::default(), |t, m| Totals {
        messages: t.messages + m.messages,
        input_tokens: t.input_tokens + m.input_tokens,
        output_tokens: t.output_tokens + m.output_tokens,
    });
    Ok(UsageReport {
        tenant_id,
        from,
        to,
        totals,
        by_model,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_rfc3339() {
        assert_eq!(parse_bound(None, "from").unwrap(), None);
        assert_eq!(parse_bound(Some(""), "from").unwrap(), None);
        let t = parse_bound(Some("2026-01-31T01:00:00+01:00"), "from")
            .unwrap()
            .unwrap();
        assert_eq!(t.to_rfc3339(), "2026-01-31T00:00:00+00:00");
        let err = parse_bound(Some("yesterday"), "to")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("to must be"), "{err}");
    }
}
