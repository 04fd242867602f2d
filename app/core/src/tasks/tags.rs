//! The task tags typed in chat, parsed exactly as the seed product does: plain code, no state.
//!
//! - A tag counts only at the start of a line: the message's first line or any line of its own
//!   (`please #status Done` is text). One tag per line; its value is the rest of the line.
//! - Names are case-sensitive and only known ones count (`#Status` and `#foo` are text).
//! - Each tag is checked on its own: [`parse`] returns every tag found, each valid or with the
//!   error a person reads (partial application: valid ones apply, invalid ones are reported).
//!
//! What needs the board (a status that fits the task's kind, a user who exists, severity only
//! for bugs) is checked when the tag is applied ([`super::board`]).

/// What a task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskKind {
    /// `#task`.
    Task,
    /// `#bug`.
    Bug,
    /// `#epic`.
    Epic,
}

impl TaskKind {
    /// The statuses a task of this kind moves through, in order; the first is where it starts.
    pub fn statuses(self) -> &'static [&'static str] {
        match self {
            Self::Task => &["To Do", "In Progress", "Done"],
            Self::Bug => &["New", "Investigating", "Fixed", "Verified"],
            Self::Epic => &["Planned", "In Progress", "Completed"],
        }
    }

    /// How it is named in messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Task => "task",
            Self::Bug => "bug",
            Self::Epic => "epic",
        }
    }
}

/// The priorities a task may have.
pub const PRIORITIES: [&str; 3] = ["High", "Medium", "Low"];
/// The severities a bug may have.
pub const SEVERITIES: [&str; 4] = ["Critical", "Major", "Minor", "Trivial"];

/// A tag, understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tag {
    /// A new task, bug or epic with its title.
    Create {
        /// What it is.
        kind: TaskKind,
        /// Its title.
        title: String,
    },
    /// `#status <value>` (checked against the task's kind when applied).
    Status(String),
    /// `#assignee @user` (the user's name, without `@`).
    Assignee(String),
    /// `#priority High|Medium|Low`.
    Priority(&'static str),
    /// `#due YYYY-MM-DD`.
    Due {
        /// Year.
        year: u16,
        /// Month, 1–12.
        month: u8,
        /// Day of the month.
        day: u8,
    },
    /// `#title <text>`.
    Title(String),
    /// `#severity Critical|Major|Minor|Trivial` (bugs only).
    Severity(&'static str),
}

/// A tag that could not be taken, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("❌ {0}")]
pub struct TagError(pub String);

/// One tag found in a message: which, and whether it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The tag's name as typed, e.g. `status`.
    pub name: &'static str,
    /// The tag, or why it does not hold.
    pub tag: Result<Tag, TagError>,
}

const NAMES: [&str; 9] = [
    "task", "bug", "epic", "status", "assignee", "priority", "due", "title", "severity",
];

/// Every tag in `text`, in order.
pub fn parse(text: &str) -> Vec<Found> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Found> {
    let rest = line.trim_start().strip_prefix('#')?;
    let (word, value) = match rest.split_once(char::is_whitespace) {
        Some((word, value)) => (word, value.trim()),
        None => (rest, ""),
    };
    let name = NAMES.iter().copied().find(|name| *name == word)?;
    Some(Found {
        name,
        tag: tag_of(name, value),
    })
}

fn error(message: impl Into<String>) -> Result<Tag, TagError> {
    Err(TagError(message.into()))
}

fn tag_of(name: &'static str, value: &str) -> Result<Tag, TagError> {
    let create = |kind: TaskKind| {
        if value.is_empty() {
            return error(format!(
                "A {} needs a title. Use #{} <title>",
                kind.name(),
                kind.name()
            ));
        }
        Ok(Tag::Create {
            kind,
            title: value.to_owned(),
        })
    };
    match name {
        "task" => create(TaskKind::Task),
        "bug" => create(TaskKind::Bug),
        "epic" => create(TaskKind::Epic),
        "status" if value.is_empty() => error("Invalid format. Use #status <value>"),
        "status" => Ok(Tag::Status(value.to_owned())),
        "assignee" => match value.strip_prefix('@') {
            Some(user) if !user.is_empty() && !user.contains(char::is_whitespace) => {
                Ok(Tag::Assignee(user.to_owned()))
            }
            _ => error("Invalid format. Use @username"),
        },
        "priority" => match PRIORITIES.iter().find(|priority| **priority == value) {
            Some(priority) => Ok(Tag::Priority(priority)),
            None => error(format!(
                "Invalid priority. Available: {}",
                PRIORITIES.join(", ")
            )),
        },
        "severity" => match SEVERITIES.iter().find(|severity| **severity == value) {
            Some(severity) => Ok(Tag::Severity(severity)),
            None => error(format!(
                "Invalid severity. Available: {}",
                SEVERITIES.join(", ")
            )),
        },
        "due" => parse_date(value)
            .map(|(year, month, day)| Tag::Due { year, month, day })
            .ok_or_else(|| TagError("Invalid date. Use YYYY-MM-DD, e.g. 2026-12-31".into())),
        "title" if value.is_empty() => error("Invalid format. Use #title <text>"),
        "title" => Ok(Tag::Title(value.to_owned())),
        _ => error("Unknown tag"),
    }
}

