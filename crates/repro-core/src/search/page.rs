//! MLflow's page tokens, paging a sorted list, and the latest value of a metric.

use super::*;

/// MLflow's page token: base64 of `{"offset": N}`, byte for byte what MLflow hands out, so a
/// client may carry tokens across servers.
pub fn page_token(offset: usize) -> String {
    STANDARD.encode(format!("{{\"offset\": {offset}}}"))
}

/// The offset a page token names; an empty token is the first page.
pub fn parse_page_token(token: &str) -> Result<usize, SearchError> {
    // Padding optional: a token that lost its `=` in a query string still reads.
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let token = token.trim();
    if token.is_empty() {
        return Ok(0);
    }
    let bytes = LENIENT.decode(token).map_err(|_| {
        SearchError::new(format!(
            "Invalid page token '{}', could not base64-decode; pass back the next_page_token of the previous page",
            show(token)
        ))
    })?;
    let decoded = String::from_utf8_lossy(&bytes);
    let parsed: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| {
        SearchError::new(format!("Invalid page token, decoded value={}; expected {{\"offset\": N}}", show(&decoded)))
    })?;
    let invalid = || {
        SearchError::new(format!(
            "Invalid page token, parsed value={}; expected {{\"offset\": N}} with N a whole number >= 0",
            show(&parsed.to_string())
        ))
    };
    match parsed.get("offset") {
        Some(serde_json::Value::Number(n)) => n.as_u64().and_then(|n| usize::try_from(n).ok()).ok_or_else(invalid),
        // MLflow runs `int()` over the value, so a string of digits passes there too.
        Some(serde_json::Value::String(s)) => s.trim().parse::<usize>().map_err(|_| invalid()),
        _ => Err(invalid()),
    }
}

/// The slice of `total` sorted results one page shows, and the token for the next page when
/// more follow (MLflow's `paginate`).
pub fn paginate(
    total: usize,
    page_token: &str,
    max_results: usize,
) -> Result<(Range<usize>, Option<String>), SearchError> {
    let start = parse_page_token(page_token)?;
    let end = start.saturating_add(max_results);
    let next = (end < total).then(|| self::page_token(end));
    Ok((start.min(total)..end.min(total), next))
}

// ----- latest metric ------------------------------------------------------------------------

/// The value MLflow reports as a metric's latest: the point with the greatest (step,
/// timestamp, value). In that comparison NaN counts as 0 and ±infinity as ±f64::MAX, as the
/// SQL store compares what it stores; the value returned is the point's own. On a tie the
/// first point wins, as the store keeps the row it has.
pub fn latest_metric(points: impl IntoIterator<Item = (i64, i64, f64)>) -> Option<f64> {
    fn stored(v: f64) -> f64 {
        if v.is_nan() {
            0.0
        } else {
            v.clamp(-f64::MAX, f64::MAX)
        }
    }
    let newer = |a: &(i64, i64, f64), b: &(i64, i64, f64)| {
        (a.0, a.1).cmp(&(b.0, b.1)).then_with(|| stored(a.2).partial_cmp(&stored(b.2)).unwrap_or(Ordering::Equal))
            == Ordering::Greater
    };
    let mut best: Option<(i64, i64, f64)> = None;
    for p in points {
        if best.as_ref().is_none_or(|b| newer(&p, b)) {
            best = Some(p);
        }
    }
    best.map(|b| b.2)
}
