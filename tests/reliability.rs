//! Reliability and security (issue 5): nothing lost, nothing trusted blindly, no
//! one let in. Each test states the property it checks; together they are the
//! table of cases in the README's "The checkpoint file" section.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use ckpt_image::{ARCH_X86, HEADER_LEN, Header, PROCESS_LEN, REGION_LEN, RUN_LEN, hash64};
use common::*;

/// `ckpt verify FILE` (or `info`), run in DIR.
fn tool(dir: &Dir, what: &str, file: &Path) -> Output {
    ckpt(dir, &[what]).arg(file).output().expect("run ckpt")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Offset of the image header: the first page that starts with the magic.
fn header_offset(image: &[u8]) -> usize {
    image.chunks(4096).position(|c| c.starts_with(b"CKPTIMG\0")).expect("image header") * 4096
}

fn header_of(image: &[u8]) -> (usize, Header) {
    let at = header_offset(image);
    (at, Header::decode(&image[at..at + HEADER_LEN]).unwrap())
}

/// Write HEADER back at its place, sealed again (a "valid" header with the given
/// fields: the damage the checksums cannot see).
fn reseal(image: &mut [u8], at: usize, mut header: Header) {
    let mut b = [0u8; HEADER_LEN];
    header.seal(&mut b);
    image[at..at + HEADER_LEN].copy_from_slice(&b);
}

/// Reseal the metadata checksum after an edit of the metadata, then the header.
fn reseal_meta(image: &mut [u8]) {
    let (at, mut h) = header_of(image);
    let m = h.meta_offset as usize;
    h.meta_hash = hash64(&image[m..m + h.meta_len as usize]);
    reseal(image, at, h);
}

fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// What the loader must do with a damaged file.
#[derive(Clone, Copy, Debug)]
enum Loader {
    /// Refuse it: exit 1, `ckpt restart: FILE: ...` containing the text, nothing run.
    Refuses(&'static str),
    /// Not an executable at all: exec fails with ENOEXEC.
    NotExecutable,
    /// Cut: exec fails with ENOEXEC (inside the ELF or program headers), or the
    /// loader refuses it with this text.
    Cut(&'static str),
    /// Not its business (page data, loader bytes, trailing bytes): not run.
    Skip,
}

/// Every kind of damage, refused by the loader before it touches memory and by
/// `ckpt verify` with a message naming the part: truncation at 45 offsets from
/// the ELF header to the last byte, bit flips in every header field, in the
/// registers, the region table, the run table, the strings, the page data, the
/// loader and the padding, tables that are wrong but re-sealed, an empty file, a
/// text file, an ordinary ELF program, trailing bytes, and an image from another
/// architecture. Never a signal, a hang, or the program running.
#[test]
fn damaged_files_are_refused_by_loader_and_verify() {
    let dir = Dir::new("rel-damaged");
    dir.compile("counter.c", "counter", &[]);
    let image = dir.join("counter.ckpt");
    checkpoint(ckpt(&dir, &["./counter"]), &image);
    let good = fs::read(&image).unwrap();
    let v = tool(&dir, "verify", &image);
    assert!(v.status.success(), "verify of a good image: {}", text(&v.stderr));
    assert!(text(&v.stdout).contains("counter.ckpt: ok: x86_64 image of"), "{}", text(&v.stdout));

    let (hat, h) = header_of(&good);
    let (meta, data, len) = (h.meta_offset as usize, h.data_offset as usize, good.len());
    let meta_end = meta + h.meta_len as usize;
    let regions = meta + PROCESS_LEN;
    let runs = regions + h.nregions as usize * REGION_LEN;
    let strings = runs + h.nruns as usize * RUN_LEN;
    assert_eq!(hat as u64, h.image_offset);

    let mut cases: Vec<(String, Vec<u8>, &str, Loader)> = Vec::new();
    let cuts = [
        1,
        4,
        16,
        52,
        63,
        64,
        100,
        120,
        200,
        1000,
        4095,
        4096,
        4097,
        8192,
        12000,
        16384,
        20000,
        24576,
        30000,
        hat - 1,
        hat,
        hat + 1,
        hat + 64,
        hat + 127,
        hat + 128,
        meta + 100,
        regions + 10,
        runs + 10,
        strings + 1,
        meta_end - 1,
        meta_end,
        data - 1,
        data,
        data + 1,
        data + 4096,
        data + (len - data) / 4,
        data + (len - data) / 2,
        data + 3 * (len - data) / 4,
        len - 8192,
        len - 4097,
        len - 4096,
        len - 4095,
        len - 100,
        len - 2,
        len - 1,
    ];
    for cut in cuts {
        let want = if cut < 4 { "not a checkpoint image" } else { "truncated image" };
        cases.push((format!("cut at {cut}"), good[..cut].to_vec(), want, Loader::Cut("truncated image")));
    }
    let flip = |off: usize, bit: u8| {
        let mut b = good.clone();
        b[off] ^= 1 << bit;
        b
    };
    // Every field of the header; the magic is "not an image", the rest a checksum.
    for field in (0..HEADER_LEN).step_by(4) {
        let (vmsg, lmsg) = if field < 8 {
            ("not a checkpoint image", "not a ckpt checkpoint image")
        } else {
            ("image header is damaged (checksum mismatch)", "image header is damaged")
        };
        cases.push((format!("header byte {field}"), flip(hat + field, 2), vmsg, Loader::Refuses(lmsg)));
    }
    let meta_msg = "image metadata is damaged (checksum mismatch)";
    for (what, off) in [
        ("saved stack pointer", meta),
        ("saved instruction pointer", meta + 8),
        ("saved fs base", meta + 80),
        ("process record: cpu features", meta + 100),
        ("region 0 start", regions),
        ("region 0 end", regions + 9),
        ("region 3 prot", regions + 3 * REGION_LEN + 16),
        ("last region kind", runs - REGION_LEN + 20),
        ("run 0 address", runs + 1),
        ("run 5 length", runs + 5 * RUN_LEN + 9),
        ("last run file offset", strings - RUN_LEN + 16),
        ("string table", strings + 3),
        ("last metadata byte", meta_end - 1),
    ] {
        cases.push((
            format!("bit flipped in the {what}"),
            flip(off, 5),
            meta_msg,
            Loader::Refuses("image metadata is damaged"),
        ));
    }
    // Structural damage with good checksums: the parser itself must refuse it.
    {
        let mut b = good.clone();
        // Region 1 starts inside region 0.
        let r0_end = u64::from_le_bytes(b[regions + 8..regions + 16].try_into().unwrap());
        b[regions + REGION_LEN..regions + REGION_LEN + 8].copy_from_slice(&(r0_end - 4096).to_le_bytes());
        reseal_meta(&mut b);
        cases.push((
            "re-sealed overlapping regions".into(),
            b,
            "image region table is damaged (entry 1)",
            Loader::Refuses("image region table is damaged (entry 1)"),
        ));
        let mut b = good.clone();
        // Run 2 points outside the data.
        let r = runs + 2 * RUN_LEN + 16;
        b[r..r + 8].copy_from_slice(&(len as u64 + 4096).to_le_bytes());
        reseal_meta(&mut b);
        cases.push((
            "re-sealed run outside the file".into(),
            b,
            "image page table is damaged",
            Loader::Refuses("image page table is damaged"),
        ));
        let mut b = good.clone();
        b[meta + 8..meta + 16].copy_from_slice(&0x1000u64.to_le_bytes());
        reseal_meta(&mut b);
        let m = "image saved registers point outside the saved memory";
        cases.push(("re-sealed instruction pointer 0x1000".into(), b, m, Loader::Refuses(m)));
        let mut b = good.clone();
        let mut h2 = h;
        h2.data_len -= 4096;
        h2.file_len -= 4096;
        b.truncate(len - 4096);
        reseal(&mut b, hat, h2);
        cases.push((
            "re-sealed header one page short".into(),
            b,
            "image page table is damaged",
            Loader::Refuses("image page table is damaged"),
        ));
    }
    // Page data: the loader checks each piece's hash as it reads (or maps) it.
    for off in [data, data + 4095, data + (len - data) / 3, len - 1] {
        cases.push((
            format!("data byte {off}"),
            flip(off, 0),
            "the page data is damaged",
            Loader::Refuses("the page data is damaged (piece"),
        ));
    }
    cases.push(("loader byte 20000".into(), flip(20000, 6), "the restart loader is damaged", Loader::Skip));
    if data - meta_end > 0 {
        cases.push((
            "padding byte".into(),
            flip(meta_end + (data - meta_end) / 2, 1),
            "the padding before the page data is damaged",
            Loader::Skip,
        ));
    }
    let mut longer = good.clone();
    longer.extend_from_slice(&[0u8; 10]);
    cases.push(("10 bytes appended".into(), longer, "10 bytes after the end of the image", Loader::Skip));
    cases.push(("empty file".into(), Vec::new(), "empty file, not a checkpoint image", Loader::NotExecutable));
    cases.push((
        "text file".into(),
        b"hello, not a checkpoint\n".repeat(1000),
        "not a checkpoint image",
        Loader::NotExecutable,
    ));
    cases.push((
        "random bytes".into(),
        (0..70_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect(),
        "not a checkpoint image",
        Loader::NotExecutable,
    ));
    cases.push((
        "an ordinary program".into(),
        fs::read(dir.join("counter")).unwrap(),
        "not a checkpoint image",
        Loader::Skip,
    ));
    // A checkpoint from another architecture in a correctly sealed header: an i386
    // image behind this x86_64 loader (the loader refuses it; verify sees that the
    // loader does not match), and an architecture ckpt does not know at all.
    {
        let mut b = good.clone();
        let mut h2 = h;
        h2.arch = ARCH_X86;
        reseal(&mut b, hat, h2);
        cases.push((
            "i386 image behind the x86_64 loader".into(),
            b,
            "the restart loader is damaged or foreign (ELF e_machine 62, but the image is i386)",
            Loader::Refuses("image is for another architecture (e_machine 3)"),
        ));
        let mut b = good.clone();
        let mut h3 = h;
        h3.arch = 40; // EM_ARM
        reseal(&mut b, hat, h3);
        cases.push((
            "ARM image".into(),
            b,
            "image is for another architecture (e_machine 40)",
            Loader::Refuses("image is for another architecture (e_machine 40)"),
        ));
    }

    let bad = dir.join("bad.ckpt");
    let mut table = Vec::new();
    for (what, bytes, vmsg, loader) in &cases {
        fs::write(&bad, bytes).unwrap();
        set_mode(&bad, 0o700);
        let v = tool(&dir, "verify", &bad);
        let verr = text(&v.stderr);
        assert_eq!(v.status.code(), Some(1), "verify, {what}: {verr}");
        assert!(verr.starts_with("ckpt: ") && verr.contains(vmsg), "verify, {what}: want {vmsg:?}, got {verr}");
        let restart = match loader {
            Loader::Skip => "not run".to_string(),
            Loader::Refuses(_) | Loader::NotExecutable | Loader::Cut(_) => {
                match Proc::try_spawn(restart_cmd(&bad, dir.path())) {
                    Err(e) => {
                        assert_eq!(e.raw_os_error(), Some(8), "{what}: exec: {e}");
                        assert!(!matches!(loader, Loader::Refuses(_)), "{what}: the loader did not even run");
                        "exec: ENOEXEC".to_string()
                    }
                    Ok(p) => {
                        let o = p.finish();
                        assert_eq!(o.status.code(), Some(1), "{what}: {}\n{o}", o.status);
                        assert!(o.ticks().is_empty() && !o.has("RESTARTED"), "{what}: the program ran\n{o}");
                        let msg = o.stderr.lines().next().unwrap_or("").to_string();
                        assert!(msg.starts_with("ckpt restart: "), "{what}: {o}");
                        match loader {
                            Loader::Refuses(m) | Loader::Cut(m) => assert!(msg.contains(m), "{what}: want {m:?}\n{o}"),
                            _ => panic!("{what}: the loader ran\n{o}"),
                        }
                        msg
                    }
                }
            }
        };
        table.push(format!("{what:40} | {} | {restart}", verr.trim_end()));
    }
    eprintln!("{} damaged files, verify | restart:\n{}", cases.len(), table.join("\n"));

    // And the original is untouched and still restarts.
    let second = restart(&image, dir.path());
    second.assert_ok("restart of the good image");
}

/// `ckpt info` describes an image without running it: program, arguments,
/// directory, time, kernel, architecture, regions and sizes; `--json` too.
#[test]
fn info_describes_an_image() {
    let dir = Dir::new("rel-info");
    dir.compile("counter.c", "counter", &[]);
    let image = dir.join("counter.ckpt");
    checkpoint(ckpt(&dir, &["./counter", "60"]), &image);
    let kernel = Command::new("uname").arg("-r").output().unwrap();
    let kernel = text(&kernel.stdout).trim().to_string();
    let o = tool(&dir, "info", &image);
    let out = text(&o.stdout);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let program = dir.join("counter").canonicalize().unwrap();
    for want in [
        format!("program:      {}", program.display()),
        "arguments:    ./counter 60".to_string(),
        format!("directory:    {}", dir.path().canonicalize().unwrap().display()),
        format!("kernel:       Linux {kernel}"),
        "x86_64".to_string(),
        " UTC (pid ".to_string(),
        "[heap]".to_string(),
        "[stack]".to_string(),
        "libc.so.6".to_string(),
        " rw-p stack ".to_string(),
    ] {
        assert!(out.contains(&want), "{want:?} not in ckpt info:\n{out}");
    }
    let o = ckpt(&dir, &["info", "--json"]).arg(&image).output().unwrap();
    let json = text(&o.stdout);
    assert!(o.status.success(), "{}", text(&o.stderr));
    for want in [
        "\"arch\":\"x86_64\"",
        "\"e_machine\":62",
        "\"arguments\":[\"./counter\",\"60\"]",
        &format!("\"kernel\":\"{kernel}\""),
        "\"kind\":\"heap\"",
        "\"name\":\"[stack]\"",
    ] {
        assert!(json.contains(want), "{want:?} not in ckpt info --json:\n{json}");
    }
    assert!(json.starts_with('{') && json.ends_with("}\n"), "{json}");
    // The time is now, give or take the test's own run time.
    let t: u64 = json.split("\"time\":").nth(1).unwrap().split(',').next().unwrap().parse().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!(t <= now && now - t < 120, "time {t}, now {now}");
}

/// A tmpfs of a few MiB mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mount it at `at`; the test fails if it cannot (it needs root, or
    /// CAP_SYS_ADMIN, as CI has).
    fn mount(at: PathBuf, size: &str) -> Tmpfs {
        require_root("mount a tmpfs");
        fs::create_dir_all(&at).unwrap();
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755"), "ckpt-test"])
            .arg(&at)
            .output()
            .expect("run mount");
        assert!(o.status.success(), "cannot mount a tmpfs at {}: {}", at.display(), text(&o.stderr).trim());
        Tmpfs(at)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Wait (polling) until `cond` holds, or panic after `secs` seconds.
fn wait_until(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Disk full: a checkpoint into a small file system that fills up mid-write
/// fails with "No space left on device", removes its temporary file, leaves the
/// previous checkpoint byte for byte intact and the program running; once space
/// is freed the next checkpoint succeeds and restarts.
#[test]
fn disk_full_keeps_previous_image_and_program() {
    let dir = Dir::new("rel-diskfull");
    dir.compile("counter.c", "counter", &[]);
    let fs_ = Tmpfs::mount(dir.join("fs"), "8m");
    let image = fs_.0.join("counter.ckpt");
    let mut p = Proc::spawn(ckpt(&dir, &["-c", "-n", "fs/counter.ckpt", "./counter", "150"]));
    p.wait_for("READY");
    std::thread::sleep(random_delay(50, 200));
    p.signal("TSTP");
    wait_until("the first checkpoint", 30, || image.exists());
    let good = fs::read(&image).unwrap();
    // Leave 1 MiB free: the next image (about 2.5 MB) runs out of room half-way.
    let filler = fs_.0.join("filler");
    let room = 8 * 1024 * 1024 - good.len() - (1 << 20);
    fs::write(&filler, vec![1u8; room]).unwrap();

    // In continue mode a background writer writes the image: its report on
    // stderr is the sign that it is over.
    p.signal("TSTP");
    wait_until("the failed checkpoint's report", 30, || p.stderr_now().contains("checkpoint failed"));
    let n = p.current_tick();
    p.wait_for(&format!("TICK {}", n + 2)); // still running after the failure
    assert_eq!(fs::read(&image).unwrap(), good, "the failed checkpoint touched the previous image");
    let left: Vec<_> = fs::read_dir(&fs_.0).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 2, "a temporary file was left: {left:?}");

    fs::remove_file(&filler).unwrap();
    p.signal("TSTP");
    wait_until("the checkpoint after freeing space", 30, || fs::read(&image).map(|b| b != good).unwrap_or(false));
    let o = p.finish();
    o.assert_ok("a program whose checkpoint ran out of space");
    assert!(o.has("DONE"), "{o}");
    assert_eq!(o.ticks(), (1..=150).collect::<Vec<_>>(), "{o}");
    let failures: Vec<_> = o.stderr.lines().filter(|l| l.contains("checkpoint failed")).collect();
    assert_eq!(failures.len(), 1, "{}", o.stderr);
    assert!(
        failures[0].starts_with("ckpt: checkpoint failed: No space left on device (writing fs/counter.ckpt)"),
        "{}",
        o.stderr
    );
    assert_image(&image);
    let v = tool(&dir, "verify", &image);
    assert!(v.status.success(), "{}", text(&v.stderr));
    let second = restart(&image, dir.path());
    second.assert_ok("restart of the image written after space was freed");
    let from = *second.ticks().first().unwrap_or_else(|| panic!("no ticks after restart\n{second}"));
    assert!(from >= n + 3, "restarted at tick {from}, before the last checkpoint\n{second}");
    assert_eq!(second.ticks(), (from..=150).collect::<Vec<_>>(), "{second}");
}

/// The temporary files of checkpoint NAME in DIR (`.NAME.tmp.PID.N`), with sizes.
fn temp_files(dir: &Path, name: &str) -> Vec<(String, u64)> {
    let prefix = format!(".{name}.tmp.");
    fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let n = e.file_name().into_string().ok()?;
            let len = e.metadata().ok()?.len();
            n.starts_with(&prefix).then_some((n, len))
        })
        .collect()
}

/// Crash during write: the process writing a 128 MiB image is SIGKILLed half-way
/// (in continue mode, the background writer; the program goes on). The previous
/// checkpoint is byte for byte intact and restarts; the killed writer's temporary
/// file (its pid in the name) stays behind until the next successful checkpoint
/// of the same name, which removes it because that pid is dead.
#[test]
fn killed_writer_leaves_previous_image_restartable() {
    let dir = Dir::new("rel-killed");
    dir.compile("bigheap.c", "bigheap", &[]);
    let image = dir.join("bigheap.ckpt");
    let mut p = Proc::spawn(ckpt(&dir, &["-c", "./bigheap", "128", "400"]));
    p.wait_for("READY");
    std::thread::sleep(random_delay(50, 200));
    p.signal("TSTP");
    wait_until("the first checkpoint", 60, || image.exists());
    let good = fs::read(&image).unwrap();

    p.signal("TSTP");
    let mut seen = (String::new(), 0);
    wait_until("the second checkpoint's temporary file to grow past 32 MiB", 60, || {
        let t = temp_files(dir.path(), "bigheap.ckpt");
        assert!(
            !(t.is_empty() && seen.1 > 0),
            "the write finished before the test could kill it (last size seen {})",
            seen.1
        );
        if let Some(f) = t.first() {
            seen = f.clone();
        }
        seen.1 > 32 << 20
    });
    // .bigheap.ckpt.tmp.PID.N: the writer's pid.
    let writer: u32 = seen.0.split('.').nth(4).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{}", seen.0));
    assert_ne!(writer, p.pid(), "the program itself is writing in continue mode");
    assert!(std::process::Command::new("kill").args(["-KILL", &writer.to_string()]).status().unwrap().success());
    let n = p.current_tick();
    p.wait_for(&format!("TICK {}", n + 2)); // the program goes on
    wait_until("the killed writer to be gone", 10, || {
        fs::read_to_string(format!("/proc/{writer}/stat")).map_or(true, |s| s.contains(") Z"))
    });
    assert_eq!(fs::read(&image).unwrap(), good, "a killed writer changed the previous image");
    let left = temp_files(dir.path(), "bigheap.ckpt");
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].0, seen.0);

    // The previous image restarts with its heap intact.
    let keep = dir.join("previous.ckpt");
    fs::write(&keep, &good).unwrap();
    set_mode(&keep, 0o700);
    let mut r = Proc::spawn(restart_cmd(&keep, dir.path()));
    r.wait_for("RESTARTED checksum ok");
    r.wait_for("TICK");
    r.kill();

    // The program's next checkpoint succeeds and removes the dead writer's file.
    p.signal("TSTP");
    wait_until("the next checkpoint", 60, || {
        fs::read(&image).map(|b| b != good).unwrap_or(false) && temp_files(dir.path(), "bigheap.ckpt").is_empty()
    });
    p.kill();
    let v = tool(&dir, "verify", &image);
    assert!(v.status.success(), "{}", text(&v.stderr));
}

/// Symbolic links planted in a shared directory at the final name and at the
/// temporary names the writer will try (`.NAME.tmp.PID.0` ... `.4`: the PID is
/// known once the program runs) do not redirect the write: the victim they
/// point at is untouched, and the checkpoint replaces the link at the final
/// name with a regular file (rename replaces the link itself).
#[test]
fn planted_symlinks_do_not_redirect_the_write() {
    let dir = Dir::new("rel-symlink");
    dir.compile("counter.c", "counter", &[]);
    let victim = dir.join("victim");
    fs::write(&victim, b"precious").unwrap();
    set_mode(&victim, 0o644);
    let shared = dir.join("shared");
    fs::create_dir(&shared).unwrap();
    set_mode(&shared, 0o1777);
    let image = shared.join("counter.ckpt");

    let mut p = Proc::spawn(ckpt(&dir, &["-n", "shared/counter.ckpt", "./counter"]));
    let pid = p.pid();
    std::os::unix::fs::symlink(&victim, &image).unwrap();
    let mut planted = Vec::new();
    for n in 0..5 {
        let link = shared.join(format!(".counter.ckpt.tmp.{pid}.{n}"));
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        planted.push(link);
    }
    // A dangling one too: O_CREAT through it would create the target.
    let dangling = dir.join("created-through-link");
    std::os::unix::fs::symlink(&dangling, shared.join(format!(".counter.ckpt.tmp.{pid}.5"))).unwrap();
    p.wait_for("READY");
    std::thread::sleep(random_delay(50, 300));
    p.signal("TSTP");
    let first = p.finish();
    first.assert_checkpointed("the checkpointed run");

    assert_eq!(fs::read(&victim).unwrap(), b"precious", "the victim was written through a link");
    assert_eq!(fs::metadata(&victim).unwrap().permissions().mode() & 0o7777, 0o644, "the victim's mode changed");
    assert!(!dangling.exists(), "a file was created through a dangling link");
    let m = fs::symlink_metadata(&image).unwrap();
    assert!(m.file_type().is_file(), "the final name is still a link: {m:?}");
    assert_eq!(m.permissions().mode() & 0o7777, 0o700);
    for link in &planted {
        assert!(fs::symlink_metadata(link).unwrap().file_type().is_symlink(), "{} was replaced", link.display());
    }
    let second = restart(&image, dir.path());
    second.assert_ok("restart");
    assert_continues(&first, &second, 60);
}

/// Checkpoint files are owner-only (0700) whatever the umask.
#[test]
fn image_is_owner_only_whatever_the_umask() {
    let dir = Dir::new("rel-umask");
    dir.compile("counter.c", "counter", &[]);
    for umask in ["000", "022", "077", "777"] {
        let image = dir.join("counter.ckpt");
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &format!("umask {umask} && exec \"$0\" ./counter")]).arg(ckpt_bin()).current_dir(dir.path());
        // checkpoint() asserts mode 0700 exactly (no setuid, setgid or sticky bit).
        checkpoint(cmd, &image);
        let m = fs::metadata(&image).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o700, "umask {umask}");
        assert_eq!(m.uid(), real_uid(), "umask {umask}: owner");
    }
}