/// `YYYY-MM-DD`, a day that exists.
fn parse_date(value: &str) -> Option<(u16, u8, u8)> {
    let bytes = value.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = value.get(range)?;
        part.bytes()
            .all(|byte| byte.is_ascii_digit())
            .then(|| part.parse().ok())
            .flatten()
    };
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    (year >= 1 && (1..=days).contains(&day)).then_some((year as u16, month as u8, day as u8))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn tags(text: &str) -> Vec<Result<Tag, String>> {
        parse(text)
            .into_iter()
            .map(|found| found.tag.map_err(|error| error.to_string()))
            .collect()
    }

    #[test]
    fn the_seeds_examples_parse_as_the_seed_says() {
        let cases: &[(&str, Vec<Result<Tag, String>>)] = &[
            (
                "#task Fix the login page",
                vec![Ok(Tag::Create {
                    kind: TaskKind::Task,
                    title: "Fix the login page".into(),
                })],
            ),
            (
                "#bug Crash on start\n#severity Critical\n#priority High\n#assignee @ada",
                vec![
                    Ok(Tag::Create {
                        kind: TaskKind::Bug,
                        title: "Crash on start".into(),
                    }),
                    Ok(Tag::Severity("Critical")),
                    Ok(Tag::Priority("High")),
                    Ok(Tag::Assignee("ada".into())),
                ],
            ),
            (
                "#epic Q1 launch",
                vec![Ok(Tag::Create {
                    kind: TaskKind::Epic,
                    title: "Q1 launch".into(),
                })],
            ),
            (
                "#status In Progress",
                vec![Ok(Tag::Status("In Progress".into()))],
            ),
            (
                "#due 2026-12-31",
                vec![Ok(Tag::Due {
                    year: 2026,
                    month: 12,
                    day: 31,
                })],
            ),
            (
                "#title A better title",
                vec![Ok(Tag::Title("A better title".into()))],
            ),
            // Syntax errors say what to type.
            (
                "#assignee ada",
                vec![Err("❌ Invalid format. Use @username".into())],
            ),
            (
                "#assignee @",
                vec![Err("❌ Invalid format. Use @username".into())],
            ),
            (
                "#priority Urgent",
                vec![Err(
                    "❌ Invalid priority. Available: High, Medium, Low".into()
                )],
            ),
            (
                "#priority high",
                vec![Err(
                    "❌ Invalid priority. Available: High, Medium, Low".into()
                )],
            ),
            (
                "#severity Blocker",
                vec![Err(
                    "❌ Invalid severity. Available: Critical, Major, Minor, Trivial".into(),
                )],
            ),
            (
                "#due 2026-02-30",
                vec![Err(
                    "❌ Invalid date. Use YYYY-MM-DD, e.g. 2026-12-31".into()
                )],
            ),
            (
                "#due tomorrow",
                vec![Err(
                    "❌ Invalid date. Use YYYY-MM-DD, e.g. 2026-12-31".into()
                )],
            ),
            (
                "#task",
                vec![Err("❌ A task needs a title. Use #task <title>".into())],
            ),
            (
                "#status",
                vec![Err("❌ Invalid format. Use #status <value>".into())],
            ),
            // Partial application: each tag on its own.
            (
                "#task Ship it\n#priority Highest\n#due 2028-02-29",
                vec![
                    Ok(Tag::Create {
                        kind: TaskKind::Task,
                        title: "Ship it".into(),
                    }),
                    Err("❌ Invalid priority. Available: High, Medium, Low".into()),
                    Ok(Tag::Due {
                        year: 2028,
                        month: 2,
                        day: 29,
                    }),
                ],
            ),
            // Case-sensitive, known tags only, at the start of a line only.
            ("#Status Done", vec![]),
            ("#STATUS Done", vec![]),
            ("#foo bar", vec![]),
            ("#statusDone", vec![]),
            ("please set #status Done", vec![]),
            ("hello\nsee #task below", vec![]),
            ("hello\n#status Done", vec![Ok(Tag::Status("Done".into()))]),
            ("  #status Done", vec![Ok(Tag::Status("Done".into()))]),
            // A title keeps its own hashes.
            (
                "#task Fix #42 crash",
                vec![Ok(Tag::Create {
                    kind: TaskKind::Task,
                    title: "Fix #42 crash".into(),
                })],
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(&tags(text), expected, "{text:?}");
        }
        assert_eq!(parse("#due 1900-02-29").len(), 1);
        assert!(parse("#due 1900-02-29")[0].tag.is_err(), "not a leap year");
        assert!(parse("#due 2000-02-29")[0].tag.is_ok(), "a leap year");
    }

    proptest! {
        #[test]
        fn random_text_never_panics(text in any::<String>()) {
            let _ = parse(&text);
        }

        #[test]
        fn tags_inside_a_sentence_are_ignored(
            before in "[a-z]{1,10}",
            name in prop::sample::select(NAMES.to_vec()),
            value in "[A-Za-z ]{0,20}",
        ) {
            let found = parse(&format!("{before} #{name} {value}"));
            prop_assert!(found.is_empty());
        }
    }
}
