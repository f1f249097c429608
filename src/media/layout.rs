//! Where a media file goes in the media store, and what it is called.
//!
//! Every key is built from `PathPart`s; names derived from data are sanitised to
//! `[A-Za-z0-9._-]`, capped in length and hash-suffixed when changed, so a row value can
//! never escape its folder and two distinct values never share a name.

use object_store::path::{Path, PathPart};
use sha2::{Digest, Sha256};
use url::{Origin, Url};

/// Top folder of everything the media fetcher writes.
pub const MEDIA_DIR: &str = "media";
/// Folder (under an execution's media folder) of the per-file index entries.
pub const INDEX_DIR: &str = "_index";
/// Folder (under `media/`) of content-addressed files.
pub const CAS_DIR: &str = "sha256";
/// Folder (under `media/`) where content-addressed downloads are staged before their
/// hash is known. Objects there are never referenced; leftovers of a crash may be deleted.
pub const STAGING_DIR: &str = "_staging";

/// Longest file stem kept from data (before a hash suffix).
const MAX_STEM: usize = 64;
/// Hex digits of the hash suffix that makes a changed or generic name unique.
const SUFFIX_HEX: usize = 12;
/// Hex digits of an index entry's name (128 bits of sha256 of the value).
const INDEX_HEX: usize = 32;

/// The file extension for a `Content-Type`; `bin` when unknown or absent.
pub fn extension_for(content_type: Option<&str>) -> &'static str {
    let Some(ct) = content_type else {
        return "bin";
    };
    let essence = ct.split(';').next().unwrap_or_default().trim();
    match essence.to_ascii_lowercase().as_str() {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" | "image/pjpeg" => "jpg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        "image/svg+xml" => "svg",
        "image/avif" => "avif",
        "application/pdf" => "pdf",
        "video/mp4" => "mp4",
        "video/webm" => "webm",
        "text/plain" => "txt",
        "text/csv" => "csv",
        "application/json" | "text/json" => "json",
        other if other.starts_with("application/") && other.ends_with("+json") => "json",
        _ => "bin",
    }
}

/// `name` made path-safe: characters outside `[A-Za-z0-9._-]` become `_`, a leading `.`
/// too, and the result is capped at 64 bytes. If anything changed (or `name` was empty),
/// `-<12 hex of sha256(name)>` is appended so distinct inputs keep distinct names.
pub fn sanitize(name: &str) -> String {
    let mut out = safe_chars(name);
    if out == name && !out.is_empty() && out.len() <= MAX_STEM {
        return out;
    }
    // Only ASCII is left, so a byte cut is a char cut.
    out.truncate(MAX_STEM);
    if out.is_empty() {
        out.push_str("media");
    }
    out.push('-');
    out.push_str(&hex_sha256(name.as_bytes())[..SUFFIX_HEX]);
    out
}

/// Characters outside `[A-Za-z0-9._-]` and a leading `.` replaced by `_`.
fn safe_chars(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with('.') {
        out.replace_range(..1, "_");
    }
    out
}

/// The file stem for a media value of `execution_id`.
///
/// A value naming one of this execution's media ids — a bare id, the API's
/// `…/executions/<execution_id>/media/<id>/download` route or the CDN form
/// `/media/<execution_id>/<id>` on the API origin — is stored as `<id>` (sanitised).
/// Anything else (another execution's media, another host) gets its last path segment
/// without extension plus `-<12 hex of sha256(value)>`: names depend on the exact value,
/// query included, so distinct values never collide.
pub fn stem(value: &str, execution_id: &str, api_origin: &Origin) -> String {
    let value = value.trim();
    match parse(value, api_origin) {
        Parsed::BareId => sanitize(value),
        Parsed::Url(url) => {
            if let Some(id) = own_media_id(&url, execution_id, api_origin) {
                return sanitize(id);
            }
            let last = url
                .path_segments()
                .and_then(|mut s| s.rfind(|seg| !seg.is_empty()))
                .unwrap_or_default();
            generic(last, value)
        }
        Parsed::Opaque => generic("", value),
    }
}

enum Parsed {
    BareId,
    Url(Url),
    Opaque,
}

fn parse(value: &str, api_origin: &Origin) -> Parsed {
    match Url::parse(value) {
        Ok(url) => Parsed::Url(url),
        Err(url::ParseError::RelativeUrlWithoutBase) if value.starts_with('/') => {
            Url::parse(&api_origin.ascii_serialization())
                .and_then(|base| base.join(value))
                .map_or(Parsed::Opaque, Parsed::Url)
        }
        Err(url::ParseError::RelativeUrlWithoutBase) => Parsed::BareId,
        Err(_) => Parsed::Opaque,
    }
}