/// The real user ID, from /proc (the test has no libc bindings).
fn real_uid() -> u32 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A checkpoint file never gains privileges by being run: it is 0700 with no
/// set-user-ID or set-group-ID bit, another user cannot execute it, and were it
/// made set-user-ID, the loader refuses to restart with the privileges it would
/// gain (AT_SECURE). Needs root to switch users: fails, not skipped, without it.
#[test]
fn image_gives_no_privileges() {
    // nobody must reach the files: a public scratch directory, not the checkout's
    // (whose parents may be private).
    let dir = Dir::new_public("rel-privileges");
    dir.compile("counter.c", "counter", &[]);
    let image = dir.join("counter.ckpt");
    checkpoint(ckpt(&dir, &["./counter"]), &image);
    assert_eq!(fs::metadata(&image).unwrap().mode() & 0o7777, 0o700);
    require_root("run the image as another user");
    // The scratch directory and its parents must let `nobody` reach the file.
    set_mode(dir.path(), 0o755);
    let as_nobody = |file: &Path| {
        // Through a shell: setpriv itself still holds root's capabilities when it
        // calls execve, the shell run as nobody does not.
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c", "exec \"$0\""])
            .arg(file)
            .current_dir("/")
            .output()
            .expect("setpriv (util-linux)")
    };
    let o = as_nobody(&image);
    assert_eq!(o.status.code(), Some(126), "nobody ran a 0700 image: {}", text(&o.stderr));
    assert!(text(&o.stderr).contains("Permission denied"), "{}", text(&o.stderr));

    let suid = dir.join("suid.ckpt");
    fs::copy(&image, &suid).unwrap();
    set_mode(&suid, 0o4755);
    let o = as_nobody(&suid);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "a set-user-ID image ran: {err}\n{}", text(&o.stdout));
    assert!(err.contains("refusing to restart with privileges"), "{err}");
    assert!(!text(&o.stdout).contains("TICK"), "{}", text(&o.stdout));
}

