//! Two people in a voice call through a relay hosted by a third `sotto` process, each client a
//! real `sotto voice` process: A speaks a recorded clip from a WAV file, B records what it hears.

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

const SOTTO: &str = env!("CARGO_BIN_EXE_sotto");

struct Host(Child);

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sotto(profile: &Path, args: &[&str]) -> Output {
    let output = Command::new(SOTTO)
        .args(args)
        .env("SOTTO_DATA_DIR", profile)
        .output()
        .expect("sotto runs");
    assert!(
        output.status.success(),
        "sotto {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn read(path: &Path) -> Vec<f32> {
    let mut reader = hound::WavReader::open(path).unwrap();
    reader
        .samples::<i16>()
        .map(|s| f32::from(s.unwrap()) / 32_768.0)
        .collect()
}

fn write(path: &Path, samples: &[f32]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 48_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).unwrap();
    for sample in samples {
        writer.write_sample((sample * 32_767.0) as i16).unwrap();
    }
    writer.finalize().unwrap();
}

/// The audio clock origin a `sotto voice` process printed, in µs since the Unix epoch.
fn clock_origin(output: &Output) -> i128 {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find(|line| line.contains("audio clock origin"))
        .expect("an origin line");
    line.split("origin ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn envelope(signal: &[f32]) -> Vec<f64> {
    signal
        .chunks(480)
        .map(|c| (c.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / c.len() as f64).sqrt())
        .collect()
}

fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (ma, mb) = (
        a[..n].iter().sum::<f64>() / n as f64,
        b[..n].iter().sum::<f64>() / n as f64,
    );
    let (mut num, mut da, mut db) = (0.0, 0.0, 0.0);
    for i in 0..n {
        num += (a[i] - ma) * (b[i] - mb);
        da += (a[i] - ma).powi(2);
        db += (b[i] - mb).powi(2);
    }
    num / (da.sqrt() * db.sqrt())
}

#[test]
fn a_speaks_b_hears_through_the_relay() {
    let dir = tempfile::tempdir().unwrap();
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("127.0.0.1:{port}");
    let mut host = Host(
        Command::new(SOTTO)
            .args(["host", "--data"])
            .arg(dir.path().join("relay"))
            .args(["--listen", &address, "--public-addr", &address])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(host.0.stdout.take().unwrap()).lines();
    let owner_link = lines
        .next()
        .unwrap()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned();
    assert!(owner_link.starts_with("sotto://"), "{owner_link}");
    std::thread::spawn(move || lines.for_each(drop));

    let (ada, bob) = (dir.path().join("ada"), dir.path().join("bob"));
    sotto(&ada, &["join", &owner_link, "--name", "Ada"]);
    let invite = String::from_utf8(sotto(&ada, &["invite", "--max-uses", "1"]).stdout)
        .unwrap()
        .trim()
        .to_owned();
    sotto(&bob, &["join", &invite, "--name", "Bob"]);
    let servers = String::from_utf8(sotto(&bob, &["servers"]).stdout).unwrap();
    assert!(servers.contains("as Bob"), "{servers}");

    // A speaks alsa-utils' recorded speech; B listens from a silent microphone file.
    let mut speech = Vec::new();
    for clip in ["Front_Center", "Front_Left", "Rear_Center", "Side_Right"] {
        speech.extend(read(Path::new(&format!(
            "/usr/share/sounds/alsa/{clip}.wav"
        ))));
        speech.extend(std::iter::repeat_n(0.0, 14_400));
    }
    let (said, quiet, heard) = (
        dir.path().join("said.wav"),
        dir.path().join("quiet.wav"),
        dir.path().join("heard.wav"),
    );
    write(&said, &speech);
    write(&quiet, &vec![0.0; speech.len() + 96_000]);
    let listener = Command::new(SOTTO)
        .args([
            "voice",
            "--no-aec",
            "--input",
            quiet.to_str().unwrap(),
            "--output",
            heard.to_str().unwrap(),
        ])
        .env("SOTTO_DATA_DIR", &bob)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(800));
    let speaker = sotto(
        &ada,
        &[
            "voice",
            "--no-aec",
            "--input",
            said.to_str().unwrap(),
            "--output",
            dir.path().join("ada-heard.wav").to_str().unwrap(),
        ],
    );
    let listener = listener.wait_with_output().unwrap();
    assert!(
        listener.status.success(),
        "{}",
        String::from_utf8_lossy(&listener.stdout)
    );

    // Put B's recording on A's clock, then find the delay and compare envelopes.
    let offset_samples = ((clock_origin(&listener) - clock_origin(&speaker)) * 48 / 1000) as i64;
    let recorded = read(&heard);
    let heard_on_a_clock: Vec<f32> = if offset_samples >= 0 {
        std::iter::repeat_n(0.0, offset_samples as usize)
            .chain(recorded)
            .collect()
    } else {
        recorded[(-offset_samples) as usize..].to_vec()
    };
    let said_envelope = envelope(&speech);
    let (lag, best) = (0..30)
        .map(|lag| {
            (
                lag,
                correlation(
                    &said_envelope,
                    &envelope(&heard_on_a_clock[(lag * 480).min(heard_on_a_clock.len())..]),
                ),
            )
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap();
    println!(
        "B heard A: envelope correlation {best:.3}, one-way delay ≈ {} ms (10 ms resolution) + 10 ms frame accumulation",
        lag * 10
    );
    assert!(best >= 0.9, "correlation {best:.3}");
}
