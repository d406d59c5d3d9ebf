//! A real batch job that outlives its time limit: a single-node Slurm cluster
//! (munged, slurmctld, slurmd from Debian's slurm-wlm and munge, which `cargo
//! xtask setup` installs) is started in a temporary directory, a job whose work is
//! more than a minute of CPU computing a checksum is submitted with a one-minute
//! time limit, `--signal=B:USR1@10` and `RequeueExit=85`, and its batch script
//! execs `ckpt run`. Each signal checkpoints the job, which exits 85; Slurm
//! requeues it and reruns the same script, which resumes from the image. The test
//! checks in `sacct` that the job was requeued, that it completed with the
//! checksum of an uninterrupted run, that its output has every progress line
//! exactly once, and how long after the signal each image was durable.
//!
//! The cluster's configuration is in `slurm_conf` (the same lines are in the
//! README). Facts measured on this machine (docs/batch.md): time limits are
//! whole minutes, checked every 30 s; `--signal=B:USR1@N` arrives N to N+30 s
//! before the limit; a requeued job waits 122 s by default, 7-8 s with
//! `cred_expire=5` and `sched_interval=2`; `sacct` without slurmdbd needs
//! `-c` and `JobCompType=jobcomp/filetxt`; slurmd is stopped only after the queue
//! is empty (slurmstepd outlives it). Every daemon is stopped when the test ends,
//! passed or failed.

mod common;

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Passes of `tests/c/checksum.c`: about 75 s of CPU on this machine when idle,
/// so more than the 60 s limit minus the signal's lead.
const PASSES: u32 = 5000;
/// `ckpt run --deadline`: well inside Slurm's 10 s lead.
const DEADLINE: u32 = 10;
/// Give up on the job after this long (it takes 2-3 minutes).
const JOB_TIMEOUT: Duration = Duration::from_secs(420);

fn sbin(name: &str) -> PathBuf {
    ["/usr/sbin", "/usr/bin", "/sbin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} is not installed: run `cargo xtask setup` (slurm-wlm, munge)"))
}

