//! Interpolation and layering (file < environment < flags), through `Config::from_toml`.

use std::path::Path;
use std::time::Duration;

use super::*;
use crate::media::MediaLayout;

const TOKEN: &str = "tok-SECRET-4b1d";
const TASK: &str = "[[tasks]]\nid = \"task-1\"\n";

fn env(pairs: &[(&str, &str)]) -> Env {
    let mut all = vec![(vars_token(), TOKEN.to_string())];
    all.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Env::from_pairs(all)
}

fn vars_token() -> String {
    env::vars::TITAN_TOKEN.to_string()
}

fn load(text: &str, env: &Env, overrides: &Overrides) -> Result<Config, ConfigError> {
    Config::from_toml(text, Path::new("/etc/titan/titan.toml"), env, overrides)
}

#[test]
fn variables_in_string_values_are_replaced() {
    let text = format!(
        "[store]\nurl = \"s3://${{BUCKET}}/raw\"\n[wait]\nmax_wait = \"${{MAX_WAIT:-1h}}\"\npoll_interval = \"${{POLL:-2s}}\"\n{TASK}"
    );
    let cfg = load(
        &text,
        &env(&[("BUCKET", "lake"), ("POLL", "5s")]),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(cfg.store.url.as_str(), "s3://lake/raw");
    assert_eq!(cfg.wait.max_wait, Duration::from_secs(3600));
    assert_eq!(cfg.wait.initial_interval, Duration::from_secs(5));
}

#[test]
fn an_unset_variable_names_the_file_line_and_variable() {
    let text = format!("[api]\nauth = \"bearer\"\n\n[store]\nurl = \"s3://${{BUCKET}}\"\n{TASK}");
    let err = load(&text, &env(&[]), &Overrides::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid config file `/etc/titan/titan.toml`, line 5: environment variable `BUCKET` is not set (write `${BUCKET:-default}` to give a default)"
    );
}

#[test]
fn a_dollar_dollar_brace_is_a_literal() {
    let text = format!("[media]\nallowed_hosts = [\"$${{HOST}}\", \"${{HOST}}\"]\n{TASK}");
    let cfg = load(&text, &env(&[("HOST", "cdn.test")]), &Overrides::default()).unwrap();
    assert_eq!(cfg.api.media_allowed_hosts, ["${HOST}", "cdn.test"]);
}

#[test]
fn the_token_is_never_read_from_the_file_nor_shown_when_interpolated() {
    // There is no token key: `${TITAN_TOKEN}` can't make one.
    let text = format!("[api]\ntoken = \"${{TITAN_TOKEN}}\"\n{TASK}");
    let err = load(&text, &env(&[]), &Overrides::default()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("unknown field `token`"), "{msg}");
    assert!(!msg.contains(TOKEN), "{msg}");

    // A message quoting a value that holds it shows `[redacted]` instead.
    let text = format!("[api]\nurl = \"nope ${{TITAN_TOKEN}}\"\n{TASK}");
    let msg = load(&text, &env(&[]), &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(!msg.contains(TOKEN), "{msg}");
    assert!(msg.contains("`nope [redacted]` is not a URL"), "{msg}");
}

#[test]
fn environment_overrides_the_file_and_flags_override_both() {
    let text = format!(
        "[run]\nconcurrency = 2\nbatch_rows = 100\nfile_rows = 1000\n[store]\nurl = \"s3://file/x\"\n{TASK}"
    );
    let none = Overrides::default();
    let cfg = load(&text, &env(&[]), &none).unwrap();
    assert_eq!(
        (cfg.run.concurrency, cfg.run.batch_rows, cfg.run.file_rows),
        (2, 100, 1000)
    );
    assert_eq!(cfg.store.url.as_str(), "s3://file/x");

    let e = env(&[
        ("TITAN_CONNECTOR_RUN_CONCURRENCY", "3"),
        ("TITAN_CONNECTOR_RUN_BATCH_ROWS", "200"),
        ("TITAN_CONNECTOR_STORE_URL", "s3://env/y"),
        ("TITAN_CONNECTOR_WAIT_MAX_WAIT", "5m"),
        ("TITAN_CONNECTOR_MEDIA_LAYOUT", "content-addressed"),
        ("TITAN_CONNECTOR_API_AUTH", "x-api-key"),
        ("TITAN_CONNECTOR_MEDIA_ENABLED", "false"),
    ]);
    let cfg = load(&text, &e, &none).unwrap();
    assert_eq!(
        (cfg.run.concurrency, cfg.run.batch_rows, cfg.run.file_rows),
        (3, 200, 1000)
    );
    assert_eq!(cfg.store.url.as_str(), "s3://env/y");
    assert_eq!(cfg.wait.max_wait, Duration::from_secs(300));
    assert_eq!(cfg.media.settings.layout, MediaLayout::ContentAddressed);
    assert_eq!(cfg.api.auth, crate::api::AuthScheme::XApiKey);
    assert!(!cfg.media.settings.enabled);

    let flags = Overrides {
        concurrency: Some(5),
        store: Some("s3://flag/z".to_string()),
        ..Overrides::default()
    };
    let cfg = load(&text, &e, &flags).unwrap();
    assert_eq!(cfg.run.concurrency, 5);
    assert_eq!(cfg.run.batch_rows, 200, "no flag: the environment stays");
    assert_eq!(cfg.store.url.as_str(), "s3://flag/z");
}

#[test]
fn short_names_still_work_and_the_long_name_wins() {
    let short = env(&[
        ("TITAN_CONNECTOR_CONCURRENCY", "7"),
        ("TITAN_CONNECTOR_STORE", "s3://short/a"),
        ("TITAN_API_URL", "https://titan.example"),
    ]);
    let cfg = load(TASK, &short, &Overrides::default()).unwrap();
    assert_eq!(cfg.run.concurrency, 7);
    assert_eq!(cfg.store.url.as_str(), "s3://short/a");
    assert_eq!(cfg.api.base_url.as_str(), "https://titan.example/");

    let both = env(&[
        ("TITAN_CONNECTOR_CONCURRENCY", "7"),
        ("TITAN_CONNECTOR_RUN_CONCURRENCY", "8"),
    ]);
    let cfg = load(TASK, &both, &Overrides::default()).unwrap();
    assert_eq!(cfg.run.concurrency, 8);
}

#[test]
fn an_invalid_environment_value_names_the_variable() {
    let cases = [
        (
            "TITAN_CONNECTOR_RUN_BATCH_ROWS",
            "lots",
            "invalid environment variable `TITAN_CONNECTOR_RUN_BATCH_ROWS`: `lots` is not a valid number here",
        ),
        (
            "TITAN_CONNECTOR_CONCURRENCY",
            "-1",
            "invalid environment variable `TITAN_CONNECTOR_CONCURRENCY`: `-1` is not a valid number here",
        ),
        (
            "TITAN_CONNECTOR_MEDIA_ENABLED",
            "perhaps",
            "invalid environment variable `TITAN_CONNECTOR_MEDIA_ENABLED`: `perhaps` is not `true` or `false`",
        ),
    ];
    for (var, value, want) in cases {
        let err = load(TASK, &env(&[(var, value)]), &Overrides::default()).unwrap_err();
        assert_eq!(err.to_string(), want);
    }
    let err = load(
        TASK,
        &env(&[("TITAN_CONNECTOR_RUN_FORMAT", "xml")]),
        &Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("invalid environment variable `TITAN_CONNECTOR_RUN_FORMAT`: `xml`: unknown variant `xml`"),
        "{err}"
    );
    let err = load(
        TASK,
        &env(&[("TITAN_CONNECTOR_WAIT_MAX_WAIT", "soon")]),
        &Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with(
            "invalid environment variable `TITAN_CONNECTOR_WAIT_MAX_WAIT`: `soon` is not a duration"
        ),
        "{err}"
    );
}

#[test]
fn a_zero_from_the_environment_is_caught_like_one_from_the_file() {
    let err = load(
        TASK,
        &env(&[("TITAN_CONNECTOR_RUN_FILE_ROWS", "0")]),
        &Overrides::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid environment variable `TITAN_CONNECTOR_RUN_FILE_ROWS`: must be at least 1"
    );
    // The same zero in the file names the file and key.
    let err = load(
        &format!("[run]\nfile_rows = 0\n{TASK}"),
        &env(&[]),
        &Overrides::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid `run.file_rows` in `/etc/titan/titan.toml`: must be at least 1"
    );
}

#[test]
fn combining_is_on_by_default_set_in_mib_and_off_at_zero() {
    let cfg = load(TASK, &env(&[]), &Overrides::default()).unwrap();
    assert_eq!(
        cfg.combine,
        crate::sink::combine::CombineSettings::default()
    );
    assert_eq!(
        (cfg.combine.below_bytes, cfg.combine.target_bytes),
        (8 << 20, 64 << 20)
    );
    let text = format!("[run]\ncombine_below_mb = 0.5\ncombine_target_mb = 2\n{TASK}");
    let cfg = load(&text, &env(&[]), &Overrides::default()).unwrap();
    assert_eq!(
        (cfg.combine.below_bytes, cfg.combine.target_bytes),
        (512 * 1024, 2 << 20)
    );
    let cfg = load(
        &text,
        &env(&[("TITAN_CONNECTOR_RUN_COMBINE_BELOW_MB", "0")]),
        &Overrides::default(),
    )
    .unwrap();
    assert!(!cfg.combine.enabled());
    let err = load(
        TASK,
        &env(&[("TITAN_CONNECTOR_RUN_COMBINE_TARGET_MB", "0")]),
        &Overrides::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid environment variable `TITAN_CONNECTOR_RUN_COMBINE_TARGET_MB`: 0 is not a size in MiB greater than 0"
    );
    let err = load(
        &format!("[run]\ncombine_below_mb = -1\n{TASK}"),
        &env(&[]),
        &Overrides::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("`run.combine_below_mb`"), "{err}");
}

/// Issue 13.3, 13.9, 13.10: the new keys, from the file and from the environment.
#[test]
fn budget_source_body_timeout_and_spool_keys() {
    let cfg = load(TASK, &env(&[]), &Overrides::default()).unwrap();
    assert_eq!(cfg.api.rate_limit_per_minute, Some(100));
    assert!(cfg.api.rate_limit_from_server, "unset: follow the server");
    assert_eq!(cfg.api.body_timeout, Duration::from_secs(120));
    assert_eq!(cfg.media.spool.dir, std::env::temp_dir());
    assert_eq!(cfg.media.spool.max_bytes, 10 << 30);

    let text = format!(
        "[api]\nrate_limit_per_minute = 300\nbody_timeout = \"45s\"\n[media]\nspool_dir = \"spool\"\nspool_max_bytes = 1000\n{TASK}"
    );
    let cfg = load(&text, &env(&[]), &Overrides::default()).unwrap();
    assert_eq!(cfg.api.rate_limit_per_minute, Some(300));
    assert!(!cfg.api.rate_limit_from_server, "set: held to as set");
    assert_eq!(cfg.api.body_timeout, Duration::from_secs(45));
    assert_eq!(cfg.media.spool.dir, Path::new("/etc/titan/spool"));
    assert_eq!(cfg.media.spool.max_bytes, 1000);

    let cfg = load(
        TASK,
        &env(&[
            ("TITAN_CONNECTOR_API_BODY_TIMEOUT", "10s"),
            ("TITAN_CONNECTOR_MEDIA_SPOOL_DIR", "/scratch"),
            ("TITAN_CONNECTOR_MEDIA_SPOOL_MAX_BYTES", "5"),
        ]),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(cfg.api.body_timeout, Duration::from_secs(10));
    assert_eq!(cfg.media.spool.dir, Path::new("/scratch"));
    assert_eq!(cfg.media.spool.max_bytes, 5);

    for (text, key) in [
        ("[api]\nbody_timeout = \"0s\"\n", "api.body_timeout"),
        ("[media]\nspool_max_bytes = 0\n", "media.spool_max_bytes"),
    ] {
        let err = load(&format!("{text}{TASK}"), &env(&[]), &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains(key), "{err}");
    }
}
