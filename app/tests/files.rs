//! Files on the command line, end to end: `sotto upload` seals a file on the sender's device,
//! `sotto download` fetches, opens and checks it on the receiver's, a damaged piece of a
//! download is noticed and fetched again, and the relay's files and log hold neither the file's
//! name nor its contents (its stored bytes look random).

mod common;

use common::*;

/// Shannon entropy of `bytes`, in bits per byte.
fn entropy(bytes: &[u8]) -> f64 {
    let mut counts = [0u64; 256];
    for byte in bytes {
        counts[usize::from(*byte)] += 1;
    }
    let total = bytes.len() as f64;
    counts
        .iter()
        .filter(|count| **count > 0)
        .map(|count| {
            let p = *count as f64 / total;
            -p * p.log2()
        })
        .sum()
}

#[test]
fn a_shared_file_reaches_members_whole_and_the_relay_learns_neither_name_nor_contents() {
    let server = Server::start(&["Ada", "Bob"]);
    let (ada, bob) = (&server.members[0], &server.members[1]);
    let work = server.dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();

    // A canary name and canary contents, four and a bit 64 KiB chunks long.
    let name = "canary-name-5e9d quarterly plan.txt";
    let contents: Vec<u8> = b"CANARY-CONTENT-71c4 the plan, line by line\n"
        .iter()
        .copied()
        .cycle()
        .take(270_000)
        .collect();
    let original = work.join(name);
    std::fs::write(&original, &contents).unwrap();
    let shared = stdout_of(sotto(
        ada,
        &[
            "upload",
            "general",
            original.to_str().unwrap(),
            "--text",
            "the plan",
        ],
    ));
    assert_eq!(
        shared.trim(),
        format!("Shared {name} (270 KB) in #general (message 1)."),
    );

    // Bob sees it in the history and saves it; the copy is the file Ada shared.
    let history = stdout_of(sotto(bob, &["history", "general"]));
    assert!(history.contains("Ada: the plan"), "{history}");
    assert!(
        history.contains(&format!("📎 {name} (270 KB)")),
        "{history}"
    );
    let inbox = server.dir.path().join("bob-inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let saved = stdout_of(sotto(
        bob,
        &["download", "general", "1", "--out", inbox.to_str().unwrap()],
    ));
    assert!(
        saved.contains("its SHA-256 matches what the sender sealed"),
        "{saved}"
    );
    assert_eq!(std::fs::read(inbox.join(name)).unwrap(), contents);
    // A second save does not overwrite the first.
    sotto(
        bob,
        &["download", "general", "1", "--out", inbox.to_str().unwrap()],
    );
    assert_eq!(
        std::fs::read(inbox.join("canary-name-5e9d quarterly plan (1).txt")).unwrap(),
        contents
    );

    // Search finds files by caption, and lists them with has:file.
    let found = stdout_of(sotto(bob, &["search", "has:file"]));
    assert_eq!(found.lines().count(), 2, "{found}");
    assert!(found.contains(&format!("📎 {name}")), "{found}");
    let found = stdout_of(sotto(bob, &["search", "plan", "has:file"]));
    assert!(found.contains("Ada: the plan"), "{found}");

    // What the relay holds: one stored file of random-looking bytes; neither the name nor the
    // contents in any of its files or its log.
    let blobs: Vec<_> = files_under(&server.relay_data.join("blobs"));
    assert_eq!(blobs.len(), 1, "one stored file");
    let bits = entropy(&blobs[0].1);
    assert!(bits >= 7.9, "stored file entropy {bits:.3} bits/byte");
    println!("the relay's stored file: {bits:.4} bits/byte");
    assert_relay_holds_none(
        &server,
        &["canary-name-5e9d", "CANARY-CONTENT-71c4", "the plan"],
    );

    // A download left half-done with a damaged piece (a disk error, say) is noticed while
    // opening; that piece is fetched again and the file still comes out whole.
    let (stored_name, sealed) = (&blobs[0].0, &blobs[0].1);
    let blob_hex = stored_name.file_name().unwrap().to_str().unwrap();
    let transfers = bob.join("transfers");
    std::fs::create_dir_all(&transfers).unwrap();
    let mut damaged = sealed.clone();
    damaged[2 * 65_556 + 100] ^= 0x40;
    std::fs::write(transfers.join(format!("{blob_hex}.download")), &damaged).unwrap();
    let again = server.dir.path().join("again.txt");
    let events = stdout_of(sotto(
        bob,
        &[
            "download",
            "general",
            "1",
            "--out",
            again.to_str().unwrap(),
            "--json",
        ],
    ));
    assert!(
        events.contains("\"event\":\"retrying\"")
            && events.contains("a damaged piece after byte 131112"),
        "{events}"
    );
    assert!(events.contains("\"verified\":true"), "{events}");
    assert_eq!(std::fs::read(&again).unwrap(), contents);
    assert!(
        std::fs::read_dir(&transfers).unwrap().next().is_none(),
        "nothing left behind in the transfers folder"
    );

    // Bob forwards it to another channel: the file goes along, without uploading it again.
    sotto(ada, &["channel", "create", "archive"]);
    let forwarded = stdout_of(sotto(bob, &["forward", "general", "1", "archive"]));
    assert_eq!(
        forwarded.trim(),
        "Forwarded message 1 of #general to #archive (message 1)."
    );
    let archive = stdout_of(sotto(ada, &["history", "archive"]));
    assert!(
        archive.contains("Bob: (forwarded from Ada) the plan") && archive.contains(name),
        "{archive}"
    );
    assert_eq!(
        files_under(&server.relay_data.join("blobs")).len(),
        1,
        "stored once"
    );

    // Once Ada deletes the original, the file is gone from it; the forward still carries it.
    sotto(ada, &["delete", "general", "1"]);
    let refused = try_sotto(bob, &["download", "general", "1"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("carries no file you can open"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let kept = server.dir.path().join("kept.txt");
    sotto(
        bob,
        &["download", "archive", "1", "--out", kept.to_str().unwrap()],
    );
    assert_eq!(std::fs::read(&kept).unwrap(), contents);
}

#[test]
fn a_shared_picture_comes_with_a_sealed_preview() {
    let server = Server::start(&["Ada", "Bob"]);
    let (ada, bob) = (&server.members[0], &server.members[1]);
    let photo = server.dir.path().join("holiday.png");
    image::RgbImage::from_fn(1600, 900, |x, y| {
        image::Rgb([(x % 251) as u8, (y % 241) as u8, ((x + y) % 239) as u8])
    })
    .save(&photo)
    .unwrap();
    sotto(ada, &["upload", "general", photo.to_str().unwrap()]);

    // Bob saves the preview without fetching the file: a small JPEG of the picture.
    let preview = server.dir.path().join("preview.jpg");
    let saved = stdout_of(sotto(
        bob,
        &[
            "download",
            "general",
            "1",
            "--preview",
            "--out",
            preview.to_str().unwrap(),
        ],
    ));
    assert!(
        saved.starts_with("Saved the preview of holiday.png"),
        "{saved}"
    );
    let bytes = std::fs::read(&preview).unwrap();
    assert!(bytes.len() <= 48 * 1024, "{} bytes", bytes.len());
    let small = image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg).unwrap();
    assert_eq!((small.width(), small.height()), (320, 180));

    // Only the sealed file is on the relay: neither the picture nor its preview.
    for (path, stored) in files_under(&server.relay_data) {
        for needle in [&bytes[..64], b"\x89PNG\r\n\x1a\n"] {
            assert!(
                !stored.windows(needle.len()).any(|w| w == needle),
                "{} holds an image",
                path.display()
            );
        }
    }

    // A file that is no picture has no preview, and saying so is an error with a reason.
    let notes = server.dir.path().join("notes.txt");
    std::fs::write(&notes, "plain words").unwrap();
    sotto(ada, &["upload", "general", notes.to_str().unwrap()]);
    let refused = try_sotto(bob, &["download", "general", "2", "--preview"]);
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("came without a preview"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}
