//! Local message search (SQLite FTS5) at 10,000 and 100,000 messages, against a plain
//! `LIKE` scan of the same table in the same run as the baseline.
//!
//! Run: `cargo bench -p sotto-benches --bench chat_search`

#![allow(missing_docs)] // criterion_group! generates an undocumented function

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use sotto_client::chat::store::{ChatStore, SearchQuery};
use sotto_client::chat::{ChatBody, ChatMessage};

const WORDS: [&str; 16] = [
    "deploy", "lunch", "review", "meeting", "budget", "design", "bug", "release", "coffee",
    "server", "voice", "screen", "ticket", "merge", "draft", "plan",
];

/// A store of `count` messages of eight words each, across 10 channels and 20 authors.
fn store_of(count: u64, dir: &std::path::Path) -> ChatStore {
    let mut store = ChatStore::open(&dir.join(format!("chat-{count}.db"))).unwrap();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut batch = Vec::with_capacity(1000);
    for seq in 1..=count {
        let text: Vec<String> = (0..8)
            .map(|_| {
                let word = WORDS[(next() % WORDS.len() as u64) as usize];
                // One word in ~1,000 is rare: what people usually search for.
                if next() % 1000 == 0 {
                    format!("zebra{word}")
                } else {
                    word.to_owned()
                }
            })
            .collect();
        let posted_at_ms = 1_800_000_000_000 + seq * 1000;
        let body = ChatBody::Text(text.join(" "));
        batch.push(ChatMessage {
            author: Some([(seq % 20) as u8; 32]),
            sent_at_ms: Some(posted_at_ms),
            ..ChatMessage::new(
                (seq % 10) as u32,
                seq,
                (seq % 20) as u32,
                posted_at_ms,
                body,
            )
        });
        if batch.len() == 1000 {
            store.insert("bench", &batch, &|_| false).unwrap();
            batch.clear();
        }
    }
    store.insert("bench", &batch, &|_| false).unwrap();
    store
}

fn search(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    for count in [10_000u64, 100_000] {
        let store = store_of(count, dir.path());
        let plain =
            rusqlite::Connection::open(dir.path().join(format!("chat-{count}.db"))).unwrap();
        let mut group = c.benchmark_group(format!("chat_search_{count}"));
        group.bench_function("baseline_like_scan", |b| {
            b.iter(|| {
                let found: i64 = plain
                    .query_row(
                        "SELECT count(*) FROM messages WHERE body LIKE '%zebra%'",
                        [],
                        |row| row.get(0),
                    )
                    .unwrap();
                black_box(found)
            })
        });
        let rare = SearchQuery {
            words: "zebra".into(),
            limit: 20,
            ..SearchQuery::default()
        };
        group.bench_function("fts_rare_word", |b| {
            b.iter(|| black_box(store.search("bench", &rare).unwrap().len()))
        });
        let common = SearchQuery {
            words: "deploy review".into(),
            channel_id: Some(3),
            limit: 20,
            ..SearchQuery::default()
        };
        group.bench_function("fts_common_words_in_a_channel", |b| {
            b.iter(|| black_box(store.search("bench", &common).unwrap().len()))
        });
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = search
}
criterion_main!(benches);
