//! What a person types into search, understood: words, and filters written among them —
//! `has:file`, `in:thread`, `after:2026-11-01`, `before:2026-12-01`, `during:2026-11-29`
//! (dates in UTC). Plain code: the same text gives the same query on every front end.

use super::store::SearchQuery;

/// Why a search cannot be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// A date filter's date is not a date.
    #[error("\"{0}\" is not a date; write it as 2026-11-29")]
    BadDate(String),
}

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// Unix ms at the start (00:00 UTC) of `date` (YYYY-MM-DD).
fn day_start_ms(date: &str) -> Result<u64, QueryError> {
    let bad = || QueryError::BadDate(date.to_owned());
    if date.len() != 10 {
        return Err(bad());
    }
    let at = humantime::parse_rfc3339(&format!("{date}T00:00:00Z")).map_err(|_| bad())?;
    let since_epoch = at
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| bad())?;
    Ok(since_epoch.as_millis() as u64)
}

/// Reads `input` into a query (its limit left at 0 for the caller to set).
pub fn parse_query(input: &str) -> Result<SearchQuery, QueryError> {
    let mut query = SearchQuery::default();
    let mut words = Vec::new();
    for token in input.split_whitespace() {
        let lower = token.to_ascii_lowercase();
        if lower == "has:file" {
            query.has_file = true;
        } else if lower == "in:thread" {
            query.in_thread = true;
        } else if let Some(date) = lower.strip_prefix("after:") {
            // After a day: from the next day's start.
            query.since_ms = Some(day_start_ms(date)? + DAY_MS);
        } else if let Some(date) = lower.strip_prefix("before:") {
            query.until_ms = Some(day_start_ms(date)?);
        } else if let Some(date) = lower.strip_prefix("during:") {
            let start = day_start_ms(date)?;
            query.since_ms = Some(start);
            query.until_ms = Some(start + DAY_MS);
        } else {
            words.push(token);
        }
    }
    query.words = words.join(" ");
    Ok(query)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_picked_out_of_the_words() {
        let query = parse_query("deploy HAS:FILE notes in:thread").unwrap();
        assert_eq!(query.words, "deploy notes");
        assert!(query.has_file && query.in_thread);
        let day = parse_query("during:2026-11-29").unwrap();
        assert_eq!(day.since_ms, Some(1_795_910_400_000));
        assert_eq!(day.until_ms, Some(1_795_910_400_000 + DAY_MS));
        let range = parse_query("after:2026-11-28 before:2026-11-30 x").unwrap();
        assert_eq!(range.since_ms, day.since_ms);
        assert_eq!(range.until_ms, Some(1_795_910_400_000 + DAY_MS));
        assert_eq!(
            parse_query("before:yesterday"),
            Err(QueryError::BadDate("yesterday".into()))
        );
        assert_eq!(
            parse_query("after:2026-13-01"),
            Err(QueryError::BadDate("2026-13-01".into()))
        );
        assert_eq!(parse_query("plain words").unwrap().words, "plain words");
    }
}