/// The runtime changes nothing while no checkpoint is requested: the same open
/// descriptors and one thread as without it, and no signal caught but the
/// configured one (none with `-a 0`), nothing blocked or ignored.
#[test]
fn idle_runtime_is_invisible() {
    let dir = Dir::new("rel-idle");
    dir.compile("idle.c", "idle", &[]);
    let report =
        |o: &Outcome, key: &str| -> String { o.line(key).unwrap_or_else(|| panic!("no {key} line\n{o}")).to_string() };
    let mut plain = Command::new(dir.join("idle"));
    plain.current_dir(dir.path());
    let base = run(plain);
    base.assert_ok("idle without ckpt");
    for (args, caught) in [
        (&[][..], 1u64 << (20 - 1)), // SIGTSTP
        (&["-a", "USR1"][..], 1 << (10 - 1)),
        (&["-c", "-a", "RTMIN+2"][..], 1 << (36 - 1)),
        (&["-a", "0"][..], 0),
    ] {
        let mut cmd = ckpt(&dir, args);
        cmd.arg("./idle");
        let o = run(cmd);
        o.assert_ok("idle under ckpt");
        for key in ["FDS", "TASKS", "SigBlk:", "SigIgn:"] {
            assert_eq!(report(&o, key), report(&base, key), "{args:?}: {key}\n{o}");
        }
        assert_eq!(report(&o, "TASKS"), "TASKS 1");
        let cgt = report(&o, "SigCgt:");
        let cgt = u64::from_str_radix(cgt.split_whitespace().nth(1).unwrap(), 16).unwrap();
        assert_eq!(cgt, caught, "{args:?}: caught signals {cgt:#x}\n{o}");
        assert!(o.stderr.is_empty(), "{args:?}: the runtime printed something\n{o}");
    }
    // 0, 1 and 2, plus whatever descriptors the test runner itself inherited.
    assert!(report(&base, "FDS").starts_with("FDS 0 1 2"), "{base}");
}

