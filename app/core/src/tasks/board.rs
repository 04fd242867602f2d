//! A channel's task board, derived from its messages in the relay's order (event-sourced): the
//! same messages in the same order give every client the same board and the same ✅/❌ summary
//! for each message. Plain code: the caller opens the messages and says who may tag.

use std::collections::{BTreeMap, HashMap};

use super::tags::{Tag, TaskKind, parse};

/// A task on the board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// Its id: the seq of the message that created it.
    pub id: u64,
    /// Task, bug or epic.
    pub kind: TaskKind,
    /// Its title.
    pub title: String,
    /// Its status, one of its kind's.
    pub status: &'static str,
    /// Who it is assigned to (a member's name).
    pub assignee: Option<String>,
    /// High, Medium or Low.
    pub priority: Option<&'static str>,
    /// When it is due: year, month, day.
    pub due: Option<(u16, u8, u8)>,
    /// A bug's severity.
    pub severity: Option<&'static str>,
}

/// A message of the channel, as the board needs it.
#[derive(Debug, Clone, Copy)]
pub struct TagMessage<'a> {
    /// Its seq.
    pub seq: u64,
    /// Its text.
    pub text: &'a str,
    /// The message it replies to.
    pub reply_to: Option<u64>,
    /// Whether its author may apply tags in the channel.
    pub may_apply_tags: bool,
}

/// Every task of one channel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Board {
    tasks: BTreeMap<u64, Task>,
    /// The task each message belongs to (its creation, or a reply down its chain).
    belongs_to: HashMap<u64, u64>,
}

impl Board {
    /// An empty board.
    pub fn new() -> Self {
        Self::default()
    }

    /// The tasks, oldest first.
    pub fn tasks(&self) -> impl Iterator<Item = &Task> {
        self.tasks.values()
    }

    /// Task `id`.
    pub fn task(&self, id: u64) -> Option<&Task> {
        self.tasks.get(&id)
    }

    /// Applies the next message (in seq order); returns its summary, one line per tag (empty
    /// when it has none). `user_exists` says whether a member has a name.
    pub fn apply(
        &mut self,
        message: &TagMessage<'_>,
        user_exists: &dyn Fn(&str) -> bool,
    ) -> Vec<String> {
        let replied = message
            .reply_to
            .and_then(|seq| self.belongs_to.get(&seq).copied());
        let found = parse(message.text);
        if found.is_empty() {
            if let Some(task) = replied {
                self.belongs_to.insert(message.seq, task);
            }
            return Vec::new();
        }
        if !message.may_apply_tags {
            return vec!["❌ You may not apply tags in this channel; ask an admin".into()];
        }
        let mut summary = Vec::with_capacity(found.len());
        let mut target = replied;
        let mut created = false;
        for found in found {
            let tag = match found.tag {
                Ok(tag) => tag,
                Err(error) => {
                    summary.push(error.to_string());
                    continue;
                }
            };
            if let Tag::Create { kind, title } = tag {
                if created {
                    summary.push("❌ One task per message; send another for the next".into());
                    continue;
                }
                created = true;
                let task = Task {
                    id: message.seq,
                    kind,
                    status: kind.statuses()[0],
                    title,
                    assignee: None,
                    priority: None,
                    due: None,
                    severity: None,
                };
                summary.push(format!(
                    "✅ Created {} {}: {}",
                    kind.name(),
                    message.seq,
                    task.title
                ));
                self.tasks.insert(message.seq, task);
                target = Some(message.seq);
                continue;
            }
            let Some(task) = target.and_then(|id| self.tasks.get_mut(&id)) else {
                summary.push(format!(
                    "❌ No task for #{}: reply to a task's message, or create one with #task",
                    found.name
                ));
                continue;
            };
            summary.push(change(task, tag, user_exists));
        }
        if let Some(task) = target {
            self.belongs_to.insert(message.seq, task);
        }
        summary
    }
}

