//! An example bot to copy: it answers commands, reminds a channel of tasks that are due, and
//! (with `--webhook`) posts what local integrations send it.
//!
//! Give it a profile of its own and join it like a person:
//!
//! ```text
//! SOTTO_DATA_DIR=~/helper-bot sotto join --name helper      # paste an invite link
//! SOTTO_DATA_DIR=~/helper-bot cargo run -p sotto --example helper_bot -- \
//!     --webhook 127.0.0.1:8088
//! curl -d 'CI: main is green' http://127.0.0.1:8088/general
//! ```
//!
//! Commands, in any text channel it can read: `!help`, `!echo <text>`, `!tasks`. A task whose
//! `#due` date has come (and is not done) gets one reminder, as a reply to the task.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use sotto_client::Profile;
use sotto_client::bot::{Bot, Incoming, webhook};
use sotto_client::tasks::board::Task;

/// How often due dates are checked besides after each message.
const REMINDER_CHECK: Duration = Duration::from_secs(60);

/// Statuses that mean a task needs no reminder.
const FINISHED: [&str; 4] = ["Done", "Fixed", "Verified", "Completed"];

type Error = Box<dyn std::error::Error + Send + Sync>;

struct Options {
    server: Option<String>,
    webhook: Option<SocketAddr>,
}

fn options() -> Result<Options, Error> {
    let mut options = Options {
        server: None,
        webhook: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--server" => options.server = Some(args.next().ok_or("--server needs a name")?),
            "--webhook" => {
                let address = args
                    .next()
                    .ok_or("--webhook needs an address, e.g. 127.0.0.1:8088")?;
                options.webhook = Some(address.parse()?);
            }
            other => {
                return Err(format!("unknown argument `{other}`; use --server, --webhook").into());
            }
        }
    }
    Ok(options)
}

/// Today's date in UTC as (year, month, day).
fn today() -> (u16, u8, u8) {
    let stamp = humantime::format_rfc3339(std::time::SystemTime::now()).to_string();
    let part = |range: std::ops::Range<usize>| stamp[range].parse().unwrap_or(0);
    (part(0..4), part(5..7) as u8, part(8..10) as u8)
}

/// What the bot answers to a command; none for other messages.
async fn answer(bot: &Bot, message: &Incoming) -> Result<Option<String>, Error> {
    let text = message.text.trim();
    Ok(Some(match text.split_whitespace().next() {
        Some("!help") => "Commands: !echo <text> says it back, !tasks lists open tasks here. \
             I also remind this channel when a task's #due date comes."
            .to_owned(),
        Some("!echo") => text["!echo".len()..].trim().to_owned(),
        Some("!tasks") => {
            let derived = bot.board(message.channel_id).await?;
            let open: Vec<String> = derived
                .board
                .tasks()
                .filter(|task| !FINISHED.contains(&task.status))
                .map(describe)
                .collect();
            if open.is_empty() {
                "No open tasks here.".to_owned()
            } else {
                format!("Open tasks:\n{}", open.join("\n"))
            }
        }
        _ => return Ok(None),
    }))
}

fn describe(task: &Task) -> String {
    let mut line = format!(
        "{} {}: {} ({})",
        task.kind.name(),
        task.id,
        task.title,
        task.status
    );
    if let Some(assignee) = &task.assignee {
        line.push_str(&format!(" @{assignee}"));
    }
    if let Some((year, month, day)) = task.due {
        line.push_str(&format!(", due {year:04}-{month:02}-{day:02}"));
    }
    line
}

/// Reminds `channel_id` of each unfinished task whose due date has come, once each.
async fn remind(
    bot: &Bot,
    channel_id: u32,
    reminded: &mut HashSet<(u32, u64, (u16, u8, u8))>,
) -> Result<(), Error> {
    let today = today();
    let derived = bot.board(channel_id).await?;
    for task in derived.board.tasks() {
        let Some(due) = task.due else { continue };
        if due > today
            || FINISHED.contains(&task.status)
            || !reminded.insert((channel_id, task.id, due))
        {
            continue;
        }
        let who = task
            .assignee
            .as_ref()
            .map_or_else(String::new, |assignee| format!(" @{assignee}"));
        let (year, month, day) = due;
        let text = format!(
            "⏰ Reminder: {} {} \"{}\" is due {year:04}-{month:02}-{day:02}.{who}",
            task.kind.name(),
            task.id,
            task.title
        );
        bot.reply_to(channel_id, task.id, &text).await?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let options = options()?;
    let profile = Profile::open()?;
    let mut bot = Bot::connect(&profile, options.server.as_deref()).await?;
    let (sender, mut posts) = tokio::sync::mpsc::channel(64);
    if let Some(address) = options.webhook {
        let listener = webhook::bind(address).await?;
        println!("Webhook: POST http://{}/<channel>", listener.local_addr()?);
        tokio::spawn(webhook::serve(listener, sender));
    }
    let mut reminded = HashSet::new();
    for channel_id in bot.text_channels() {
        remind(&bot, channel_id, &mut reminded).await?;
    }
    println!("Ready on {}.", bot.session().server.name);
    let mut check = tokio::time::interval(REMINDER_CHECK);
    loop {
        tokio::select! {
            message = bot.next_message() => {
                let Some(message) = message? else { break };
                if let Some(text) = answer(&bot, &message).await? {
                    bot.reply(&message, &text).await?;
                }
                remind(&bot, message.channel_id, &mut reminded).await?;
            }
            Some(post) = posts.recv() => {
                match bot.channel_id(&post.channel) {
                    Ok(channel_id) => {
                        bot.send(channel_id, &post.text).await?;
                    }
                    Err(error) => eprintln!("webhook: {error}"),
                }
            }
            _ = check.tick() => {
                for channel_id in bot.text_channels() {
                    remind(&bot, channel_id, &mut reminded).await?;
                }
            }
        }
    }
    eprintln!("The connection to the relay ended.");
    Ok(())
}
