//! `sotto upload` and `sotto download`: files in a text channel, sealed on this device. The
//! relay stores only sealed bytes; the key travels in the (sealed) message that shares the file.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use sotto_client::chat::files::{self, Progress};
use sotto_client::chat::{self};

use crate::chat::{channel_session, synced_channel};

/// "512 bytes", "2.1 MB", "50 MB" (decimal units, as file managers show sizes).
pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64;
    let mut unit = 0;
    value /= 1000.0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if value >= 10.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Shows a transfer's progress: a line redrawn in place on a terminal, JSON lines with
/// `--json`, nothing otherwise (pipes and logs get the result only).
struct ProgressView {
    json: bool,
    terminal: bool,
    verb: &'static str,
    last_percent: Option<u64>,
}

impl ProgressView {
    fn new(json: bool, verb: &'static str) -> Self {
        Self {
            json,
            terminal: std::io::stderr().is_terminal(),
            verb,
            last_percent: None,
        }
    }

    fn show(&mut self, progress: Progress) {
        if self.json {
            let line = match progress {
                Progress::Sealing { total } => {
                    serde_json::json!({"event": "sealing", "bytes": total})
                }
                Progress::Moving { done, total } => {
                    serde_json::json!({"event": "progress", "done": done, "total": total})
                }
                Progress::Retrying { why } => serde_json::json!({"event": "retrying", "why": why}),
                Progress::Opening => serde_json::json!({"event": "checking"}),
            };
            println!("{line}");
            return;
        }
        match progress {
            Progress::Moving { done, total } if self.terminal => {
                let percent = (done * 100).checked_div(total).unwrap_or(100);
                if self.last_percent != Some(percent) {
                    self.last_percent = Some(percent);
                    eprint!(
                        "\r{} {percent:>3}%  {} of {}",
                        self.verb,
                        human_size(done),
                        human_size(total)
                    );
                    let _ = std::io::stderr().flush();
                }
            }
            Progress::Retrying { why } => {
                if self.last_percent.take().is_some() {
                    eprintln!();
                }
                eprintln!("{why}; trying again");
            }
            _ => {}
        }
    }

    fn done(&mut self) {
        if self.terminal && self.last_percent.take().is_some() {
            eprintln!();
        }
    }
}

/// Seals and uploads the file at `path` and posts it to `channel` with `caption`.
pub(crate) async fn upload(
    server: Option<&str>,
    channel: &str,
    path: &Path,
    caption: &str,
    json: bool,
) -> Result<()> {
    if !path.is_file() {
        bail!(
            "{} is not a file you can read (folders cannot be shared; zip them first)",
            path.display()
        );
    }
    let (profile, session, channel_id, name) = channel_session(server, channel).await?;
    let identity = profile.identity(|notice| eprintln!("{notice}"))?;
    let mut view = ProgressView::new(json, "Uploading");
    let result = files::share_file(
        &session,
        &identity,
        channel_id,
        path,
        caption,
        &profile.transfers_dir(),
        &mut |progress| view.show(progress),
    )
    .await;
    view.done();
    let (posted, file) = result.with_context(|| format!("could not share {}", path.display()))?;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "event": "shared", "channel": name, "message": posted.seq,
                "name": file.name, "bytes": file.size,
            })
        );
    } else {
        println!(
            "Shared {} ({}) in {name} (message {}).",
            chat::printable(&file.name),
            human_size(file.size),
            posted.seq
        );
    }
    Ok(())
}

/// A path in `directory` for `name` that does not exist yet: `name`, or `name (1)`, ….
pub(crate) fn free_path(directory: &Path, name: &str) -> PathBuf {
    let candidate = directory.join(name);
    if !candidate.exists() {
        return candidate;
    }
    let (stem, extension) = match name.rsplit_once('.') {
        Some((stem, extension)) if !stem.is_empty() => (stem, format!(".{extension}")),
        _ => (name, String::new()),
    };
    (1..)
        .map(|n| directory.join(format!("{stem} ({n}){extension}")))
        .find(|path| !path.exists())
        .expect("some number is free")
}

/// What `sotto download` is asked for.
pub(crate) struct Wanted<'a> {
    /// The message carrying the file.
    pub(crate) seq: u64,
    /// A directory or a new file's path; the current directory by default.
    pub(crate) out: Option<&'a Path>,
    /// The preview instead of the file.
    pub(crate) preview: bool,
    /// JSON lines.
    pub(crate) json: bool,
}

/// Fetches the file message `seq` of `channel` carries (or saves its preview).
pub(crate) async fn download(
    server: Option<&str>,
    channel: &str,
    wanted: Wanted<'_>,
) -> Result<()> {
    let Wanted {
        seq,
        out,
        preview,
        json,
    } = wanted;
    let here = synced_channel(server, channel).await?;
    let name = &here.name;
    let file = here.store
        .attachment(&here.server_name, here.channel_id, seq)?
        .with_context(|| {
            format!(
                "message {seq} in {name} carries no file you can open (`sotto history {channel}` shows which do)"
            )
        })?;
    if preview {
        let bytes = file
            .thumbnail
            .as_deref()
            .with_context(|| format!("{} came without a preview", file.name))?;
        let name = format!("{}.preview.jpg", file.name);
        let destination = match out {
            Some(path) if path.is_dir() => free_path(path, &name),
            Some(path) if path.exists() => {
                bail!("{} exists already; pick another name", path.display())
            }
            Some(path) => path.to_owned(),
            None => free_path(&std::env::current_dir()?, &name),
        };
        std::fs::write(&destination, bytes)
            .with_context(|| format!("cannot write {}", destination.display()))?;
        println!(
            "Saved the preview of {} to {}.",
            chat::printable(&file.name),
            destination.display()
        );
        return Ok(());
    }
    let destination = match out {
        Some(path) if path.is_dir() => free_path(path, &file.name),
        Some(path) if path.exists() => {
            bail!("{} exists already; pick another name", path.display())
        }
        Some(path) => path.to_owned(),
        None => free_path(&std::env::current_dir()?, &file.name),
    };
    let mut view = ProgressView::new(json, "Downloading");
    let result = files::fetch_file(
        &here.session,
        &file,
        &destination,
        &here.profile.transfers_dir(),
        &mut |progress| view.show(progress),
    )
    .await;
    view.done();
    let bytes = result.with_context(|| format!("could not download {}", file.name))?;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "event": "downloaded", "path": destination, "bytes": bytes, "verified": true,
            })
        );
    } else {
        println!(
            "Saved {} ({}) to {}; its SHA-256 matches what the sender sealed.",
            chat::printable(&file.name),
            human_size(bytes),
            destination.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_free_names() {
        assert_eq!(human_size(512), "512 bytes");
        assert_eq!(human_size(2_100_000), "2.1 MB");
        assert_eq!(human_size(50_000_000), "50 MB");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), "x").unwrap();
        std::fs::write(dir.path().join("a (1).txt"), "x").unwrap();
        assert_eq!(free_path(dir.path(), "a.txt"), dir.path().join("a (2).txt"));
        assert_eq!(free_path(dir.path(), "b"), dir.path().join("b"));
    }
}
