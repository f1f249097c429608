//! `titan-connector init`: writes a commented starter config.
//!
//! Every key is present with its default, so the file both documents the settings and
//! loads as is (a test holds it to `Config::load` and the real defaults); the user only
//! replaces the task id.

use std::io::Write;
use std::path::{Path, PathBuf};

use titan_connector::config::TEMPLATE;

/// Why `init` wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("`{0}` already exists; use --force to overwrite it")]
    Exists(PathBuf),
    #[error("cannot write `{path}`: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Writes [`TEMPLATE`] to `path`. Without `force` an existing file is left alone: the
/// check and the creation are one step (`create_new`), so nothing is clobbered by a race.
pub fn write(path: &Path, force: bool) -> Result<(), InitError> {
    let io = |source| InitError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut f = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            InitError::Exists(path.to_path_buf())
        } else {
            io(e)
        }
    })?;
    f.write_all(TEMPLATE.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use titan_connector::config::{Config, Env, Overrides, env::vars};

    fn env() -> Env {
        Env::from_pairs([(vars::TITAN_TOKEN, "tok-test")])
    }

    #[test]
    fn the_starter_config_loads_and_states_the_real_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("titan.toml");
        write(&path, false).expect("written");
        let cfg = Config::load(&path, &env(), &Overrides::default()).expect("loads as is");

        // The same task with nothing else set: every value must be equal, or the
        // template documents a default that isn't one.
        let minimal = dir.path().join("minimal.toml");
        std::fs::write(
            &minimal,
            "[[tasks]]\nid = \"00000000-0000-4000-8000-000000000000\"\n",
        )
        .expect("write");
        let def = Config::load(&minimal, &env(), &Overrides::default()).expect("loads");
        assert_eq!(format!("{:?}", cfg.api), format!("{:?}", def.api));
        assert_eq!(cfg.store.url, def.store.url);
        assert_eq!(format!("{:?}", cfg.run), format!("{:?}", def.run));
        assert_eq!(format!("{:?}", cfg.wait), format!("{:?}", def.wait));
        assert_eq!(format!("{:?}", cfg.media), format!("{:?}", def.media));
        assert_eq!(format!("{:?}", cfg.tasks), format!("{:?}", def.tasks));
        assert_eq!(format!("{:?}", cfg.lineage), format!("{:?}", def.lineage));
        assert_eq!(format!("{:?}", cfg.metrics), format!("{:?}", def.metrics));
    }

    #[test]
    fn every_key_has_a_comment_above_it() {
        let lines: Vec<&str> = TEMPLATE.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            let is_key = !l.starts_with('#') && !l.starts_with('[') && l.contains(" = ");
            if is_key {
                assert!(
                    lines[i - 1].starts_with('#'),
                    "`{l}` has no comment above it"
                );
            }
        }
    }

    #[test]
    fn an_existing_file_is_kept_unless_forced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("titan.toml");
        std::fs::write(&path, "mine").expect("write");
        let err = write(&path, false).expect_err("must refuse");
        assert_eq!(
            err.to_string(),
            format!(
                "`{}` already exists; use --force to overwrite it",
                path.display()
            )
        );
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "mine");
        write(&path, true).expect("forced");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), TEMPLATE);
    }
}
