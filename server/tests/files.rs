//! Files through a real relay: sealed on the sender's side (the real file sealing of
//! `sotto-net`), uploaded on streams of their own, resumed across a SIGKILL of the relay,
//! checked by SHA-256, carried by messages, and deleted once no message carries them.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use common::process::*;
use common::*;
use sha2::{Digest, Sha256};
use sotto_net::client::{BlobUpload, Client, ClientError, TransferError};
use sotto_net::proto::control::ErrorCode;
use sotto_net::seal::file::{FileManifest, FileOpener, FileSealer};
use sotto_relay::RelayConfig;
use tokio::io::{AsyncRead, AsyncSeek, ReadBuf};

/// Seals `plaintext` into `path`; the manifest and the upload it makes.
fn seal_to_file(plaintext: &[u8], path: &Path) -> (FileManifest, BlobUpload) {
    let file = std::fs::File::create(path).unwrap();
    let manifest = FileSealer::new(plaintext).seal_to(file).unwrap();
    let upload = BlobUpload {
        id: rand::random(),
        sealed_len: manifest.sealed_len(),
        sealed_sha256: *manifest.sealed_sha256(),
    };
    (manifest, upload)
}

async fn upload(client: &Client, blob: &BlobUpload, path: &Path) -> Result<(), TransferError> {
    let mut source = tokio::fs::File::open(path).await.unwrap();
    client.upload_blob(blob, &mut source, &mut |_| {}).await
}

async fn download(client: &Client, blob: &BlobUpload) -> Result<Vec<u8>, TransferError> {
    let mut sealed = Vec::new();
    client
        .download_blob(&blob.id, 0, &mut sealed, &mut |_| {})
        .await?;
    Ok(sealed)
}

fn open(manifest: &FileManifest, sealed: &[u8]) -> Vec<u8> {
    let mut plaintext = Vec::new();
    FileOpener::new(manifest)
        .open_to(sealed, &mut plaintext)
        .unwrap();
    plaintext
}

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

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found
}

fn stored_blobs(root: &Path) -> Vec<std::path::PathBuf> {
    files_under(&root.join("blobs"))
}

fn refusal_code(error: TransferError) -> ErrorCode {
    match error {
        TransferError::Refused { code, .. } => code,
        other => panic!("expected a refusal, got {other}"),
    }
}

fn post_refusal_code(error: ClientError) -> ErrorCode {
    match error {
        ClientError::Refused { code, .. } => code,
        other => panic!("expected a refusal, got {other}"),
    }
}