/// Checkpoints at hostile moments: 200 asynchronous checkpoints (continue mode)
/// at random times into a program that hammers malloc/free, blocks in read(2)
/// on a pipe the test feeds a byte per millisecond, writes lines of up to 48 KiB
/// and sleeps in nanosleep(2). It must never see EINTR from any of them nor a
/// damaged heap (every block carries a checked pattern), and every image, checked
/// as soon as it is written, verifies and restarts with the heap intact.
#[test]
fn checkpoints_at_hostile_moments_are_invisible() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    const CHECKPOINTS: usize = 200;
    let dir = Dir::new("rel-hostile");
    dir.compile("hostile.c", "hostile", &[]);
    let image = dir.join("hostile.ckpt");
    let mut p = Proc::spawn_with_piped_stdin(ckpt(&dir, &["-c", "./hostile"]));
    let mut stdin = p.stdin().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if stdin.write_all(b"x").is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            // Dropping stdin is the program's end of file: it finishes.
        })
    };
    p.wait_for("READY");
    let t0 = Instant::now();
    // Every image verifies and restarts, checked as soon as it is written (and
    // then dropped, so disk use stays constant).
    let this = dir.join("this.ckpt");
    let check = |keep: &Path, i: usize| {
        let v = tool(&dir, "verify", keep);
        assert!(v.status.success(), "image {i}: {}", text(&v.stderr));
        let r = restart(keep, dir.path());
        r.assert_ok(&format!("restart of image {i}"));
        assert!(r.has("RESTARTED heap ok") && r.has("DONE"), "image {i}\n{r}");
        // Five TICKs after RESTARTED; one more before it when the checkpoint
        // interrupted the write(2) of a TICK line, which the restarted process
        // finishes again (as the kernel restarts it).
        let t = r.ticks();
        let restarted_at = r.lines.iter().position(|l| l.starts_with("RESTARTED")).unwrap();
        let after = r.lines[restarted_at..].iter().filter(|l| l.starts_with("TICK ")).count();
        assert_eq!(after, 5, "image {i}\n{r}");
        assert!(t.len() <= 6 && t == (t[0]..t[0] + t.len() as u64).collect::<Vec<_>>(), "image {i}\n{r}");
        assert_eq!(r.line("EINTR"), Some("EINTR read=0 write=0 nanosleep=0"), "image {i}\n{r}");
    };
    let mut checking = Duration::ZERO;
    for i in 0..CHECKPOINTS {
        std::thread::sleep(random_delay(2, 25));
        p.signal("TSTP");
        wait_until(&format!("checkpoint {i}"), 30, || image.exists());
        fs::rename(&image, &this).unwrap();
        let c0 = Instant::now();
        check(&this, i);
        checking += c0.elapsed();
        fs::remove_file(&this).unwrap();
    }
    let elapsed = t0.elapsed() - checking;
    stop.store(true, Ordering::Relaxed);
    feeder.join().unwrap();
    let o = p.finish();
    eprintln!("{CHECKPOINTS} checkpoints in {elapsed:.2?}; {}", o.line("EINTR").unwrap_or("no EINTR line"));
    o.assert_ok("the program checkpointed 200 times");
    assert_eq!(o.line("EINTR"), Some("EINTR read=0 write=0 nanosleep=0"), "{o}");
    assert!(o.has("DONE"), "{o}");
    assert!(!o.stderr.contains("checkpoint failed"), "{}", o.stderr);
    assert!(o.ticks().len() > 10, "too little work between the checkpoints\n{o}");
}

