//! `completions` and `man`: generated from the clap definition, so they can't drift from
//! the real flags.

use std::io::Write;

use clap::CommandFactory;

use super::Cli;

/// Name the scripts and the page are generated for (the installed binary's name).
const BIN: &str = "titan-connector";

/// Writes the completion script for `shell`.
pub fn completions(shell: clap_complete::Shell, out: &mut dyn Write) {
    clap_complete::generate(shell, &mut Cli::command(), BIN, out);
}

/// Writes one man page (roff) covering every command: the usual sections for the
/// program, then a section per command (`TITAN-CONNECTOR RUN`, …) with its synopsis and
/// options, so `man titan-connector` alone documents every flag.
pub fn man(out: &mut dyn Write) -> std::io::Result<()> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let page = clap_mangen::Man::new(cmd.clone());
    page.render_title(out)?;
    page.render_name_section(out)?;
    page.render_synopsis_section(out)?;
    page.render_description_section(out)?;
    page.render_options_section(out)?;
    // The commands are sections of this page, not pages of their own.
    let mut buf = Vec::new();
    page.render_subcommands_section(&mut buf)?;
    let mut list = String::from_utf8_lossy(&buf).into_owned();
    for sub in cmd.get_subcommands() {
        let name = sub.get_name().replace('-', "\\-");
        list = list.replace(
            &format!("titan\\-connector\\-{name}(1)"),
            &format!("titan\\-connector {name}"),
        );
    }
    out.write_all(list.as_bytes())?;
    for sub in cmd.get_subcommands() {
        command_section(sub, out)?;
    }
    page.render_version_section(out)
}

/// A command's own section; nested commands (`schema pull`) get theirs after it.
fn command_section(cmd: &clap::Command, out: &mut dyn Write) -> std::io::Result<()> {
    let name = cmd.get_bin_name().unwrap_or(cmd.get_name()).to_uppercase();
    writeln!(out, ".SH \"{name}\"")?;
    let page = clap_mangen::Man::new(cmd.clone());
    let mut buf = Vec::new();
    page.render_description_section(&mut buf)?;
    page.render_synopsis_section(&mut buf)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        page.render_options_section(&mut buf)?;
    }
    out.write_all(&demote_headings(&buf))?;
    for sub in cmd.get_subcommands() {
        command_section(sub, out)?;
    }
    Ok(())
}

/// `.SH X` → `.SS X`: a command's sections become subsections of its own section.
fn demote_headings(roff: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(roff);
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        // The command's heading introduces its description, and the page's preamble
        // (`.ie`/`.el` defining Aq) is already at the top.
        if line.trim_start() == ".SH DESCRIPTION"
            || line.starts_with(".ie \\n(.g .ds Aq")
            || line.starts_with(".el .ds Aq")
        {
            continue;
        }
        match line.strip_prefix(".SH ") {
            Some(rest) => {
                out.push_str(".SS ");
                out.push_str(rest);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bash_completion_names_every_subcommand() {
        let mut out = Vec::new();
        completions(clap_complete::Shell::Bash, &mut out);
        let script = String::from_utf8(out).expect("utf-8");
        assert!(script.starts_with("_titan__connector() {"), "{script}");
        for sub in [
            "run",
            "check",
            "convert",
            "schema",
            "init",
            "completions",
            "man",
        ] {
            assert!(
                script.contains(&format!("titan__connector,{sub})")),
                "no `{sub}` in the bash completion"
            );
        }
        assert!(script.contains("--dry-run"));
        assert!(
            script.contains(
                "complete -F _titan__connector -o bashdefault -o default titan-connector"
            )
        );
    }

    #[test]
    fn the_man_page_documents_the_run_options() {
        let mut out = Vec::new();
        man(&mut out).expect("rendered");
        let page = String::from_utf8(out).expect("utf-8");
        assert!(page.contains(".TH titan-connector 1 "), "{page}");
        assert!(
            page.contains("titan\\-connector run\n"),
            "SUBCOMMANDS names the section"
        );
        assert!(
            !page.contains("titan\\-connector\\-run(1)"),
            "no page of its own"
        );
        assert!(page.contains(".SH \"TITAN-CONNECTOR RUN\""), "{page}");
        let run = page
            .split(".SH \"TITAN-CONNECTOR RUN\"")
            .nth(1)
            .and_then(|s| s.split(".SH ").next())
            .expect("run section");
        for flag in [
            "\\-\\-concurrency",
            "\\-\\-report",
            "\\-\\-shard",
            "\\-\\-dry\\-run",
            "\\-\\-store",
            "\\-\\-tasks",
            "\\-\\-config",
        ] {
            assert!(run.contains(flag), "run section lacks {flag}:\n{run}");
        }
        assert!(page.contains(".SH \"TITAN-CONNECTOR SCHEMA PULL\""));
        assert!(page.contains(".SH VERSION"));
    }
}
