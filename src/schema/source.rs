//! Column sources: a top-level field, or a path into a nested JSON field.
//!
//! `a.b.0` (dotted, every segment non-empty) and JSON pointers `/a/b/0` (RFC 6901, `~1` = `/`,
//! `~0` = `~`) name a value inside the top-level field `a`. Invariant: the root of a path is
//! always a top-level field name, which is what the JSON decoder extracts.

/// Where a column's values come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourcePath {
    /// A top-level field (CSV header / JSON key), read as is.
    Field(String),
    /// The value at `rest` inside the JSON text of the top-level field `root`. If the raw
    /// batch has a column named exactly like the whole source (a CSV header `a.b`), that
    /// column is used instead.
    Path { root: String, rest: Vec<String> },
}

impl SourcePath {
    /// Reads a `source` value (never fails; see [`SourcePath::check`] for bad pointers).
    pub fn parse(source: &str) -> Self {
        if let Some(pointer) = source.strip_prefix('/') {
            let mut tokens = pointer
                .split('/')
                .map(|t| t.replace("~1", "/").replace("~0", "~"));
            let root = tokens.next().unwrap_or_default();
            let rest: Vec<String> = tokens.collect();
            return if rest.is_empty() {
                SourcePath::Field(root)
            } else {
                SourcePath::Path { root, rest }
            };
        }
        let segments: Vec<&str> = source.split('.').collect();
        if segments.len() > 1 && segments.iter().all(|s| !s.is_empty()) {
            SourcePath::Path {
                root: segments[0].to_owned(),
                rest: segments[1..].iter().map(|s| s.to_string()).collect(),
            }
        } else {
            SourcePath::Field(source.to_owned())
        }
    }

    /// A JSON pointer must name a non-empty root field.
    pub(super) fn check(source: &str) -> Result<(), String> {
        if source.starts_with('/') && SourcePath::parse(source).root().is_empty() {
            return Err(format!(
                "JSON pointer `{source}` must start with a field name (`/field/…`)"
            ));
        }
        Ok(())
    }

    /// The top-level field the values are read from.
    pub fn root(&self) -> &str {
        match self {
            SourcePath::Field(f) => f,
            SourcePath::Path { root, .. } => root,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(root: &str, rest: &[&str]) -> SourcePath {
        SourcePath::Path {
            root: root.into(),
            rest: rest.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn sources_parse() {
        assert_eq!(
            SourcePath::parse("price"),
            SourcePath::Field("price".into())
        );
        assert_eq!(SourcePath::parse("a.b.0"), path("a", &["b", "0"]));
        assert_eq!(SourcePath::parse("/a/b/0"), path("a", &["b", "0"]));
        assert_eq!(SourcePath::parse("/a~1b/c~0d"), path("a/b", &["c~d"]));
        assert_eq!(SourcePath::parse("/a.b"), SourcePath::Field("a.b".into()));
        assert_eq!(SourcePath::parse("/a/"), path("a", &[""]));
        // Not a path: empty segments keep the name literal (`price.`, `.x`, `a..b`).
        for literal in ["price.", ".x", "a..b", "..."] {
            assert_eq!(
                SourcePath::parse(literal),
                SourcePath::Field(literal.into())
            );
        }
        assert_eq!(SourcePath::parse("a.b").root(), "a");
        assert!(SourcePath::check("/").is_err());
        assert!(SourcePath::check("//a").is_err());
        assert!(SourcePath::check("/a/b").is_ok());
        assert!(SourcePath::check("a.b").is_ok());
    }
}
