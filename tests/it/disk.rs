//! Disk trouble (issue 6): a full disk, or a data dir whose filesystem turns
//! read-only while hookbox runs, makes ingest answer 503 with a clear reason instead
//! of crashing, and ingest resumes when the disk can be written again. Both are staged
//! on real filesystems (tests run as root, as CI does):
//!
//! - full: a tmpfs of a few MiB, filled by another file;
//! - read-only: ext4 in a file on a loop device, mounted `errors=remount-ro`, made to
//!   take an error through its `trigger_fs_error` sysfs knob, which is what a failing
//!   disk does in production. A plain `mount -o remount,ro` is not used because Linux
//!   refuses it (EBUSY) while the data file is open for writing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Tenant, TestApp};
use crate::receiver::TestReceiver;

/// A tmpfs mounted on a temporary directory; unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().expect("mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(status.success(), "mounting a tmpfs needs root, as in CI");
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn remount(&self, mode: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(self.dir.path())
            .status()
            .expect("run mount");
        assert!(status.success(), "remount {mode}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Writes a file until the disk is full; returns its path.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).expect("filler");
    let chunk = vec![0u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.sync_all();
    path
}

async fn ingest(app: &TestApp, t: &Tenant, n: usize) -> (StatusCode, Value) {
    let big = "x".repeat(100 * 1024);
    app.as_tenant(
        t,
        Method::POST,
        "/v1/events",
        Some(json!({"type": "shift.created", "data": {"n": n, "pad": big}})),
    )
    .await
}

/// Ingests until the store refuses (it may take a few commits to run out of the
/// pages redb already has); returns the refusal.
async fn ingest_until_refused(app: &TestApp, t: &Tenant) -> Value {
    for n in 0..400 {
        let (s, body) = ingest(app, t, n).await;
        if s == StatusCode::SERVICE_UNAVAILABLE {
            return body;
        }
        assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    }
    panic!("the store never refused a write on a full disk");
}

/// Polls until ingest is accepted again (the writer probes the disk every second).
async fn ingest_until_accepted(app: &TestApp, t: &Tenant) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (s, body) = ingest(app, t, 9999).await;
        if s == StatusCode::ACCEPTED {
            return body;
        }
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "ingest never resumed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// hookbox on `data`, with a tenant and a webhook to a test receiver.
async fn serve_from(data: PathBuf) -> (TestApp, TestReceiver, Tenant) {
    let app = TestApp::spawn_redb_with(|c| c.data_dir = data).await;
    let rx = TestReceiver::start().await;
    let t = app.tenant("acme").await;
    app.webhook(
        &t,
        json!({"url": rx.url("/"), "event_types": ["shift.created"]}),
    )
    .await;
    (app, rx, t)
}

#[tokio::test]
async fn a_full_disk_gives_503_and_ingest_resumes_when_space_returns() {
    let fs = Tmpfs::mount("12m");
    let (app, rx, t) = serve_from(fs.path().join("data")).await;

    // Full disk.
    let filler = fill(fs.path());
    let refusal = ingest_until_refused(&app, &t).await;
    assert_eq!(refusal["error"]["code"], "unavailable", "{refusal}");
    let msg = refusal["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("full or read-only"), "{msg}");
    let (s, ready) = app.raw(Method::GET, "/readyz", &[], Vec::new()).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{ready}");
    let (s, _) = app.raw(Method::GET, "/healthz", &[], Vec::new()).await;
    assert_eq!(s, StatusCode::OK, "the process stays up");

    std::fs::remove_file(&filler).expect("free the disk");
    let accepted = ingest_until_accepted(&app, &t).await;
    let (s, _) = app.raw(Method::GET, "/readyz", &[], Vec::new()).await;
    assert_eq!(s, StatusCode::OK);
    // What was acknowledged after recovery is delivered.
    wait_delivered(&rx, accepted["id"].as_str().expect("event id")).await;
}

#[tokio::test]
async fn a_start_on_a_read_only_data_dir_fails_with_a_clear_reason() {
    let fs = Tmpfs::mount("8m");
    let data = fs.path().join("data");
    let mut app = TestApp::spawn_redb_with(|c| c.data_dir = data.clone()).await;
    let config = app.config.clone();
    app.stop().await;
    fs.remount("ro");
    let err = match hookbox::app::App::build(config).await {
        Ok(_) => panic!("started on a read-only data dir"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.to_lowercase().contains("read-only"), "{err}");
    fs.remount("rw");
}

/// Runs a command and says which one failed if it does.
fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// An ext4 filesystem in an image file, on a loop device, mounted on `mnt` with
/// `errors=remount-ro`. Unmounted and detached on drop.
struct LoopExt4 {
    work: tempfile::TempDir,
    devices: Vec<String>,
}

impl LoopExt4 {
    fn create() -> LoopExt4 {
        let work = tempfile::tempdir().expect("work dir");
        std::fs::create_dir(work.path().join("mnt")).expect("mount point");
        let image = work.path().join("disk-0.img");
        std::fs::File::create(&image)
            .and_then(|f| f.set_len(64 << 20))
            .expect("image file");
        run("mkfs.ext4", &["-q", "-F", &image.to_string_lossy()]);
        let mut fs = LoopExt4 {
            work,
            devices: Vec::new(),
        };
        fs.attach_and_mount(&image);
        fs
    }

    fn mnt(&self) -> PathBuf {
        self.work.path().join("mnt")
    }

    fn attach_and_mount(&mut self, image: &Path) {
        let dev = run("losetup", &["-f", "--show", &image.to_string_lossy()]);
        self.devices.push(dev.clone());
        run(
            "mount",
            &[
                "-t",
                "ext4",
                "-o",
                "errors=remount-ro",
                &dev,
                &self.mnt().to_string_lossy(),
            ],
        );
    }

    /// Makes the filesystem take an error, as a failing disk does: ext4 aborts its
    /// journal and turns read-only under every open file.
    fn fail(&self) {
        let dev = self.devices.last().expect("a device");
        let name = Path::new(dev).file_name().expect("device name");
        let knob = Path::new("/sys/fs/ext4")
            .join(name)
            .join("trigger_fs_error");
        std::fs::write(&knob, "hookbox disk test").expect("trigger an ext4 error");
    }

    /// What an operator does after a disk error: unmount, check a copy of the disk
    /// (the journal replays), and mount the repaired copy in the same place. hookbox
    /// keeps running throughout.
    fn repair(&mut self) {
        run("umount", &["-l", &self.mnt().to_string_lossy()]);
        let n = self.devices.len();
        let old = self.work.path().join(format!("disk-{}.img", n - 1));
        let new = self.work.path().join(format!("disk-{n}.img"));
        std::fs::copy(&old, &new).expect("copy the disk image");
        // e2fsck exits 1 when it fixed something (the aborted journal): that is fine.
        let status = Command::new("e2fsck")
            .args(["-f", "-y"])
            .arg(&new)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("run e2fsck");
        assert!(
            matches!(status.code(), Some(0 | 1)),
            "e2fsck could not repair the image: {status}"
        );
        self.attach_and_mount(&new);
    }
}

impl Drop for LoopExt4 {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.mnt()).status();
        for dev in &self.devices {
            let _ = Command::new("losetup").args(["-d", dev]).status();
        }
    }
}

/// Waits until the receiver has seen a delivery of event `id`.
async fn wait_delivered(rx: &TestReceiver, id: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !rx
        .received()
        .iter()
        .any(|r| r.header("webhook-id") == Some(id))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "event {id} not delivered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_data_dir_turning_read_only_gives_503_and_ingest_resumes_after_repair() {
    let mut fs = LoopExt4::create();
    let (app, rx, t) = serve_from(fs.mnt().join("data")).await;
    let mut acked = Vec::new();
    for n in 0..5 {
        let (s, body) = ingest(&app, &t, n).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{body}");
        acked.push(body["id"].as_str().expect("event id").to_owned());
    }

    fs.fail();
    let refusal = ingest_until_refused(&app, &t).await;
    assert_eq!(refusal["error"]["code"], "unavailable", "{refusal}");
    let msg = refusal["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("Read-only file system"), "the cause: {msg}");
    assert!(msg.contains("full or read-only"), "{msg}");
    // It keeps refusing while the disk stays read-only, and stays up.
    let (s, body) = ingest(&app, &t, 100).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let (s, ready) = app.raw(Method::GET, "/readyz", &[], Vec::new()).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{ready}");
    let (s, _) = app.raw(Method::GET, "/healthz", &[], Vec::new()).await;
    assert_eq!(s, StatusCode::OK, "the process stays up");
    let (s, _) = app
        .as_tenant(&t, Method::GET, &format!("/v1/events/{}", acked[0]), None)
        .await;
    assert_eq!(s, StatusCode::OK, "reads still work on a read-only disk");

    fs.repair();
    let accepted = ingest_until_accepted(&app, &t).await;
    let (s, _) = app.raw(Method::GET, "/readyz", &[], Vec::new()).await;
    assert_eq!(s, StatusCode::OK);
    // Everything acknowledged before the error is on the repaired disk, and
    // everything acknowledged is delivered.
    for id in &acked {
        let (s, body) = app
            .as_tenant(&t, Method::GET, &format!("/v1/events/{id}"), None)
            .await;
        assert_eq!(
            s,
            StatusCode::OK,
            "event {id} acknowledged before the error: {body}"
        );
        wait_delivered(&rx, id).await;
    }
    wait_delivered(&rx, accepted["id"].as_str().expect("event id")).await;
}
