//! `cargo xtask demo`: the README's quick example, end to end, on this machine.
//! Builds the distribution, compiles a counter, runs it under `ckpt`, sends
//! SIGTSTP after a few numbers, restarts `counter.ckpt` and checks that the count
//! goes on with no gap and no repeat.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::{Result, build, root};

const COUNTER: &str = r#"#include <stdio.h>
#include <unistd.h>

int main(void) {
    for (int i = 1; i <= 12; i++) {
        printf("%d\n", i);
        fflush(stdout);
        usleep(100 * 1000);
    }
    return 0;
}
"#;

/// Read numbers from `child`'s stdout, echo them, call `at(n)` after each.
fn follow(child: &mut std::process::Child, mut at: impl FnMut(u32)) -> Vec<u32> {
    let out = child.stdout.take().expect("piped");
    let mut seen = Vec::new();
    for line in BufReader::new(out).lines().map_while(|l| l.ok()) {
        println!("{line}");
        if let Ok(n) = line.trim().parse() {
            seen.push(n);
            at(n);
        }
    }
    seen
}

pub fn run() -> Result<()> {
    let dist = build::dist()?;
    let dir = root().join("target").join("demo");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("counter.c"), COUNTER).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(dir.join("counter.ckpt"));
    crate::run(Command::new("cc").current_dir(&dir).args(["-O1", "-o", "counter", "counter.c"]))?;

    println!("\n$ ckpt ./counter      # SIGTSTP (^Z) after the 5th number");
    let mut child = Command::new(dist.join("bin").join("ckpt"))
        .arg("./counter")
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start ckpt: {e}"))?;
    let pid = child.id().to_string();
    let mut sent = None;
    let first = follow(&mut child, |n| {
        if n == 5 && sent.is_none() {
            sent = Some(Instant::now());
            let _ = Command::new("kill").args(["-TSTP", &pid]).status();
        }
    });
    let st = child.wait().map_err(|e| e.to_string())?;
    let took = sent.map(|t| t.elapsed());
    let ckpt = dir.join("counter.ckpt");
    let meta = std::fs::metadata(&ckpt).map_err(|_| format!("no {} after SIGTSTP ({st})", ckpt.display()))?;
    println!("[counter exited: {st}; counter.ckpt: {} bytes, written in {:?}]", meta.len(), took.unwrap_or_default());

    println!("\n$ ./counter.ckpt");
    let t0 = Instant::now();
    let mut child = Command::new(&ckpt)
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start counter.ckpt: {e}"))?;
    let second = follow(&mut child, |_| {});
    let st2 = child.wait().map_err(|e| e.to_string())?;
    println!("[counter.ckpt exited: {st2} after {:?}]", t0.elapsed());

    let all: Vec<u32> = first.iter().chain(&second).copied().collect();
    let want: Vec<u32> = (1..=12).collect();
    // A checkpointed program exits with the documented checkpoint status (85),
    // the restarted one with its own (0).
    const CHECKPOINTED: i32 = 85;
    if st.code() != Some(CHECKPOINTED) || !st2.success() || all != want {
        return Err(format!(
            "demo failed: saw {all:?}, expected {want:?}; the checkpointed run {st} (want exit status \
             {CHECKPOINTED}), the restart {st2} (want 0)"
        ));
    }
    println!("\ndemo: the count went on after the restart with no gap and no repeat");
    Ok(())
}