/// Applies a management tag to `task`; the summary line.
fn change(task: &mut Task, tag: Tag, user_exists: &dyn Fn(&str) -> bool) -> String {
    match tag {
        Tag::Status(status) => match task.kind.statuses().iter().find(|s| **s == status) {
            Some(status) => {
                task.status = status;
                format!("✅ Status: {status}")
            }
            None => format!(
                "❌ Invalid status. Available: {}",
                task.kind.statuses().join(", ")
            ),
        },
        Tag::Assignee(user) if user_exists(&user) => {
            let line = format!("✅ Assignee: @{user}");
            task.assignee = Some(user);
            line
        }
        Tag::Assignee(user) => format!("❌ User @{user} not found"),
        Tag::Priority(priority) => {
            task.priority = Some(priority);
            format!("✅ Priority: {priority}")
        }
        Tag::Due { year, month, day } => {
            task.due = Some((year, month, day));
            format!("✅ Due: {year:04}-{month:02}-{day:02}")
        }
        Tag::Title(title) => {
            let line = format!("✅ Title: {title}");
            task.title = title;
            line
        }
        Tag::Severity(severity) if task.kind == TaskKind::Bug => {
            task.severity = Some(severity);
            format!("✅ Severity: {severity}")
        }
        Tag::Severity(_) => "❌ Severity is for bugs only".into(),
        Tag::Create { .. } => "❌ One task per message; send another for the next".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(seq: u64, text: &str, reply_to: Option<u64>) -> TagMessage<'_> {
        TagMessage {
            seq,
            text,
            reply_to,
            may_apply_tags: true,
        }
    }

    fn members(name: &str) -> bool {
        ["ada", "bob"].contains(&name)
    }

    #[test]
    fn tags_create_and_change_tasks_and_say_what_happened() {
        let mut board = Board::new();
        assert_eq!(
            board.apply(
                &message(
                    1,
                    "#bug Crash on start\n#severity Critical\n#assignee @ada",
                    None
                ),
                &members
            ),
            [
                "✅ Created bug 1: Crash on start",
                "✅ Severity: Critical",
                "✅ Assignee: @ada"
            ]
        );
        // Management tags in a reply apply to the reply's task, also down a chain; each tag
        // on its own (partial application).
        assert!(
            board
                .apply(&message(2, "on it", Some(1)), &members)
                .is_empty()
        );
        assert_eq!(
            board.apply(
                &message(
                    3,
                    "#status Investigating\n#assignee @nonexistent\n#priority High",
                    Some(2)
                ),
                &members
            ),
            [
                "✅ Status: Investigating",
                "❌ User @nonexistent not found",
                "✅ Priority: High"
            ]
        );
        assert_eq!(
            board.apply(&message(4, "#status Done", Some(1)), &members),
            ["❌ Invalid status. Available: New, Investigating, Fixed, Verified"]
        );
        let bug = board.task(1).unwrap();
        assert_eq!(
            (
                bug.status,
                bug.assignee.as_deref(),
                bug.priority,
                bug.severity
            ),
            ("Investigating", Some("ada"), Some("High"), Some("Critical"))
        );

        // A task's own statuses; severity is for bugs; no task, no change.
        assert_eq!(
            board.apply(
                &message(5, "#task Write docs\n#status In Progress", None),
                &members
            ),
            ["✅ Created task 5: Write docs", "✅ Status: In Progress"]
        );
        assert_eq!(
            board.apply(
                &message(6, "#severity Minor\n#due 2026-12-31", Some(5)),
                &members
            ),
            ["❌ Severity is for bugs only", "✅ Due: 2026-12-31"]
        );
        assert_eq!(
            board.apply(&message(7, "#status Done", None), &members),
            ["❌ No task for #status: reply to a task's message, or create one with #task"]
        );
        assert_eq!(
            board.apply(&message(8, "#task One\n#task Two", None), &members),
            [
                "✅ Created task 8: One",
                "❌ One task per message; send another for the next"
            ]
        );
        // Without the permission nothing applies; text and case-different tags are just text.
        let mut denied = message(9, "#status Done", Some(5));
        denied.may_apply_tags = false;
        assert_eq!(
            board.apply(&denied, &members),
            ["❌ You may not apply tags in this channel; ask an admin"]
        );
        assert!(
            board
                .apply(&message(10, "#Status Done", Some(5)), &members)
                .is_empty()
        );
        assert_eq!(board.task(5).unwrap().status, "In Progress");
        let ids: Vec<u64> = board.tasks().map(|task| task.id).collect();
        assert_eq!(ids, [1, 5, 8]);
    }

    #[test]
    fn the_same_messages_in_the_same_order_give_the_same_board() {
        let texts = [
            (1, "#task A", None),
            (2, "#status In Progress", Some(1)),
            (3, "#epic B\n#status Completed", None),
            (4, "#title A, renamed", Some(2)),
        ];
        let build = || {
            let mut board = Board::new();
            let summaries: Vec<Vec<String>> = texts
                .iter()
                .map(|(seq, text, reply)| board.apply(&message(*seq, text, *reply), &members))
                .collect();
            (board, summaries)
        };
        let (first, first_summaries) = build();
        let (second, second_summaries) = build();
        assert_eq!(first, second);
        assert_eq!(first_summaries, second_summaries);
        assert_eq!(first.task(1).unwrap().title, "A, renamed");
        assert_eq!(first.task(3).unwrap().status, "Completed");
    }
}
