//! Three people in a call: A and B speak at the same time, C hears both, mixed.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

#[test]
fn c_hears_a_and_b_speaking_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let address = free_address();
    let (_host, owner_link) = start_host(&dir.path().join("relay"), &address, &address);
    let owner_link = owner_link.unwrap();

    let profiles: Vec<_> = ["ada", "bob", "cy"]
        .iter()
        .map(|name| dir.path().join(name))
        .collect();
    join(&profiles[0], &owner_link, "Ada");
    let invite = String::from_utf8(sotto(&profiles[0], &["invite"]).stdout)
        .unwrap()
        .trim()
        .to_owned();
    // Bob and Cy wait to be let into the encryption group until a member is online: Ada's
    // `sotto members` lets them in (their invite proofs check out) and lists them.
    let bob_joined = join(&profiles[1], &invite, "Bob");
    assert!(
        String::from_utf8_lossy(&bob_joined.stdout)
            .contains("Waiting to be let into the encryption group"),
        "{}",
        String::from_utf8_lossy(&bob_joined.stdout)
    );
    join(&profiles[2], &invite, "Cy");
    let listed = let_in(&profiles[0]);
    assert!(listed.starts_with("3 member(s)"), "{listed}");

    let ada_says = alsa_speech(&["Front_Center", "Front_Left", "Front_Right"], 9_600);
    let bob_says = alsa_speech(&["Rear_Right", "Side_Left", "Side_Right"], 9_600);
    let files: Vec<_> = ["ada.wav", "bob.wav", "quiet.wav", "cy-heard.wav"]
        .iter()
        .map(|f| dir.path().join(f))
        .collect();
    write(&files[0], &ada_says);
    write(&files[1], &bob_says);
    write(
        &files[2],
        &vec![0.0; ada_says.len().max(bob_says.len()) + 96_000],
    );

    let listener = Command::new(SOTTO)
        .args([
            "voice",
            "--no-aec",
            "--input",
            files[2].to_str().unwrap(),
            "--output",
            files[3].to_str().unwrap(),
        ])
        .env("SOTTO_DATA_DIR", &profiles[2])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let speakers: Vec<_> = [(0, &files[0]), (1, &files[1])]
        .into_iter()
        .map(|(who, input)| {
            Command::new(SOTTO)
                .args([
                    "voice",
                    "--no-aec",
                    "--input",
                    input.to_str().unwrap(),
                    "--output",
                ])
                .arg(dir.path().join(format!("speaker{who}-heard.wav")))
                .env("SOTTO_DATA_DIR", &profiles[who])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let speakers: Vec<_> = speakers
        .into_iter()
        .map(|child| child.wait_with_output().unwrap())
        .collect();
    let listener = listener.wait_with_output().unwrap();
    let listener_out = String::from_utf8_lossy(&listener.stdout).to_string();
    assert!(listener.status.success(), "{listener_out}");
    assert!(
        listener_out.contains("Ada") && listener_out.contains("Bob"),
        "C saw both speakers:\n{listener_out}"
    );

    // Put everything on Ada's clock and compare C's envelope with the envelope of A + B.
    let origin = |output: &std::process::Output| clock_origin(output);
    let shift = |signal: Vec<f32>, from_us: i128| -> Vec<f32> {
        let offset = ((from_us - origin(&speakers[0])) * 48 / 1000) as i64;
        if offset >= 0 {
            std::iter::repeat_n(0.0, offset as usize)
                .chain(signal)
                .collect()
        } else {
            signal[(-offset) as usize..].to_vec()
        }
    };
    let bob_on_ada_clock = shift(bob_says.clone(), origin(&speakers[1]));
    let heard = shift(read(&files[3]), origin(&listener));
    let length = ada_says.len().max(bob_on_ada_clock.len());
    let mix: Vec<f32> = (0..length)
        .map(|i| {
            ada_says.get(i).copied().unwrap_or(0.0)
                + bob_on_ada_clock.get(i).copied().unwrap_or(0.0)
        })
        .collect();
    let mix_envelope = envelope(&mix);
    let (lag, best) = (0..40)
        .map(|lag| {
            (
                lag,
                correlation(
                    &mix_envelope,
                    &envelope(&heard[(lag * 480).min(heard.len())..]),
                ),
            )
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap();
    let heard_envelope = envelope(&heard[lag * 480..]);
    let with_ada = correlation(&envelope(&ada_says), &heard_envelope);
    let with_bob = correlation(&envelope(&bob_on_ada_clock), &heard_envelope);
    println!(
        "C vs A+B: correlation {best:.3} at {} ms; with A alone {with_ada:.2}, with B alone {with_bob:.2}",
        lag * 10
    );
    assert!(
        best >= 0.8,
        "C's recording does not follow the mix: {best:.3}"
    );
    assert!(
        with_ada > 0.2 && with_bob > 0.2,
        "both voices are in the mix"
    );
}
