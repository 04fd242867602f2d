//! `sotto tasks` and `sotto board`: the task board every member derives on its own device from
//! a text channel's messages, in the relay's order (the relay cannot read them).

use anyhow::{Result, bail};
use sotto_client::rights::Rights;
use sotto_client::tasks::Derived;
use sotto_client::tasks::board::Task;
use sotto_client::tasks::tags::TaskKind;

use crate::chat::{Names, SyncedChannel, names, synced_channel};

/// The board of a synced channel as this device's copy of it says, its tags judged by the
/// server's role book.
pub(crate) async fn derive(here: &SyncedChannel, names: &Names) -> Result<Derived> {
    let messages = here
        .store
        .latest(&here.server_name, here.channel_id, u32::MAX)?;
    let rights = Rights::load(&here.session).await;
    let user_exists = |wanted: &str| names.values().any(|name| name.eq_ignore_ascii_case(wanted));
    Ok(sotto_client::tasks::derive(
        &messages,
        here.channel_id,
        &rights,
        &user_exists,
    ))
}

/// What to list.
#[derive(Debug, Default)]
pub(crate) struct Filter {
    pub(crate) status: Option<String>,
    pub(crate) assignee: Option<String>,
    pub(crate) kind: Option<String>,
}

fn kind_of(word: &str) -> Result<TaskKind> {
    Ok(match word.to_ascii_lowercase().as_str() {
        "task" | "tasks" => TaskKind::Task,
        "bug" | "bugs" => TaskKind::Bug,
        "epic" | "epics" => TaskKind::Epic,
        other => bail!("no kind of task is called `{other}`: use task, bug or epic"),
    })
}

async fn derived(server: Option<&str>, channel: &str) -> Result<(SyncedChannel, Names, Derived)> {
    let here = synced_channel(server, channel).await?;
    let names = names(&here.session).await;
    let derived = derive(&here, &names).await?;
    Ok((here, names, derived))
}

/// One task on one line.
fn line(task: &Task) -> String {
    let mut line = format!(
        "{:>5}  {:<5} {:<13}  {}",
        task.id,
        task.kind.name(),
        task.status,
        sotto_client::chat::printable(&task.title)
    );
    if let Some(assignee) = &task.assignee {
        line.push_str(&format!("  @{assignee}"));
    }
    if let Some(priority) = task.priority {
        line.push_str(&format!("  {priority}"));
    }
    if let Some(severity) = task.severity {
        line.push_str(&format!("  {severity}"));
    }
    if let Some((year, month, day)) = task.due {
        line.push_str(&format!("  due {year:04}-{month:02}-{day:02}"));
    }
    line
}

/// `sotto tasks`: the channel's tasks, filtered.
pub(crate) async fn tasks(server: Option<&str>, channel: &str, filter: Filter) -> Result<()> {
    let kind = filter.kind.as_deref().map(kind_of).transpose()?;
    let (here, _, derived) = derived(server, channel).await?;
    let shown: Vec<&Task> = derived
        .board
        .tasks()
        .filter(|task| kind.is_none_or(|kind| task.kind == kind))
        .filter(|task| {
            filter
                .status
                .as_deref()
                .is_none_or(|status| task.status.eq_ignore_ascii_case(status))
        })
        .filter(|task| {
            filter.assignee.as_deref().is_none_or(|wanted| {
                task.assignee
                    .as_deref()
                    .is_some_and(|name| name.eq_ignore_ascii_case(wanted.trim_start_matches('@')))
            })
        })
        .collect();
    if shown.is_empty() {
        println!(
            "No tasks in {} match. A message starting with `#task <title>` (or #bug, #epic) \
             creates one.",
            here.name
        );
        return Ok(());
    }
    for task in shown {
        println!("{}", line(task));
    }
    Ok(())
}

/// Widest board column, in characters.
const COLUMN: usize = 24;

/// `text` cut to `width` characters, with an ellipsis where it was cut, and padded.
fn cell(text: &str, width: usize) -> String {
    let count = text.chars().count();
    if count <= width {
        return format!("{text}{}", " ".repeat(width - count));
    }
    let cut: String = text.chars().take(width - 1).collect();
    format!("{cut}…")
}

/// `sotto board`: the channel's tasks in columns by status, one board per kind.
pub(crate) async fn board(server: Option<&str>, channel: &str) -> Result<()> {
    let (here, _, derived) = derived(server, channel).await?;
    let mut any = false;
    for (kind, heading) in [
        (TaskKind::Epic, "Epics"),
        (TaskKind::Task, "Tasks"),
        (TaskKind::Bug, "Bugs"),
    ] {
        let tasks: Vec<&Task> = derived
            .board
            .tasks()
            .filter(|task| task.kind == kind)
            .collect();
        if tasks.is_empty() {
            continue;
        }
        any = true;
        println!("{heading} in {}", here.name);
        let columns: Vec<Vec<String>> = kind
            .statuses()
            .iter()
            .map(|status| {
                tasks
                    .iter()
                    .filter(|task| task.status == *status)
                    .map(|task| {
                        let who = task
                            .assignee
                            .as_deref()
                            .map_or(String::new(), |name| format!(" @{name}"));
                        format!(
                            "{} {}{who}",
                            task.id,
                            sotto_client::chat::printable(&task.title)
                        )
                    })
                    .collect()
            })
            .collect();
        let header: Vec<String> = kind
            .statuses()
            .iter()
            .zip(&columns)
            .map(|(status, column)| cell(&format!("{status} ({})", column.len()), COLUMN))
            .collect();
        println!("  {}", header.join(" │ ").trim_end());
        println!("  {}", vec!["─".repeat(COLUMN); columns.len()].join("─┼─"));
        let rows = columns.iter().map(Vec::len).max().unwrap_or(0);
        for row in 0..rows {
            let cells: Vec<String> = columns
                .iter()
                .map(|column| cell(column.get(row).map_or("", String::as_str), COLUMN))
                .collect();
            println!("  {}", cells.join(" │ ").trim_end());
        }
        println!();
    }
    if !any {
        println!(
            "No tasks in {} yet. A message starting with `#task <title>` (or #bug, #epic) creates \
             one; reply to it with `#status In Progress` to move it.",
            here.name
        );
    }
    Ok(())
}