/// Durable when reported: the image is fsynced before it is renamed to its name,
/// the directory is fsynced after the rename (which makes the name durable), and
/// only then does the program exit. Checked on the system calls themselves
/// (strace, which `cargo xtask setup` installs; the test fails without it).
#[test]
fn image_is_synced_before_rename_and_directory_after() {
    let dir = Dir::new("rel-durable");
    dir.compile("counter.c", "counter", &[]);
    fs::create_dir(dir.join("out")).unwrap();
    let log = dir.join("strace.log");
    let mut cmd = Command::new("strace");
    cmd.arg("-o")
        .arg(&log)
        .args(["-e", "trace=openat,fsync,renameat2,exit_group", "--"])
        .arg(ckpt_bin())
        .args(["-n", "out/counter.ckpt", "./counter"])
        .current_dir(dir.path());
    require_tool("strace", &["-V"], "strace");
    let image = dir.join("out/counter.ckpt");
    let mut p = Proc::spawn(cmd);
    p.wait_for("READY");
    // The signal goes to the traced program, strace's child.
    let children = fs::read_to_string(format!("/proc/{0}/task/{0}/children", p.pid())).unwrap();
    let child = children.split_whitespace().next().expect("strace's child").to_string();
    std::thread::sleep(random_delay(50, 300));
    let st = Command::new("kill").args(["-TSTP", &child]).status().unwrap();
    assert!(st.success());
    p.finish().assert_checkpointed("the traced checkpointed run");
    assert_image(&image);
    let calls: Vec<String> = fs::read_to_string(&log).unwrap().lines().map(str::to_string).collect();
    let find = |from: usize, what: &dyn Fn(&str) -> bool, name: &str| -> usize {
        from + calls[from..]
            .iter()
            .position(|l| what(l))
            .unwrap_or_else(|| panic!("no {name} after line {from} of the trace:\n{}", calls.join("\n")))
    };
    let fd_of = |l: &str| l.rsplit("= ").next().unwrap().trim().to_string();
    let open_tmp = find(
        0,
        &|l| l.contains("openat(") && l.contains("out/.counter.ckpt.tmp.") && l.contains("O_EXCL"),
        "creation of the temporary file",
    );
    let tmp_fd = fd_of(&calls[open_tmp]);
    let sync_tmp =
        find(open_tmp, &|l| l.starts_with(&format!("fsync({tmp_fd})")) && l.ends_with("= 0"), "fsync of the image");
    let rename = find(
        sync_tmp,
        &|l| l.starts_with("renameat2(") && l.contains("\"out/counter.ckpt\"") && l.ends_with("= 0"),
        "the rename",
    );
    let open_dir =
        find(rename, &|l| l.contains("openat(AT_FDCWD, \"out\"") && l.contains("O_DIRECTORY"), "opening the directory");
    let dir_fd = fd_of(&calls[open_dir]);
    let sync_dir =
        find(open_dir, &|l| l.starts_with(&format!("fsync({dir_fd})")) && l.ends_with("= 0"), "fsync of the directory");
    find(sync_dir, &|l| l.starts_with("exit_group(85)"), "the exit with the checkpoint status");
}