fn own_media_id<'u>(url: &'u Url, execution_id: &str, api_origin: &Origin) -> Option<&'u str> {
    if url.origin() != *api_origin {
        return None;
    }
    let segs: Vec<&str> = url.path_segments()?.collect();
    let id = match segs.as_slice() {
        [.., "executions", e, "media", m, "download"] if *e == execution_id => *m,
        ["media", e, m] if *e == execution_id => *m,
        _ => return None,
    };
    (!id.is_empty()).then_some(id)
}

fn generic(segment: &str, value: &str) -> String {
    let base = match segment.rsplit_once('.') {
        Some((head, ext))
            if !head.is_empty()
                && (1..=5).contains(&ext.len())
                && ext.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            head
        }
        _ => segment,
    };
    let mut out = safe_chars(base);
    out.truncate(MAX_STEM);
    if out.is_empty() {
        out.push_str("media");
    }
    out.push('-');
    out.push_str(&hex_sha256(value.as_bytes())[..SUFFIX_HEX]);
    out
}

/// `media/<task_id>/<execution_id>`: the execution's media folder (by-execution files
/// and the index).
pub fn execution_prefix(task_id: &str, execution_id: &str) -> Path {
    Path::from_iter([
        PathPart::from(MEDIA_DIR),
        PathPart::from(task_id),
        PathPart::from(execution_id),
    ])
}

/// `media/<task_id>/<execution_id>/<stem>.<ext>`.
pub fn by_execution_path(task_id: &str, execution_id: &str, stem: &str, ext: &str) -> Path {
    execution_prefix(task_id, execution_id).join(PathPart::from(format!("{stem}.{ext}")))
}

/// `media/sha256/<first two hex>/<sha256>.<ext>`.
pub fn content_addressed_path(sha256_hex: &str, ext: &str) -> Path {
    let fan = sha256_hex.get(..2).unwrap_or("00");
    Path::from_iter([
        PathPart::from(MEDIA_DIR),
        PathPart::from(CAS_DIR),
        PathPart::from(fan),
        PathPart::from(format!("{sha256_hex}.{ext}")),
    ])
}

/// `media/_staging/<unique>.tmp`: where a content-addressed download streams to.
pub fn staging_path(unique: &str) -> Path {
    Path::from_iter([
        PathPart::from(MEDIA_DIR),
        PathPart::from(STAGING_DIR),
        PathPart::from(format!("{unique}.tmp")),
    ])
}

/// `media/<task_id>/<execution_id>/_index`.
pub fn index_prefix(task_id: &str, execution_id: &str) -> Path {
    execution_prefix(task_id, execution_id).join(PathPart::from(INDEX_DIR))
}

/// `media/<task_id>/<execution_id>/_index/<32 hex of sha256(value)>.json`: the entry
/// written once `value`'s file is stored whole.
pub fn index_entry_path(task_id: &str, execution_id: &str, value: &str) -> Path {
    let name = format!("{}.json", &hex_sha256(value.as_bytes())[..INDEX_HEX]);
    index_prefix(task_id, execution_id).join(PathPart::from(name))
}

