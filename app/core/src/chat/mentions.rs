//! Who a message calls on: `@name` (a member by display name), `@here` (everyone online) and
//! `@everyone`. Plain text rules every client applies alike, on its own copy.

/// Whether `text` calls on the member called `my_name`: by name (case folded, not inside a
/// longer word), or with `@here` or `@everyone`. Text inside code spans is not looked at.
pub fn mentions(text: &str, my_name: &str) -> bool {
    let my_name = my_name.trim();
    outside_code(text).iter().any(|part| {
        at_words(part).any(|after_at| {
            starts_word(after_at, "here")
                || starts_word(after_at, "everyone")
                || (!my_name.is_empty() && starts_word(after_at, my_name))
        })
    })
}

/// What follows each `@` that starts a word (not the `@` of an e-mail address).
fn at_words(text: &str) -> impl Iterator<Item = &str> {
    text.char_indices().filter_map(move |(index, c)| {
        let before = text[..index].chars().next_back();
        (c == '@' && before.is_none_or(|b| !b.is_alphanumeric())).then(|| &text[index + 1..])
    })
}

/// Whether `text` starts with `word` (case folded) followed by the end or a non-word
/// character.
fn starts_word(text: &str, word: &str) -> bool {
    let mut rest = text.chars();
    for expected in word.chars() {
        match rest.next() {
            Some(c) if c.to_lowercase().eq(expected.to_lowercase()) => {}
            _ => return false,
        }
    }
    rest.next()
        .is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
}

/// The parts of `text` outside backtick code spans and fenced blocks.
fn outside_code(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut in_fence = false;
    for line in text.split('\n') {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        parts.extend(line.split('`').step_by(2));
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::mentions;

    #[test]
    fn names_here_and_everyone_call_on_a_member() {
        assert!(mentions("@Bob can you look?", "bob"));
        assert!(mentions("thanks @bob!", "Bob"));
        assert!(mentions("ping @Ada Lovelace, please", "Ada Lovelace"));
        assert!(mentions("@here standup", "Bob"));
        assert!(mentions("@EVERYONE release is out", "Bob"));
        assert!(
            !mentions("@bobby hi", "Bob"),
            "a longer name is someone else"
        );
        assert!(!mentions("mail bob@example.org", "example"));
        assert!(!mentions("no one here", "Bob"));
        assert!(
            !mentions("`@bob` is the syntax", "Bob"),
            "code is not a call"
        );
        assert!(!mentions("```\n@everyone\n```", "Bob"));
        assert!(!mentions("@", "Bob"));
        assert!(!mentions("hi @", ""));
    }
}