/// One bit flipped at a random place in the page data, once in memory the loader
/// reads (anonymous: heap, stack, data) and once in a region it maps from the
/// image (program or library text): the restart is refused with exit status 1,
/// before the program runs, naming the image and the damaged piece's offset, for
/// both word sizes. The good image still restarts. Twice: a small program,
/// whose pieces the loader hashes as it reads them, and one with a 16 MiB heap,
/// whose pieces a fork of the loader checks beside the reads (`PARALLEL_MIN`).
#[test]
fn a_flipped_data_bit_stops_the_restart() {
    flipped_data_bit("counter", &[]);
}

#[test]
fn a_flipped_data_bit_stops_the_restart_of_a_large_image() {
    flipped_data_bit("bigheap", &["16", "20"]);
}

fn flipped_data_bit(prog: &str, args: &[&str]) {
    for bits in [Bits::B64, Bits::B32] {
        let dir = Dir::new(&format!("rel-databit-{prog}{}", bits.tag()));
        dir.compile_bits(&format!("{prog}.c"), prog, &[], bits);
        let image = dir.join(&format!("{prog}.ckpt"));
        let exe = format!("./{prog}");
        let mut argv = vec![exe.as_str()];
        argv.extend_from_slice(args);
        checkpoint(ckpt(&dir, &argv), &image);
        let good = fs::read(&image).unwrap();
        let (_, h) = header_of(&good);
        let meta_b = &good[h.meta_offset as usize..(h.meta_offset + h.meta_len) as usize];
        let meta = ckpt_image::Meta::parse(&h, meta_b).unwrap();
        let dh = meta.data_hashes().unwrap().expect("a DATA_HASHES section");
        let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() as u64;
        for want_file in [false, true] {
            // A region of the wanted kind with data, and a random bit in it.
            let r = meta
                .regions()
                .filter(|r| (r.kind == ckpt_image::kind::FILE) == want_file && r.nruns > 0)
                .nth(seed as usize % 2)
                .or_else(|| meta.regions().find(|r| (r.kind == ckpt_image::kind::FILE) == want_file && r.nruns > 0))
                .expect("a region with data");
            let (s, e) = meta.data_range(&r);
            let off = s + (seed.wrapping_mul(2_654_435_761) % (e - s));
            let piece_at = s + (off - s) / dh.piece * dh.piece;
            let mut bad = good.clone();
            bad[off as usize] ^= 1 << (seed % 8);
            let path = dir.join("bad.ckpt");
            fs::write(&path, &bad).unwrap();
            set_mode(&path, 0o700);
            let o = restart(&path, dir.path());
            let what = format!("{bits:?}, bit at {off} in region {:x}-{:x} (file: {want_file})", r.start, r.end);
            assert_eq!(o.status.code(), Some(1), "{what}: {}\n{o}", o.status);
            assert!(o.ticks().is_empty() && !o.has("RESTARTED"), "{what}: the program ran\n{o}");
            let line = o.stderr.lines().next().unwrap_or("");
            let want = format!("ckpt restart: {}: the page data is damaged (piece ", path.display());
            assert!(line.starts_with(&want), "{what}: want {want:?}\n{o}");
            assert!(line.contains(&format!(" at offset {piece_at}, ")), "{what}: want the offset {piece_at}\n{o}");
            let v = tool(&dir, "verify", &path);
            assert!(text(&v.stderr).contains(&format!("at offset {piece_at}")), "{what}: {}", text(&v.stderr));
        }
        restart(&image, dir.path()).assert_ok("the good image");
        // Without the checks, asked for (the bench's reference): said, and the
        // damaged piece is no longer what stops the restart.
        let mut c = restart_cmd(&image, dir.path());
        c.arg("--no-page-check");
        let o = run(c);
        o.assert_ok("the good image, --no-page-check");
        assert!(o.stderr.contains("warning: the page data is not checked"), "{o}");
        let mut c = restart_cmd(&dir.join("bad.ckpt"), dir.path());
        c.env("CKPT_PAGE_CHECK", "0");
        let o = run(c);
        assert!(o.stderr.contains("the page data is not checked") && !o.stderr.contains("damaged"), "{o}");
    }
}