/// Waits until the relay says it holds no such file (the sweep runs every 100 ms).
async fn wait_until_deleted(client: &Client, blob: &BlobUpload) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        match download(client, blob).await {
            Ok(_) => {}
            Err(error) => {
                assert_eq!(refusal_code(error), ErrorCode::NoSuchFile);
                return;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the file was never deleted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A relay whose unused files go after a short grace period.
fn quick_sweep() -> RelayConfig {
    RelayConfig {
        file_grace: Duration::from_millis(300),
        file_sweep_interval: Duration::from_millis(100),
        max_file_size: 4 * 1024 * 1024,
        member_storage: 1024 * 1024,
        ..RelayConfig::default()
    }
}

/// A quick-sweeping relay, its owner Ada and member Bob, the text channel, a work directory.
async fn ada_and_bob() -> (TestRelay, TestClient, TestClient, u32, tempfile::TempDir) {
    let relay = start_relay_with(quick_sweep()).await;
    let ada = connect(&relay.owner_link, "ada").await;
    let bob = connect(&relay.member_link(None, None), "bob").await;
    let general = text_channel(&ada);
    (relay, ada, bob, general, tempfile::tempdir().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_travels_sealed_and_goes_once_no_message_carries_it() {
    let (relay, ada, bob, general, work) = ada_and_bob().await;

    // 300 KB of a canary phrase: readable text the relay must never hold in the clear.
    let canary = b"CANARY-FILE-CONTENT-quokka ";
    let plaintext: Vec<u8> = canary.iter().copied().cycle().take(300_000).collect();
    let (manifest, blob) = seal_to_file(&plaintext, &work.path().join("a.sealed"));
    let mut heard = Vec::new();
    let mut source = tokio::fs::File::open(work.path().join("a.sealed"))
        .await
        .unwrap();
    ada.client
        .upload_blob(&blob, &mut source, &mut |held| heard.push(held))
        .await
        .unwrap();
    assert_eq!(heard.first(), Some(&0));
    assert_eq!(
        heard.last(),
        Some(&blob.sealed_len),
        "progress reaches the end"
    );

    // Bob fetches it whole, and from the middle.
    let sealed = download(&bob.client, &blob).await.unwrap();
    assert_eq!(Sha256::digest(&sealed).as_slice(), blob.sealed_sha256);
    assert_eq!(open(&manifest, &sealed), plaintext);
    let mut tail = Vec::new();
    bob.client
        .download_blob(&blob.id, 100_000, &mut tail, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(tail, sealed[100_000..]);

    // What the relay holds: random-looking bytes, and no canary anywhere in its files.
    let stored = stored_blobs(relay.data.root());
    assert_eq!(stored.len(), 1);
    let bits = entropy(&std::fs::read(&stored[0]).unwrap());
    assert!(bits >= 7.9, "stored file entropy {bits:.3} bits/byte");
    for path in files_under(relay.data.root()) {
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes.windows(canary.len()).any(|window| window == canary),
            "{} holds the file's plaintext",
            path.display()
        );
    }
    println!("stored sealed file: {bits:.4} bits/byte");

    // A message carries it: past the grace period it stays.
    let posted = ada
        .client
        .post_message_with(general, [1; 16], vec![9; 200], vec![blob.id], None)
        .await
        .unwrap();
    // A second file uploaded but never posted goes after the grace period.
    let (_, unposted) = seal_to_file(b"never posted", &work.path().join("b.sealed"));
    upload(&ada.client, &unposted, &work.path().join("b.sealed"))
        .await
        .unwrap();
    wait_until_deleted(&bob.client, &unposted).await;
    // The carried file is older than the deleted one: past its grace period too, yet kept.
    assert!(download(&bob.client, &blob).await.is_ok(), "carried: kept");
    assert_eq!(stored_blobs(relay.data.root()).len(), 1);

    // Bob may not take back Ada's message; Ada may, and then the file goes.
    let refused = bob
        .client
        .post_message_with(general, [2; 16], vec![9; 200], vec![], Some(posted.seq))
        .await
        .unwrap_err();
    assert_eq!(post_refusal_code(refused), ErrorCode::Forbidden);
    ada.client
        .post_message_with(general, [3; 16], vec![9; 200], vec![], Some(posted.seq))
        .await
        .unwrap();
    wait_until_deleted(&bob.client, &blob).await;
    // The record goes first, then the bytes.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !stored_blobs(relay.data.root()).is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "bytes never deleted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_and_requests_are_refused_with_reasons() {
    let (_relay, ada, bob, general, work) = ada_and_bob().await;
    let path = work.path().join("a.sealed");
    let (_, blob) = seal_to_file(&[7u8; 100_000], &path);

    // Over the server's size limit.
    let huge = BlobUpload {
        sealed_len: 5 * 1024 * 1024,
        ..blob
    };
    let error = upload(&ada.client, &huge, &path).await.unwrap_err();
    assert!(error.to_string().contains("at most 4 MiB"), "{error}");
    assert_eq!(refusal_code(error), ErrorCode::FileTooLarge);

    // Bytes that do not match the announced hash are refused and dropped.
    let wrong_hash = BlobUpload {
        id: rand::random(),
        sealed_sha256: [0; 32],
        ..blob
    };
    let error = upload(&ada.client, &wrong_hash, &path).await.unwrap_err();
    assert!(error.is_retryable());
    assert_eq!(refusal_code(error), ErrorCode::FileDamaged);

    // Unknown files cannot be fetched or carried.
    assert_eq!(
        refusal_code(download(&bob.client, &blob).await.unwrap_err()),
        ErrorCode::NoSuchFile
    );
    let refused = ada
        .client
        .post_message_with(general, [1; 16], vec![9; 100], vec![blob.id], None)
        .await
        .unwrap_err();
    assert_eq!(post_refusal_code(refused), ErrorCode::NoSuchFile);

    // Another member cannot write into Ada's file.
    upload(&ada.client, &blob, &path).await.unwrap();
    let error = upload(&bob.client, &blob, &path).await.unwrap_err();
    assert_eq!(refusal_code(error), ErrorCode::ProtocolViolation);
    // Ada uploading it again is answered at once: it is stored.
    upload(&ada.client, &blob, &path).await.unwrap();
    // Her files may take 1 MiB here: one more of a megabyte is refused, saying why.
    let big_path = work.path().join("big.sealed");
    let (_, big) = seal_to_file(&vec![3u8; 1_000_000], &big_path);
    let error = upload(&ada.client, &big, &big_path).await.unwrap_err();
    assert!(
        error.to_string().contains("each member may keep"),
        "{error}"
    );
    assert_eq!(refusal_code(error), ErrorCode::FileTooLarge);
    assert_eq!(
        download(&bob.client, &blob).await.unwrap().len() as u64,
        blob.sealed_len
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_rate_limited_per_member() {
    let relay = start_relay_with(RelayConfig {
        upload_rate: 1,
        upload_burst: 3,
        ..RelayConfig::default()
    })
    .await;
    let ada = connect(&relay.owner_link, "ada").await;
    let work = tempfile::tempdir().unwrap();
    let mut refused = None;
    for index in 0..10 {
        let path = work.path().join(format!("{index}.sealed"));
        let (_, blob) = seal_to_file(b"small", &path);
        if let Err(error) = upload(&ada.client, &blob, &path).await {
            refused = Some((index, error));
            break;
        }
    }
    let (index, error) = refused.expect("the relay never slowed the uploads");
    assert!(index >= 3, "refused too early, at upload {index}");
    assert!(error.to_string().contains("wait a moment"), "{error}");
    assert_eq!(refusal_code(error), ErrorCode::RateLimited);
}

/// Reads a file but holds still at `hold_at` until released: the test's own source, so it can
/// kill the relay while an upload is surely in its middle.
struct HeldReader {
    file: tokio::fs::File,
    position: u64,
    hold_at: u64,
    released: Arc<AtomicBool>,
    wait: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl AsyncRead for HeldReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.position >= this.hold_at && !this.released.load(Ordering::SeqCst) {
            let wait = this
                .wait
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(Duration::from_millis(10))));
            if wait.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.wait = None;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let released = this.released.load(Ordering::SeqCst);
        let room = if released {
            buf.remaining()
        } else {
            usize::try_from(this.hold_at - this.position)
                .unwrap_or(usize::MAX)
                .min(buf.remaining())
        };
        let mut piece = vec![0u8; room];
        let mut piece_buf = ReadBuf::new(&mut piece);
        let poll = Pin::new(&mut this.file).poll_read(cx, &mut piece_buf);
        let read = piece_buf.filled().len();
        if let Poll::Ready(Ok(())) = poll {
            buf.put_slice(&piece[..read]);
            this.position += read as u64;
        }
        poll
    }
}

impl AsyncSeek for HeldReader {
    fn start_seek(mut self: Pin<&mut Self>, position: std::io::SeekFrom) -> std::io::Result<()> {
        Pin::new(&mut self.file).start_seek(position)
    }

    fn poll_complete(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<u64>> {
        let poll = Pin::new(&mut self.file).poll_complete(cx);
        if let Poll::Ready(Ok(position)) = poll {
            self.position = position;
        }
        poll
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_50_mb_upload_resumes_after_a_relay_sigkill_and_verifies() {
    let (_dir, data, mut owner_link) = init_data_dir();
    let address: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
    owner_link.port = address.port();
    let mut relay = RelayProcess::start(data.root(), address, metrics);
    let ada = connect(&owner_link, "ada").await;
    let invite = ada.client.create_invite(None, None, None).await.unwrap();
    let bob = connect(&invite, "bob").await;

    let work = tempfile::tempdir().unwrap();
    let path = work.path().join("big.sealed");
    let plaintext: Vec<u8> = (0..50_000_000u32).map(|i| (i % 251) as u8).collect();
    let (manifest, blob) = seal_to_file(&plaintext, &path);
    let half = blob.sealed_len / 2;

    // The first attempt stops feeding bytes at the half; the relay is killed while it waits.
    let released = Arc::new(AtomicBool::new(false));
    let mut source = HeldReader {
        file: tokio::fs::File::open(&path).await.unwrap(),
        position: 0,
        hold_at: half,
        released: released.clone(),
        wait: None,
    };
    let uploader = ada.client.clone();
    let first =
        tokio::spawn(async move { uploader.upload_blob(&blob, &mut source, &mut |_| {}).await });
    let part = data.root().join("blobs").join(format!(
        "{}.part",
        blob.id
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    ));
    // The relay writes in pieces of up to 1 MiB: wait until all but the last piece is on disk.
    let held = || std::fs::metadata(&part).map_or(0, |meta| meta.len());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while held() + (1 << 20) < half {
        assert!(tokio::time::Instant::now() < deadline, "half never arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    relay.kill_9();
    let held_at_kill = held();
    let _relay = RelayProcess::start(data.root(), address, metrics);
    released.store(true, Ordering::SeqCst);
    let first = first.await.unwrap();
    assert!(
        first.as_ref().is_err_and(TransferError::is_retryable),
        "the interrupted attempt says to retry: {first:?}"
    );

    // Retry until it is stored, as a client does after reconnecting; note where it resumed.
    let mut resumed_at = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut source = tokio::fs::File::open(&path).await.unwrap();
        let mut first_progress = None;
        let result = ada
            .client
            .upload_blob(&blob, &mut source, &mut |held| {
                first_progress.get_or_insert(held);
            })
            .await;
        match result {
            Ok(()) => {
                resumed_at = resumed_at.or(first_progress);
                break;
            }
            Err(error) if error.is_retryable() => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "never resumed: {error}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("{error}"),
        }
    }
    let resumed_at = resumed_at.unwrap();
    assert_eq!(
        resumed_at, held_at_kill,
        "resumes right after the bytes the relay held"
    );

    // Bob fetches it and it opens whole.
    let mut sealed = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while let Err(error) = bob
        .client
        .download_blob(&blob.id, 0, &mut sealed, &mut |_| {})
        .await
    {
        assert!(
            error.is_retryable() && tokio::time::Instant::now() < deadline,
            "{error}"
        );
        sealed.clear();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(Sha256::digest(&sealed).as_slice(), blob.sealed_sha256);
    assert!(
        open(&manifest, &sealed) == plaintext,
        "the file opens whole"
    );
    println!(
        "50 MB upload: relay SIGKILLed with {held_at_kill} of {} sealed bytes held; resumed at byte {resumed_at}; SHA-256 verified",
        blob.sealed_len
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_in_a_channel_one_may_not_view_cannot_be_fetched() {
    let (_relay, ada, bob, general, work) = ada_and_bob().await;
    let (_, blob) = seal_to_file(b"the staff's plans", &work.path().join("plans"));
    upload(&ada.client, &blob, &work.path().join("plans"))
        .await
        .unwrap();
    ada.client
        .post_message_with(general, [5; 16], vec![1; 64], vec![blob.id], None)
        .await
        .unwrap();
    assert!(download(&bob.client, &blob).await.is_ok());
    // #general becomes private to the owner: Bob can no longer fetch what it carries.
    let mut roles = ada.client.roles_changes();
    let book = roles
        .wait_for(Option::is_some)
        .await
        .unwrap()
        .clone()
        .unwrap();
    ada.client
        .manage_roles(sotto_net::roles::RoleChange::Override(
            sotto_net::roles::ChannelOverride {
                channel_id: general,
                role_id: book.role_named("member").unwrap().id,
                allow: sotto_net::roles::Permissions::NONE,
                deny: sotto_net::roles::Permissions::VIEW_CHANNEL,
            },
        ))
        .await
        .unwrap();
    let refused = download(&bob.client, &blob).await.unwrap_err();
    assert_eq!(refusal_code(refused), ErrorCode::NoSuchFile);
    assert!(download(&ada.client, &blob).await.is_ok());
}