/// Lowercase hex sha256.
pub fn hex_sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A media value as errors and logs may show it: no query or fragment (signed URLs carry
/// tokens there), at most 120 characters.
pub fn display_value(value: &str) -> String {
    let value = value.trim();
    let head = value.split(['?', '#']).next().unwrap_or_default();
    let mut out: String = head.chars().take(120).collect();
    if out.len() < value.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin {
        Url::parse("https://api.titan.example")
            .expect("url")
            .origin()
    }

    #[test]
    fn extensions_follow_the_content_type() {
        let table = [
            (Some("image/png"), "png"),
            (Some("IMAGE/JPEG; charset=binary"), "jpg"),
            (Some("image/jpg"), "jpg"),
            (Some("image/gif"), "gif"),
            (Some("image/webp"), "webp"),
            (Some("image/svg+xml"), "svg"),
            (Some("application/pdf"), "pdf"),
            (Some("video/mp4"), "mp4"),
            (Some("application/json"), "json"),
            (Some("application/ld+json"), "json"),
            (Some("text/plain; charset=utf-8"), "txt"),
            (Some("application/octet-stream"), "bin"),
            (Some("text/html"), "bin"),
            (Some(""), "bin"),
            (None, "bin"),
        ];
        for (ct, want) in table {
            assert_eq!(extension_for(ct), want, "{ct:?}");
        }
    }

    #[test]
    fn safe_names_are_kept_and_changed_names_get_a_hash_suffix() {
        assert_eq!(sanitize("m-12-3"), "m-12-3");
        assert_eq!(sanitize("IMG_0001.v2"), "IMG_0001.v2");
        let h = |s: &str| hex_sha256(s.as_bytes())[..12].to_string();
        assert_eq!(sanitize("a b"), format!("a_b-{}", h("a b")));
        assert_eq!(sanitize("../etc"), format!("_._etc-{}", h("../etc")));
        assert_eq!(sanitize(".hidden"), format!("_hidden-{}", h(".hidden")));
        assert_eq!(sanitize("café"), format!("caf_-{}", h("café")));
        assert_eq!(sanitize(""), format!("media-{}", h("")));
        // Two inputs that sanitise alike stay distinct.
        assert_ne!(sanitize("a:b"), sanitize("a*b"));
        let long = "x".repeat(100);
        let s = sanitize(&long);
        assert_eq!(s, format!("{}-{}", "x".repeat(64), h(&long)));
        assert_eq!(sanitize(&"y".repeat(64)), "y".repeat(64));
    }

    #[test]
    fn stems_use_the_media_id_of_this_execution() {
        let o = origin();
        let table = [
            ("m-1-2", "m-1-2"),
            ("  m-1-2\n", "m-1-2"),
            (
                "https://api.titan.example/api/v1/executions/e1/media/m-1-2/download",
                "m-1-2",
            ),
            ("/api/v1/executions/e1/media/m-9/download", "m-9"),
            ("https://api.titan.example/media/e1/m-3?token=abc", "m-3"),
            (
                "https://api.titan.example/prefix/api/v1/executions/e1/media/m-4/download",
                "m-4",
            ),
        ];
        for (value, want) in table {
            assert_eq!(stem(value, "e1", &o), want, "{value}");
        }
    }

    #[test]
    fn other_values_get_their_last_segment_and_a_value_hash() {
        let o = origin();
        let h = |s: &str| hex_sha256(s.as_bytes())[..12].to_string();
        let other_exec = "https://api.titan.example/api/v1/executions/e2/media/m-1/download";
        assert_eq!(
            stem(other_exec, "e1", &o),
            format!("download-{}", h(other_exec))
        );
        let cdn = "https://cdn.example.com/a/b/photo.large.JPG?sig=1";
        assert_eq!(stem(cdn, "e1", &o), format!("photo.large-{}", h(cdn)));
        // Same file name on two paths, or two queries: distinct stems.
        assert_ne!(
            stem("https://cdn.example.com/a/img.jpg", "e1", &o),
            stem("https://cdn.example.com/b/img.jpg", "e1", &o)
        );
        assert_ne!(
            stem("https://cdn.example.com/x?id=1", "e1", &o),
            stem("https://cdn.example.com/x?id=2", "e1", &o)
        );
        // The API route shape on a foreign host is not trusted as this execution's id.
        let foreign = "https://cdn.example.com/api/v1/executions/e1/media/m-1/download";
        assert_eq!(stem(foreign, "e1", &o), format!("download-{}", h(foreign)));
        let root = "https://cdn.example.com/";
        assert_eq!(stem(root, "e1", &o), format!("media-{}", h(root)));
        let weird = "https://cdn.example.com/%E6%9D%B1 x.png";
        let s = stem(weird, "e1", &o);
        assert!(
            s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
            "{s}"
        );
    }

    #[test]
    fn paths_are_laid_out_as_documented() {
        assert_eq!(
            by_execution_path("t1", "e1", "m-1", "png").as_ref(),
            "media/t1/e1/m-1.png"
        );
        let sha = hex_sha256(b"abc");
        assert_eq!(
            content_addressed_path(&sha, "svg").as_ref(),
            format!("media/sha256/ba/{sha}.svg")
        );
        assert_eq!(staging_path("u1").as_ref(), "media/_staging/u1.tmp");
        let entry = index_entry_path("t1", "e1", "m-1");
        assert_eq!(
            entry.as_ref(),
            format!("media/t1/e1/_index/{}.json", &hex_sha256(b"m-1")[..32])
        );
        // Ids from the API cannot escape their folder.
        let p = by_execution_path("../t", "e/1", "m", "png");
        assert_eq!(p.parts().count(), 4, "{p}");
        assert!(p.as_ref().starts_with("media/"), "{p}");
    }

    #[test]
    fn displayed_values_drop_queries() {
        assert_eq!(
            display_value("https://cdn.x/m/a.png?token=SECRET"),
            "https://cdn.x/m/a.png…"
        );
        assert_eq!(display_value(" m-1 "), "m-1");
        assert_eq!(display_value(&"z".repeat(130)).chars().count(), 121);
    }
}