/// Images written before the pieces were hashed with XXH3 have a version-1
/// DATA_HASHES section (XXH64 pieces): rebuilt here from a new image (its
/// section turned into version 1 with each piece's XXH64, re-sealed), it
/// restarts and verifies as before, and a flipped data bit in it is still
/// refused, naming XXH64; both word sizes.
#[test]
fn an_image_with_xxh64_piece_hashes_still_restarts_and_is_checked() {
    use ckpt_image::section::{SECTION_HEADER_LEN, tag};
    for bits in [Bits::B64, Bits::B32] {
        let dir = Dir::new(&format!("rel-xxh64{}", bits.tag()));
        dir.compile_bits("counter.c", "counter", &[], bits);
        let image = dir.join("counter.ckpt");
        let first = checkpoint(ckpt(&dir, &["./counter"]), &image);
        let good = fs::read(&image).unwrap();
        let (hat, h) = header_of(&good);
        let (m0, m1) = (h.meta_offset as usize, (h.meta_offset + h.meta_len) as usize);
        let meta = ckpt_image::Meta::parse(&h, &good[m0..m1]).unwrap();
        let dh = meta.data_hashes().unwrap().expect("a DATA_HASHES section");
        assert_eq!(dh.algo, ckpt_image::hashes::Algo::Xxh3, "a new image hashes its pieces with XXH3");
        let s = meta.sections.get(tag::DATA_HASHES).unwrap();
        let body = m0 + (s.data.as_ptr() as usize - good[m0..].as_ptr() as usize);
        let mut old = good.clone();
        old[body - SECTION_HEADER_LEN + 4..body - SECTION_HEADER_LEN + 8].copy_from_slice(&1u32.to_le_bytes());
        let mut k = 0usize;
        for p in ckpt_image::hashes::pieces(&meta, dh.piece) {
            let mut x = ckpt_image::DataHasher::new();
            x.update(&good[p.off as usize..(p.off + p.len) as usize]);
            let e = body + 16 + 8 * p.index as usize;
            old[e..e + 8].copy_from_slice(&x.finish().to_le_bytes());
            k += 1;
        }
        assert_eq!(k, dh.hashes.len(), "every piece rewritten");
        let mut h1 = h;
        h1.meta_hash = hash64(&old[m0..m1]);
        reseal(&mut old, hat, h1);
        let path = dir.join("old.ckpt");
        fs::write(&path, &old).unwrap();
        set_mode(&path, 0o700);
        let v = tool(&dir, "verify", &path);
        assert!(v.status.success(), "{}", text(&v.stderr));
        let info = text(&tool(&dir, "info", &path).stdout);
        assert!(info.contains("(XXH64)"), "{info}");
        let second = restart(&path, dir.path());
        second.assert_ok("the image with XXH64 pieces");
        assert_continues(&first, &second, 60);
        // Damage in it is seen through the old hash.
        let r = meta.regions().find(|r| r.kind != ckpt_image::kind::FILE && r.nruns > 0).unwrap();
        let (s0, _) = meta.data_range(&r);
        let mut bad = old.clone();
        bad[s0 as usize + 100] ^= 4;
        fs::write(&path, &bad).unwrap();
        let o = restart(&path, dir.path());
        assert_eq!(o.status.code(), Some(1), "{o}");
        assert!(
            o.ticks().is_empty() && o.stderr.contains("the page data is damaged") && o.stderr.contains("XXH64"),
            "{o}"
        );
    }
}
