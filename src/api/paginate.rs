//! `limit`/`offset` pagination over Titan list routes. Invariants: always
//! terminates — on an empty page, on a short page when the server reported its page size,
//! on `offset ≥ total`, on a page
//! longer than asked (paging ignored), or with a Protocol error when the
//! server repeats a page (ignores `offset`), returns to any earlier page (a cycle), or
//! passes `MAX_PAGES` pages; and an item with an `id` is returned once, however many
//! pages it shows up on (rows inserted while paging shift later pages).

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};

use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

use super::http::Http;
use super::{ApiError, envelope};

/// Page size requested; servers may apply less (then they should say so).
pub(crate) const PAGE_SIZE: u64 = 100;
/// Hard stop for servers that never signal the end (10 000 × 100 items).
const MAX_PAGES: u64 = 10_000;

/// Fetches every page of `url` and decodes each item as `T`.
pub(crate) async fn collect_all<T: DeserializeOwned>(
    http: &Http,
    route: &str,
    url: &Url,
) -> Result<Vec<T>, ApiError> {
    let mut out = Vec::new();
    let mut offset = 0u64;
    // The previous page's fingerprint (see `pages_seen`).
    let mut previous: Option<u64> = None;
    let mut previous_short = false;
    // Fingerprints of the pages seen (a hash of their JSON text), to catch a cycle of
    // any length, not only a page repeated at once; and the ids returned so far.
    let mut pages_seen: HashSet<u64> = HashSet::new();
    let mut ids_seen: HashSet<String> = HashSet::new();
    let mut duplicates = 0u64;
    for _ in 0..MAX_PAGES {
        let mut page_url = url.clone();
        page_url
            .query_pairs_mut()
            .append_pair("limit", &PAGE_SIZE.to_string())
            .append_pair("offset", &offset.to_string());
        let body = http.get_json(route, &page_url).await?;
        let (data, siblings) = http.envelope(route, &body)?;
        let page = envelope::list_page(data, &siblings)
            .map_err(|detail| ApiError::protocol(route, 200, detail))?;
        let n = page.items.len() as u64;
        if n == 0 {
            log_duplicates(route, duplicates);
            return Ok(out);
        }
        let page_fp = fingerprint(&page.items);
        if previous == Some(page_fp) {
            if previous_short {
                // The confirming request after a short page got the same page back: the
                // server ignores `offset` and had already sent everything.
                log_duplicates(route, duplicates);
                return Ok(out);
            }
            return Err(ApiError::protocol(
                route,
                200,
                format!(
                    "the page at offset {offset} repeats the previous page; the server ignores `offset`"
                ),
            ));
        }
        if !pages_seen.insert(page_fp) {
            return Err(ApiError::protocol(
                route,
                200,
                format!("the page at offset {offset} repeats an earlier page; the listing cycles"),
            ));
        }
        for (i, item) in page.items.iter().enumerate() {
            if let Some(id) = item.get("id").and_then(Value::as_str)
                && !ids_seen.insert(id.to_owned())
            {
                duplicates += 1;
                continue;
            }
            let value = T::deserialize(item).map_err(|e| {
                ApiError::protocol(
                    route,
                    200,
                    format!("item {} of the list: {e}", offset + i as u64),
                )
            })?;
            out.push(value);
        }
        offset += n;
        let page_size = page.limit.filter(|l| *l > 0).unwrap_or(PAGE_SIZE);
        let done = match page.total {
            // A known total wins: a capped server may send short pages before the end.
            Some(total) => offset >= total,
            // More than we asked for and no limit reported: the server ignores
            // paging and sent everything at once.
            None if page.limit.is_none() && n > PAGE_SIZE => true,
            // The server said its page size: a shorter page is the last.
            None if page.limit.is_some() => n < page_size,
            // Neither total nor limit: a short page may be a silent cap, not the end, and
            // stopping there would lose items. One more request (empty) confirms the end.
            None => false,
        };
        if done {
            log_duplicates(route, duplicates);
            return Ok(out);
        }
        previous_short = n < page_size;
        previous = Some(page_fp);
    }
    Err(ApiError::protocol(
        route,
        200,
        format!("listing did not end after {MAX_PAGES} pages"),
    ))
}

/// A page's identity: the hash of its items' JSON text.
fn fingerprint(items: &[Value]) -> u64 {
    let mut h = DefaultHasher::new();
    for item in items {
        item.to_string().hash(&mut h);
    }
    h.finish()
}

fn log_duplicates(route: &str, duplicates: u64) {
    if duplicates > 0 {
        tracing::debug!(
            route,
            duplicates,
            "Items listed on more than one page were returned once"
        );
    }
}
