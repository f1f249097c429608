//! Live progress on a terminal: one line per execution in flight with its state
//! (waiting / exporting / committing), rows, bytes, rows/s and media files, and a line
//! per finished execution.
//!
//! Only for people watching: [`Progress::should_show`] turns it on when stderr is a
//! terminal, logs are text and `-q` is off. Otherwise every handle is a no-op, so the
//! pipeline calls it unconditionally and piped or JSON output never gets a redraw.
//! Log lines go through [`Progress::log_writer`], which clears the bars, prints the line
//! and redraws them, so logs and bars never garble each other.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::report::{Outcome, human_bytes};

/// How often a spinner moves (and the rate is recomputed) while nothing else changes.
const TICK: Duration = Duration::from_millis(120);

/// The run's progress display; cheap to clone (all clones share the bars).
#[derive(Clone, Default)]
pub struct Progress {
    inner: Option<Arc<Shared>>,
}

struct Shared {
    multi: MultiProgress,
    style: ProgressStyle,
    bars: Mutex<HashMap<String, ExecProgress>>,
}

impl Progress {
    /// Whether bars belong on stderr: a terminal, text logs and not `-q`.
    pub fn should_show(stderr_is_terminal: bool, text_logs: bool, quiet: bool) -> bool {
        stderr_is_terminal && text_logs && !quiet
    }

    /// Bars drawn on stderr.
    pub fn stderr() -> Self {
        let style = ProgressStyle::with_template("{spinner:.cyan} {prefix:.bold} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        Progress {
            inner: Some(Arc::new(Shared {
                multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                style,
                bars: Mutex::new(HashMap::new()),
            })),
        }
    }

    /// Nothing is ever drawn.
    pub fn disabled() -> Self {
        Progress { inner: None }
    }

    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// The line of `execution_id`, created on first use.
    pub fn execution(&self, execution_id: &str) -> ExecProgress {
        let Some(shared) = &self.inner else {
            return ExecProgress::default();
        };
        let mut bars = shared.bars.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = bars.get(execution_id) {
            return p.clone();
        }
        let bar = shared.multi.add(ProgressBar::new_spinner());
        bar.set_style(shared.style.clone());
        bar.set_prefix(short_id(execution_id));
        bar.enable_steady_tick(TICK);
        let p = ExecProgress {
            inner: Some(Arc::new(ExecShared {
                bar,
                multi: shared.multi.clone(),
                rows: AtomicU64::new(0),
                bytes: AtomicU64::new(0),
                media: AtomicU64::new(0),
                state: Mutex::new(Phase {
                    state: State::Waiting,
                    export: None,
                }),
            })),
        };
        p.redraw();
        bars.insert(execution_id.to_string(), p.clone());
        p
    }

    /// Ends the line of `execution_id` with its outcome: the bar goes, a line stays.
    pub fn finish(&self, execution_id: &str, outcome: Outcome) {
        let Some(shared) = &self.inner else {
            return;
        };
        let p = shared
            .bars
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(execution_id);
        if let Some(p) = p {
            p.finish(outcome);
        }
    }

    /// Removes every line still shown: executions abandoned by an interrupted or failed
    /// run never reach [`Progress::finish`], and the summary must not print under them.
    pub fn clear(&self) {
        let Some(shared) = &self.inner else {
            return;
        };
        let mut bars = shared.bars.lock().unwrap_or_else(|p| p.into_inner());
        for (_, p) in bars.drain() {
            if let Some(s) = &p.inner {
                s.bar.finish_and_clear();
                s.multi.remove(&s.bar);
            }
        }
    }

    /// A `tracing` writer for stderr that keeps the bars intact.
    pub fn log_writer(&self) -> LogWriter {
        LogWriter {
            multi: self.inner.as_ref().map(|s| s.multi.clone()),
        }
    }
}

/// Where an execution is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting,
    Exporting,
    Committing,
}

impl State {
    fn label(self) -> &'static str {
        match self {
            State::Waiting => "waiting",
            State::Exporting => "exporting",
            State::Committing => "committing",
        }
    }
}

/// One execution's line; a no-op when progress is off. Clones share the line.
#[derive(Clone, Default)]
pub struct ExecProgress {
    inner: Option<Arc<ExecShared>>,
}

struct ExecShared {
    bar: ProgressBar,
    multi: MultiProgress,
    rows: AtomicU64,
    bytes: AtomicU64,
    media: AtomicU64,
    state: Mutex<Phase>,
}

struct Phase {
    state: State,
    /// When the export began and, once committing, ended: rows/s is over this span.
    export: Option<(Instant, Option<Instant>)>,
}

impl ExecProgress {
    /// A handle that draws nothing (for `convert`, tests).
    pub fn none() -> Self {
        ExecProgress::default()
    }

    /// An export (attempt) starts: counters restart, as the export is read from the start.
    pub fn exporting(&self) {
        if let Some(s) = &self.inner {
            s.rows.store(0, Ordering::Relaxed);
            s.bytes.store(0, Ordering::Relaxed);
            s.media.store(0, Ordering::Relaxed);
            self.set_state(State::Exporting);
        }
    }

    /// The export's files are being moved into place and the manifest written.
    pub fn committing(&self) {
        self.set_state(State::Committing);
    }

    /// Bytes of the export read.
    pub fn add_bytes(&self, n: u64) {
        if let Some(s) = &self.inner {
            s.bytes.fetch_add(n, Ordering::Relaxed);
            self.redraw();
        }
    }

    /// Rows handed to the Parquet writer.
    pub fn add_rows(&self, n: u64) {
        if let Some(s) = &self.inner {
            s.rows.fetch_add(n, Ordering::Relaxed);
            self.redraw();
        }
    }

