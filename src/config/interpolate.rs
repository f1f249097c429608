//! `${NAME}` in the string values of a config file, replaced by environment variables.
//!
//! Done on the parsed TOML (never on the text), so a value can't break the file's syntax
//! and keys and comments are left alone. `${NAME:-default}` falls back to `default` when
//! `NAME` is unset or empty (as in the shell); `$${` is a literal `${`.

use super::Env;

/// Why a value could not be interpolated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterpolateError {
    #[error(
        "environment variable `{name}` is not set (write `${{{name}:-default}}` to give a default)"
    )]
    Unset { name: String },
    #[error("`${{` without a closing `}}` in `{value}`")]
    Unclosed { value: String },
    #[error("`{name}` is not a variable name (letters, digits and `_`, not starting with a digit)")]
    BadName { name: String },
}

impl InterpolateError {
    /// The text to look for in the file to find the line of the mistake.
    fn needle(&self) -> String {
        match self {
            InterpolateError::Unset { name } | InterpolateError::BadName { name } => {
                format!("${{{name}")
            }
            InterpolateError::Unclosed { .. } => "${".to_string(),
        }
    }

    /// The 1-based line of the file where this occurs, if it can be found. Comment lines
    /// are skipped: they are never interpolated.
    pub fn line_in(&self, text: &str) -> Option<usize> {
        let needle = self.needle();
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim_start().starts_with('#'))
            .find(|(_, l)| l.replace("$${", "").contains(&needle))
            .map(|(i, _)| i + 1)
    }
}

/// Interpolates every string value in `table`, recursively (arrays and inline tables
/// too); `Ok(true)` when some value changed.
pub fn table(table: &mut toml::Table, env: &Env) -> Result<bool, InterpolateError> {
    let mut changed = false;
    for (_, value) in table.iter_mut() {
        changed |= value_in_place(value, env)?;
    }
    Ok(changed)
}

fn value_in_place(value: &mut toml::Value, env: &Env) -> Result<bool, InterpolateError> {
    let mut changed = false;
    match value {
        toml::Value::String(s) if s.contains('$') => {
            let new = string(s, env)?;
            if new != *s {
                *s = new;
                changed = true;
            }
        }
        toml::Value::Array(items) => {
            for v in items {
                changed |= value_in_place(v, env)?;
            }
        }
        toml::Value::Table(t) => {
            for (_, v) in t.iter_mut() {
                changed |= value_in_place(v, env)?;
            }
        }
        _ => {}
    }
    Ok(changed)
}

/// Interpolates one string.
pub fn string(s: &str, env: &Env) -> Result<String, InterpolateError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let Some(end) = after.find('}') else {
                return Err(InterpolateError::Unclosed {
                    value: s.to_string(),
                });
            };
            let inner = &after[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            if !is_name(name) {
                return Err(InterpolateError::BadName {
                    name: name.to_string(),
                });
            }
            let value = match (env.raw(name), default) {
                (Some(""), Some(d)) => d,
                (Some(v), _) => v,
                (None, Some(d)) => d,
                (None, None) => {
                    return Err(InterpolateError::Unset {
                        name: name.to_string(),
                    });
                }
            };
            out.push_str(value);
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn is_name(n: &str) -> bool {
    let mut chars = n.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        Env::from_pairs([("BUCKET", "lake"), ("EMPTY", ""), ("N", "7")])
    }

    fn interp(s: &str) -> Result<String, InterpolateError> {
        string(s, &env())
    }

    #[test]
    fn replaces_variables_defaults_and_escapes() {
        assert_eq!(interp("s3://${BUCKET}/raw").unwrap(), "s3://lake/raw");
        assert_eq!(interp("${MISSING:-./out}").unwrap(), "./out");
        assert_eq!(interp("${BUCKET:-other}").unwrap(), "lake");
        assert_eq!(interp("${EMPTY:-fallback}").unwrap(), "fallback");
        assert_eq!(interp("${EMPTY}").unwrap(), "");
        assert_eq!(interp("$${BUCKET} costs $5").unwrap(), "${BUCKET} costs $5");
        assert_eq!(interp("${N}${N}").unwrap(), "77");
        assert_eq!(interp("${MISSING:-}").unwrap(), "");
    }

    #[test]
    fn unset_unclosed_and_bad_names_are_errors() {
        assert_eq!(
            interp("a${NOPE}b").unwrap_err(),
            InterpolateError::Unset {
                name: "NOPE".into()
            }
        );
        assert_eq!(
            interp("${NOPE").unwrap_err().to_string(),
            "`${` without a closing `}` in `${NOPE`"
        );
        assert!(matches!(
            interp("${1X}").unwrap_err(),
            InterpolateError::BadName { .. }
        ));
        assert_eq!(
            InterpolateError::Unset { name: "X".into() }.to_string(),
            "environment variable `X` is not set (write `${X:-default}` to give a default)"
        );
    }

    #[test]
    fn tables_arrays_and_the_line_of_a_mistake() {
        let text = "# ${NOPE} in a comment\n[store]\nurl = \"s3://${BUCKET}\"\noptions = { a = \"${N}\" }\n[x]\nlist = [\"${BUCKET}\", 3]\nbad = \"${NOPE}\"\n";
        let mut t: toml::Table = toml::from_str(text).unwrap();
        let err = table(&mut t.clone(), &env()).unwrap_err();
        assert_eq!(err.line_in(text), Some(7));
        t["x"].as_table_mut().unwrap().remove("bad");
        assert!(table(&mut t, &env()).unwrap());
        assert_eq!(t["store"]["url"].as_str(), Some("s3://lake"));
        assert_eq!(t["store"]["options"]["a"].as_str(), Some("7"));
        assert_eq!(t["x"]["list"][0].as_str(), Some("lake"));
        assert_eq!(t["x"]["list"][1].as_integer(), Some(3));
    }
}