fn short_hostname() -> String {
    let out = Command::new("hostname").arg("-s").output().expect("run hostname -s");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The cluster's slurm.conf, everything under `dir`.
fn slurm_conf(dir: &Path, host: &str, port: u16) -> String {
    let d = dir.display();
    format!(
        "ClusterName=ckpttest
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
SlurmctldPort={port}
SlurmdPort={}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={d}/munge.sock,cred_expire=5
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
ProctrackType=proctrack/pgid
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc={d}/jobcomp.txt
SchedulerParameters=sched_interval=2
RequeueExit=85
ReturnToService=2
MpiDefault=none
NodeName={host} CPUs=2 State=UNKNOWN
PartitionName=test Nodes={host} Default=YES MaxTime=INFINITE State=UP
",
        port + 1
    )
}

/// The daemons, stopped in order when dropped (cancel the jobs, wait for an empty
/// queue, then slurmd, slurmctld, munged).
struct Cluster {
    dir: PathBuf,
    conf: PathBuf,
    daemons: Vec<(&'static str, Child)>,
    jobs: Vec<String>,
}

impl Cluster {
    fn start(dir: &Path) -> Cluster {
        for d in ["state", "spool"] {
            fs::create_dir_all(dir.join(d)).unwrap();
        }
        let key = dir.join("munge.key");
        let mut bytes = vec![0u8; 1024];
        fs::File::open("/dev/urandom").unwrap().read_exact(&mut bytes).unwrap();
        fs::write(&key, &bytes).unwrap();
        fs::set_permissions(&key, fs::Permissions::from_mode(0o400)).unwrap();
        // Ports of our own, so that another run next door does not collide.
        let port = 20000 + (std::process::id() % 20000) as u16 * 2;
        let conf = dir.join("slurm.conf");
        fs::write(&conf, slurm_conf(dir, &short_hostname(), port)).unwrap();
        let mut c = Cluster { dir: dir.to_path_buf(), conf, daemons: Vec::new(), jobs: Vec::new() };
        let d = dir.display().to_string();
        c.spawn(
            "munged",
            Command::new(sbin("munged")).args([
                "-F".to_string(),
                "--force".into(),
                format!("--socket={d}/munge.sock"),
                format!("--key-file={d}/munge.key"),
                format!("--pid-file={d}/munged.pid"),
                format!("--log-file={d}/munged.log"),
                format!("--seed-file={d}/munge.seed"),
            ]),
        );
        c.wait_until("munged's socket", Duration::from_secs(10), |c| c.dir.join("munge.sock").exists());
        let conf = c.conf.clone();
        c.spawn("slurmctld", Command::new(sbin("slurmctld")).arg("-D").arg("-i").arg("-f").arg(&conf));
        c.spawn("slurmd", Command::new(sbin("slurmd")).arg("-D").arg("-f").arg(&conf));
        c.wait_until("the node to be idle", Duration::from_secs(30), |c| {
            c.client("sinfo", &["-h", "-o", "%T"]).trim() == "idle"
        });
        c
    }

    fn spawn(&mut self, name: &'static str, cmd: &mut Command) {
        let log = fs::File::create(self.dir.join(format!("{name}.out"))).unwrap();
        let child = cmd
            .env("SLURM_CONF", &self.conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        self.daemons.push((name, child));
    }

    /// Run a Slurm client command; its stdout (stderr appended on failure).
    fn client(&self, cmd: &str, args: &[&str]) -> String {
        let out = Command::new(cmd).args(args).env("SLURM_CONF", &self.conf).output();
        match out {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
            Ok(o) => format!(
                "[{cmd} failed: {}]\n{}{}",
                o.status,
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => format!("[cannot run {cmd}: {e}]"),
        }
    }

    fn wait_until(&mut self, what: &str, limit: Duration, mut ok: impl FnMut(&Cluster) -> bool) {
        let t = Instant::now();
        while !ok(self) {
            for (name, child) in &mut self.daemons {
                if let Ok(Some(st)) = child.try_wait() {
                    panic!("{name} exited ({st}) while waiting for {what}; logs in {}", self.dir.display());
                }
            }
            assert!(t.elapsed() < limit, "timed out waiting for {what}; logs in {}", self.dir.display());
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn submit(&mut self, script: &Path) -> String {
        let out = self.client("sbatch", &["--parsable", script.to_str().unwrap()]);
        let id = out.trim().split(';').next().unwrap_or("").to_string();
        assert!(!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()), "sbatch: {out}");
        self.jobs.push(id.clone());
        id
    }

    /// `sacct -c` lines of job `id`: `State|ExitCode`, one per run.
    fn runs(&self, id: &str) -> Vec<String> {
        self.client("sacct", &["-c", "-n", "-P", "-j", id, "-o", "State,ExitCode"])
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for id in &self.jobs {
            let _ = self.client("scancel", &[id]);
        }
        // slurmstepd outlives slurmd: the queue must be empty first.
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(30) && !self.client("squeue", &["-h"]).trim().is_empty() {
            std::thread::sleep(Duration::from_millis(250));
        }
        for (_, child) in self.daemons.iter_mut().rev() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(15) {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// A child process killed (and reaped) when the test ends, passed or failed.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Milliseconds in `... in N ms after SIGUSR1 ...` (or `N.M s`).
fn durable_ms(line: &str) -> Option<f64> {
    let rest = &line[line.find(" in ")? + 4..];
    let (num, rest) = rest.split_once(' ')?;
    let v: f64 = num.parse().ok()?;
    if rest.starts_with("ms") { Some(v) } else { rest.starts_with('s').then_some(v * 1000.0) }
}

#[test]
fn slurm_job_is_checkpointed_requeued_and_completes() {
    // The daemons run as root here (SlurmUser=root), as CI does.
    require_root("run slurmctld, slurmd and munged (SlurmUser=root)");
    require_tool("/usr/sbin/slurmctld", &["-V"], "slurm-wlm");
    require_tool("/usr/sbin/munged", &["--version"], "munge");
    let dir = std::env::temp_dir().join(format!("ckpt-slurm-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let scratch = Dir::new("slurm");
    let prog = scratch.compile("checksum.c", "checksum", &["-O2"]);
    let prog_copy = dir.join("checksum");
    fs::copy(&prog, &prog_copy).unwrap();

    // The reference: the same computation, uninterrupted, on the other CPU
    // (killed if the test fails first).
    let mut reference = KillOnDrop(
        Command::new("nice")
            .arg(&prog_copy)
            .arg(PASSES.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the reference run"),
    );

    let mut cluster = Cluster::start(&dir);
    let d = dir.display();
    let script = dir.join("job.sh");
    fs::write(
        &script,
        format!(
            "#!/bin/bash
#SBATCH --job-name=checksum
#SBATCH --time=1
#SBATCH --signal=B:USR1@10
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output={d}/job.out
#SBATCH --error={d}/job.err
exec {} run --dir {d}/ckpt.d -a USR1,TERM --deadline {DEADLINE} -- {} {PASSES}
",
            ckpt_bin().display(),
            prog_copy.display()
        ),
    )
    .unwrap();
    let submitted = Instant::now();
    let id = cluster.submit(&script);
    cluster.wait_until("the job to complete", JOB_TIMEOUT, |c| c.runs(&id).iter().any(|l| l.starts_with("COMPLETED")));
    let took = submitted.elapsed();

    let want = {
        let r = &mut reference.0;
        let mut s = String::new();
        r.stdout.take().unwrap().read_to_string(&mut s).unwrap();
        assert!(r.wait().unwrap().success(), "the reference run failed");
        s.lines().find(|l| l.starts_with("CHECKSUM ")).expect("reference checksum").to_string()
    };
    let runs = cluster.runs(&id);
    let out = fs::read_to_string(dir.join("job.out")).unwrap_or_default();
    let err = fs::read_to_string(dir.join("job.err")).unwrap_or_default();
    let ctx = format!("sacct -c:\n{}\n--- job.err ---\n{err}", runs.join("\n"));

    // sacct: every run but the last ended with the checkpoint status and was
    // requeued; the last completed.
    assert!(runs.len() >= 2, "the job was never requeued\n{ctx}");
    let (last, before) = runs.split_last().unwrap();
    assert_eq!(last, "COMPLETED|0:0", "{ctx}");
    assert!(before.iter().all(|l| l.ends_with("|85:0")), "a run ended otherwise than by a checkpoint\n{ctx}");

    // The result is the uninterrupted run's, and every progress line is there
    // exactly once (append mode; a resumed run goes on where the image was).
    let checksum = out.lines().find(|l| l.starts_with("CHECKSUM ")).unwrap_or("(none)");
    assert_eq!(checksum, want, "{ctx}");
    let passes: Vec<u32> =
        out.lines().filter_map(|l| l.strip_prefix("PASS ")?.split(' ').next()?.parse().ok()).collect();
    assert_eq!(passes, (1..=PASSES / 16).map(|i| i * 16).collect::<Vec<_>>(), "{ctx}");

    // ckpt's own account: started once, then one durable image per requeue,
    // resumed from that very image, each within the deadline.
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines[0].starts_with("ckpt: no checkpoint in "), "{ctx}");
    let written: Vec<&str> = lines.iter().copied().filter(|l| l.contains(" written (seq ")).collect();
    let resumed: Vec<&str> = lines.iter().copied().filter(|l| l.starts_with("ckpt: resumed from ")).collect();
    assert_eq!(written.len(), before.len(), "one image per requeue\n{ctx}");
    assert_eq!(resumed.len(), before.len(), "one resume per requeue\n{ctx}");
    let mut times = Vec::new();
    for (i, (w, r)) in written.iter().zip(&resumed).enumerate() {
        let seq = i + 1;
        assert!(w.contains(&format!("/ckpt.d/{seq}.ckpt written (seq {seq}, ")), "{ctx}");
        assert!(w.contains("after SIGUSR1, deadline 10 s)"), "{ctx}");
        assert!(r.contains(&format!("/ckpt.d/{seq}.ckpt (seq {seq}, ")), "{ctx}");
        let ms = durable_ms(w).unwrap_or_else(|| panic!("no time in {w:?}"));
        assert!(ms < f64::from(DEADLINE) * 1000.0, "image {seq} durable {ms} ms after the signal\n{ctx}");
        times.push(ms);
    }
    assert!(!err.contains("warning"), "{ctx}");
    // Only the newest two images are kept, and `current` names the newest.
    let n = written.len();
    let current = fs::read_link(dir.join("ckpt.d/current")).unwrap();
    assert_eq!(current, Path::new(&format!("{n}.ckpt")), "{ctx}");
    let images = fs::read_dir(dir.join("ckpt.d"))
        .unwrap()
        .filter(|e| e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".ckpt")));
    assert_eq!(images.count(), n.min(2), "{ctx}");
    eprintln!(
        "slurm: job {id} {} runs in {:.0} s ({}); signal to durable image: {times:?} ms\n{ctx}",
        runs.len(),
        took.as_secs_f64(),
        runs.join(", ")
    );
}