    /// Media files stored.
    pub fn add_media(&self, n: u64) {
        if let Some(s) = &self.inner {
            s.media.fetch_add(n, Ordering::Relaxed);
            self.redraw();
        }
    }

    fn set_state(&self, state: State) {
        if let Some(s) = &self.inner {
            let mut phase = s.state.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            phase.export = match (state, phase.export) {
                (State::Exporting, _) => Some((now, None)),
                (State::Committing, Some((start, _))) => Some((start, Some(now))),
                (_, export) => export,
            };
            phase.state = state;
            drop(phase);
            self.redraw();
        }
    }

    fn redraw(&self) {
        if let Some(s) = &self.inner {
            s.bar.set_message(self.line(None));
        }
    }

    /// `exporting   12 000 rows · 1.2 MiB · 8 400 rows/s · 3 media`.
    fn line(&self, outcome: Option<Outcome>) -> String {
        let Some(s) = &self.inner else {
            return String::new();
        };
        let (state, export) = {
            let phase = s.state.lock().unwrap_or_else(|p| p.into_inner());
            (phase.state, phase.export)
        };
        let rows = s.rows.load(Ordering::Relaxed);
        let label = match outcome {
            Some(o) => outcome_label(o),
            None => state.label(),
        };
        if state == State::Waiting {
            return format!("{label:<11}");
        }
        let secs = match export {
            Some((start, end)) => end.unwrap_or_else(Instant::now).duration_since(start),
            None => Duration::ZERO,
        }
        .as_secs_f64();
        let rate = if secs > 0.0 {
            (rows as f64 / secs) as u64
        } else {
            0
        };
        format!(
            "{label:<11} {rows} rows · {} · {rate} rows/s · {} media",
            human_bytes(s.bytes.load(Ordering::Relaxed)),
            s.media.load(Ordering::Relaxed)
        )
    }

    fn finish(&self, outcome: Outcome) {
        if let Some(s) = &self.inner {
            let line = format!("{} {}", s.bar.prefix(), self.line(Some(outcome)));
            // Printed above the bars; nothing is printed when the target is hidden.
            let _ = s.multi.println(line.trim_end());
            s.bar.finish_and_clear();
            s.multi.remove(&s.bar);
        }
    }
}

fn outcome_label(o: Outcome) -> &'static str {
    match o {
        Outcome::Ingested => "ingested",
        Outcome::AlreadyIngested => "skipped",
        Outcome::NoResults => "no results",
        Outcome::Failed => "failed",
        Outcome::Planned => "planned",
        Outcome::Leased => "leased by another run",
    }
}

/// The first 8 characters of an id: enough to tell executions apart on one screen.
fn short_id(id: &str) -> String {
    id.chars().take(8).collect()
}

/// Writes log lines to stderr, above the bars when there are any.
#[derive(Clone)]
pub struct LogWriter {
    multi: Option<MultiProgress>,
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &self.multi {
            // tracing's fmt layer writes one whole event per call: clear the bars,
            // write it, redraw.
            Some(m) => m.suspend(|| std::io::stderr().write_all(buf).map(|()| buf.len())),
            None => std::io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_only_on_a_terminal_with_text_logs_and_without_quiet() {
        assert!(Progress::should_show(true, true, false));
        assert!(!Progress::should_show(false, true, false), "piped stderr");
        assert!(
            !Progress::should_show(true, false, false),
            "--log-format json"
        );
        assert!(!Progress::should_show(true, true, true), "-q");
    }

    #[test]
    fn a_disabled_display_hands_out_no_op_lines() {
        let p = Progress::disabled();
        let e = p.execution("exec-1");
        e.exporting();
        e.add_rows(10);
        assert!(e.inner.is_none());
        assert_eq!(e.line(None), "");
        p.finish("exec-1", Outcome::Ingested);
    }

    #[test]
    fn a_line_counts_rows_bytes_and_media_and_restarts_with_each_export() {
        // Drawn to a hidden target: the text is what a terminal would get.
        let p = Progress {
            inner: Some(Arc::new(Shared {
                multi: MultiProgress::with_draw_target(ProgressDrawTarget::hidden()),
                style: ProgressStyle::default_spinner(),
                bars: Mutex::new(HashMap::new()),
            })),
        };
        let e = p.execution("0123456789abcdef");
        assert_eq!(e.line(None).trim_end(), "waiting");
        e.exporting();
        e.add_rows(100);
        e.add_bytes(2048);
        e.add_media(3);
        let line = e.line(None);
        assert!(
            line.starts_with("exporting   100 rows · 2.0 KiB · "),
            "{line}"
        );
        assert!(line.ends_with(" rows/s · 3 media"), "{line}");
        let again = p.execution("0123456789abcdef");
        assert!(
            matches!((&again.inner, &e.inner), (Some(a), Some(b)) if Arc::ptr_eq(a, b)),
            "the same line"
        );
        e.exporting();
        assert!(e.line(None).starts_with("exporting   0 rows · 0 B · "));
        e.committing();
        assert!(
            e.line(Some(Outcome::Ingested))
                .starts_with("ingested    0 rows")
        );
        if let Some(s) = &e.inner {
            assert_eq!(s.bar.prefix(), "01234567");
        }
        p.finish("0123456789abcdef", Outcome::Ingested);
        assert!(
            p.inner
                .as_ref()
                .is_some_and(|s| s.bars.lock().unwrap().is_empty())
        );

        let abandoned = p.execution("abandoned");
        p.clear();
        assert!(
            p.inner
                .as_ref()
                .is_some_and(|s| s.bars.lock().unwrap().is_empty())
        );
        assert!(abandoned.inner.is_some_and(|s| s.bar.is_finished()));
    }
}
