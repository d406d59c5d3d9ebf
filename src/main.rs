//! `ckpt`: run a program with the checkpoint runtime preloaded.
//!
//! The command does no checkpointing itself. It finds the program, refuses the
//! ones the runtime could not be loaded into, turns its options into the
//! `CKPT_*` environment variables the runtime reads, puts the runtime library
//! in `LD_PRELOAD` and execs the program in its own process (same PID).
//!
//! Two commands look at a checkpoint file instead: `ckpt verify FILE` and
//! `ckpt info FILE` (see `inspect`); `ckpt run` starts or resumes a job from a
//! directory of checkpoints (see `run`). They are recognised only as the first
//! argument; a program of that name runs as `ckpt ./verify` or `ckpt -- verify`.

mod checkpoint;
mod elf;
mod error;
mod hijack;
mod inspect;
mod program;
mod run;
mod sections;
mod signal;

use std::convert::Infallible;
use std::env;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use clap::{Parser, Subcommand};

use crate::error::{CANNOT_EXECUTE, Error, FAILURE};

/// Overrides where the runtime library is taken from (tests, uninstalled builds).
const RUNTIME_LIB_VAR: &str = "CKPT_RUNTIME_LIB";
/// The same for 32-bit programs.
const RUNTIME_LIB32_VAR: &str = "CKPT_RUNTIME_LIB32";
const RUNTIME_LIB_NAME: &str = "libckpt.so";
const RUNTIME_ARCHIVE_NAME: &str = "libckpt.a";
/// The runtime as `ckpt hijack` writes it into a process (in `lib/`).
const RUNTIME_BLOB_NAME: &str = "ckpt-runtime.blob";
/// Overrides where it is taken from.
const RUNTIME_BLOB_VAR: &str = "CKPT_RUNTIME_BLOB";

const LONG_ABOUT: &str = "\
Run PROG with the checkpoint runtime preloaded, so that it can be
checkpointed and restarted later. ckpt execs PROG in its own process (the
PID does not change) with the runtime library added to LD_PRELOAD. When PROG
receives the checkpoint signal (SIGTSTP, i.e. Ctrl-Z, unless -a says
otherwise), the runtime writes its state to an executable checkpoint file,
PROG.ckpt by default, and PROG exits (or keeps running with -c). Running the
checkpoint file resumes the program where it was. After a
checkpoint-and-exit the status is 85, not 0, so that 'ckpt gzip -c f > f.gz
&& rm f' does not remove f after a Ctrl-Z.

Options must come before PROG: everything after PROG is passed to it
unchanged.

'ckpt run [--dir DIR] PROG' starts PROG or resumes it from its newest good
checkpoint in DIR. 'ckpt verify FILE' checks every byte of a checkpoint file
and 'ckpt info FILE' describes it, without running it; 'ckpt merge CHILD -o
FULL' writes one full image from an incremental chain (-I). 'ckpt checkpoint
PID' checkpoints a running ckpt process now and waits until its image is
durable (see 'ckpt checkpoint --help'); 'ckpt hijack PID' puts the runtime
into a running process started without ckpt, static or dynamic (see 'ckpt
hijack --help'). They are commands only as the first
argument: to run a program named verify or info from PATH, write
'ckpt -- verify' (or 'ckpt ./verify' for one in the current directory).";

const AFTER_HELP: &str = "See 'ckpt --help' for the environment, exit status and an example.";

const AFTER_LONG_HELP: &str = "\
Environment:
  CKPT_NAME, CKPT_CONTINUE, CKPT_ASYNCSIG, CKPT_INTERVAL, CKPT_INHERIT, CKPT_TREE,
  CKPT_EXIT_STATUS, CKPT_QUIET, CKPT_DEADLINE, CKPT_DIR, CKPT_KEEP,
  CKPT_COMPRESS, CKPT_INCREMENTAL
      Read by the runtime in PROG. The options above set them; a value
      inherited from the environment is kept unless an option overrides it,
      so 'CKPT_NAME=run.ckpt ckpt PROG' works like 'ckpt -n run.ckpt PROG'.
  CKPT_PID
      Set by ckpt to its own pid, the process PROG runs in: the runtime is
      active there (also after PROG execs another program), passive in
      PROG's children.
  LD_PRELOAD
      The runtime library is put first; libraries already listed are kept.
  CKPT_RUNTIME_LIB
      Path of the runtime library to preload instead of the installed one,
      <ckpt directory>/../lib/libckpt.so.
  CKPT_RUNTIME_LIB32
      The same for 32-bit (i386) programs, instead of
      <ckpt directory>/../lib32/libckpt.so.
  CKPT_DEBUG=1
      When running a checkpoint file: print each restore step on stderr
      ('CKPT_DEBUG=1 ./counter.ckpt').

Checkpoint files:
  ckpt verify FILE     check the loader, header, metadata, page data and
                       length against their checksums; exit 0 and print one
                       line if all is well, exit 1 naming the damaged part
  ckpt info FILE       program, arguments, directory, time, kernel, memory
                       regions and sizes, threads, every descriptor and how
                       it comes back (add --json for a JSON object)
  ckpt merge FILE -o OUT
                       an incremental image and its parents as one full image

Running a checkpoint file ('./prog.ckpt [OPTION]...'; each has a variable):
  --lazy, --lazy=faults, --eager   (CKPT_LAZY=1|faults|0) run before the
                       large memory is read; pages then come in the background
                       or on first touch only; --eager (default) reads all
  --shell-stdio        (CKPT_STDIO=shell) take this shell's stdin, stdout and
                       stderr, whatever they were at the checkpoint
  --refuse-changed     (CKPT_CHANGED=refuse) refuse to restart when an open
                       file is gone, replaced or shorter (default: a warning
                       per descriptor)
  --no-page-check      (CKPT_PAGE_CHECK=0) do not check the page data against
                       its hashes (said on stderr); for measurements, or a
                       last try with an image 'ckpt verify' found damaged
  CKPT_DEBUG=1         each restore step on stderr

Exit status:
  85   PROG was checkpointed and exited (-x or CKPT_EXIT_STATUS change it):
       run it again (the image, or the same 'ckpt run' command) to continue
  PROG's own status when it ends by itself; otherwise
  1    the runtime library is missing or unusable; for verify and info,
       the file is damaged, not a checkpoint image, or cannot be read
  2    bad command line
  126  PROG cannot be run, or cannot be checkpointed (setuid or setgid,
       file capabilities, statically linked)
  127  PROG not found

Example:
  $ ckpt ./counter
  1 2 3 ^Z                    # or, from elsewhere: kill -TSTP <PID>
  ckpt: counter.ckpt written (2.4 MiB in 9 ms after SIGTSTP)
  $ ./counter.ckpt            # resume from it
  4 5 6 ...

Batch jobs (the same command starts and resumes; see 'ckpt run --help'):
  ckpt run --dir ckpt.d -a TERM,USR1 -- ./simulate input.dat

What is saved: the memory of the process, every thread with its registers,
its signal state (handlers, masks, pending signals), timers, limits and other
settings, and its open files (regular files by path at their offsets,
deleted files and memfds with their content, pipes with their unread data,
terminals, sockets, eventfd, timerfd, signalfd, epoll, inotify, locks);
with --tree also its child processes. Anything that cannot come back is said
at checkpoint time, at restart and by 'ckpt info' (README, docs/files.md).

Refused programs: setuid and setgid programs and programs with file
capabilities (the dynamic loader ignores LD_PRELOAD for them), statically
linked programs without the runtime (no dynamic loader at all: link them
with libckpt.a instead).

32-bit (i386) programs get the 32-bit runtime, <ckpt directory>/../lib32;
their checkpoint is a 32-bit executable.";

#[derive(Parser, Debug)]
#[command(
    name = "ckpt",
    version,
    about = "Run a program so that it can be checkpointed and restarted",
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP,
    after_long_help = AFTER_LONG_HELP,
    override_usage = "ckpt [OPTIONS] PROG [ARGS]...\n       ckpt run [--dir DIR] [--keep N] [OPTIONS] [--] PROG [ARGS]...\n       ckpt verify FILE\n       ckpt info [--json] FILE\n       ckpt checkpoint [-n NAME] [-c] [--timeout SECONDS] PID\n       ckpt hijack [-n NAME] [OPTIONS] PID",
    // A command word is only one when no option came first; PROG is otherwise
    // required. `help` stays a program name: `ckpt help` runs it.
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    disable_help_subcommand = true,
    subcommand_help_heading = "Commands",
)]
struct Cli {
    #[command(subcommand)]
    tool: Option<Tool>,

    /// Name of the checkpoint file (sets CKPT_NAME)
    ///
    /// The default is the base name of PROG followed by .ckpt.
    #[arg(short, long, value_name = "NAME", verbatim_doc_comment)]
    name: Option<OsString>,

    #[command(flatten)]
    opts: RuntimeOpts,

    /// Program to run, then its arguments
    ///
    /// PROG is searched in PATH unless it contains a '/'. Its arguments are
    /// passed unchanged, even those that look like ckpt options.
    // One list rather than PROG and ARGS: clap only stops looking for options
    // once a trailing positional has started, and PROG is what has to start it.
    #[arg(
        value_name = "PROG",
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        verbatim_doc_comment
    )]
    command: Vec<OsString>,
}

/// The options that become `CKPT_*` variables for the runtime (shared by plain
/// `ckpt PROG` and `ckpt run`).
#[derive(clap::Args, Debug, Default)]
struct RuntimeOpts {
    /// Keep running after a checkpoint (sets CKPT_CONTINUE=1)
    ///
    /// Without it, PROG exits once its checkpoint is written, with the
    /// checkpoint exit status (see -x).
    #[arg(short = 'c', long = "continue", verbatim_doc_comment)]
    keep_running: bool,

    /// Signals that trigger a checkpoint [default: TSTP] (sets CKPT_ASYNCSIG)
    ///
    /// A name, with or without SIG, in any case (TSTP, usr1, SIGUSR2, RTMIN+3,
    /// RTMAX-1), or a number from 1 to 64; several separated by commas
    /// (TERM,USR1): each one triggers a checkpoint. 0 disables signal-triggered
    /// checkpoints. KILL and STOP cannot be caught, so they are refused.
    // Hyphen values are let through so that `-a -3` is reported as a bad signal
    // rather than as a missing value.
    #[arg(short = 'a', long, value_name = "SIGNAL", allow_hyphen_values = true, verbatim_doc_comment)]
    signal: Option<String>,

    /// Checkpoint every SECONDS seconds (sets CKPT_INTERVAL)
    ///
    /// Periodic checkpoints keep the program running (as with -c), each one
    /// replacing the previous file. They use a POSIX timer of their own, so the
    /// program's alarm() and setitimer() are not disturbed.
    #[arg(short, long, value_name = "SECONDS", allow_hyphen_values = true, verbatim_doc_comment)]
    interval: Option<String>,

    /// Exit status after a checkpoint-and-exit [default: 85] (sets CKPT_EXIT_STATUS)
    ///
    /// 85 is what HTCondor's checkpoint_exit_code and Slurm's RequeueExit
    /// set-ups use by convention. It tells "checkpointed, run me again" from
    /// the program's own end (its own status).
    #[arg(short = 'x', long, value_name = "STATUS", verbatim_doc_comment)]
    exit_status: Option<u8>,

    /// Compress the page data with LZ4 (sets CKPT_COMPRESS=1)
    ///
    /// Each 256 KiB piece of memory is compressed (and stored plain when that
    /// does not pay); the restart decompresses it as it reads. Program and
    /// library text stay uncompressed, mapped from the image at restart.
    /// 'ckpt info' shows the ratio.
    #[arg(short = 'z', long, verbatim_doc_comment)]
    compress: bool,

    /// Incremental images in continue and periodic mode (sets CKPT_INCREMENTAL)
    ///
    /// After a full image, each background checkpoint writes only the pages
    /// written since the previous one (tracked with userfaultfd write
    /// protection), naming its parent. PROG.ckpt is always the newest image;
    /// each image of the chain is also kept as PROG.ckpt.SEQ, which its
    /// children name. A full image comes every N checkpoints (default 8, at
    /// most 64; --full-every), or sooner when the chain's increments outgrow
    /// the memory they describe. Images are then not compressed (-z is
    /// ignored).
    #[arg(short = 'I', long, verbatim_doc_comment)]
    incremental: bool,

    /// With -I: a full image every N checkpoints, 2 to 64 [default: 8] (sets CKPT_INCREMENTAL=N)
    #[arg(long, value_name = "N", verbatim_doc_comment)]
    full_every: Option<u32>,

    /// No message after each checkpoint (sets CKPT_QUIET=1)
    ///
    /// By default every successful checkpoint prints one line on stderr once
    /// the image is durable: ckpt: counter.ckpt written (2.4 MiB in 9 ms).
    #[arg(short, long, verbatim_doc_comment)]
    quiet: bool,

    /// The image must be durable SECONDS after the trigger signal (sets CKPT_DEADLINE)
    ///
    /// The message after the checkpoint gives the time from the signal to the
    /// durable image; past the deadline, a warning says so (even with -q).
    /// Set it to what the scheduler allows (Slurm's --signal lead time, the
    /// Kubernetes grace period).
    #[arg(long, value_name = "SECONDS", verbatim_doc_comment)]
    deadline: Option<u32>,

    /// Leave the runtime active in PROG's children (sets CKPT_INHERIT=1)
    ///
    /// By default the runtime is active only in the process ckpt starts (which
    /// keeps it across exec: a wrapper script that execs the real program
    /// works); in the programs PROG runs as children it stays passive and takes
    /// itself out of LD_PRELOAD, so they do not answer the checkpoint signal
    /// (they would all write to the same file name).
    #[arg(long, verbatim_doc_comment)]
    inherit: bool,

    /// Checkpoint PROG and every process it starts, into one file (sets CKPT_TREE=1)
    ///
    /// The runtime stays in LD_PRELOAD for every descendant (children of
    /// children, and what they exec). One trigger to PROG, or a Ctrl-Z to the
    /// terminal's foreground group, makes ONE image of the whole tree; running
    /// it restarts every process with its pid, parent, process group and
    /// session (in a new user and pid namespace). A descendant without the
    /// runtime (a static program) makes the checkpoint fail, naming it.
    /// Processes that left the tree (a double-forked daemon) are not in it.
    #[arg(long, verbatim_doc_comment)]
    tree: bool,
}

/// The commands besides running a program.
#[derive(Subcommand, Debug)]
enum Tool {
    /// Start PROG, or resume it from its newest checkpoint in DIR
    ///
    /// The same command line starts the job and resumes it, every time: if DIR
    /// holds a checkpoint that passes 'ckpt verify', the newest such one is
    /// run; otherwise PROG is started with checkpoints going to DIR. Each
    /// checkpoint is a new image DIR/SEQ.ckpt (SEQ counting up); DIR/current
    /// points at the newest durable one, and only the newest N are kept. A
    /// damaged image is renamed SEQ.ckpt.damaged and the one before it used,
    /// with a warning. The options of the first run stay in force after a
    /// resume (they are part of the program's state).
    #[command(verbatim_doc_comment)]
    Run {
        /// Directory of the checkpoints [default: PROG.ckpt.d, PROG's base name]
        #[arg(short, long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// How many images to keep, the newest and those before it (sets CKPT_KEEP)
        #[arg(short, long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
        keep: u32,
        #[command(flatten)]
        opts: RuntimeOpts,
        /// Program to run, then its arguments
        #[arg(value_name = "PROG", required = true, num_args = 1.., trailing_var_arg = true)]
        command: Vec<OsString>,
    },
    /// Checkpoint a running process now, and wait until its image is durable
    ///
    /// PID must run the ckpt runtime: started under ckpt (or 'ckpt run'),
    /// linked with libckpt.a, or restarted from a checkpoint file. The request
    /// goes with its trigger signal (queued with a value the runtime
    /// recognises, so the program never sees it); the command waits until the
    /// image is on disk and prints one line, 'PATH SIZE': the image's absolute
    /// path, then its size in bytes (the last space-separated field). It exits
    /// 0 then, and 1 with the reason otherwise: no such process, another
    /// user's, not a ckpt process (nothing is sent then), the checkpoint
    /// failed (the runtime's message; the previous image is intact and the
    /// program goes on), the process or its background writer died meanwhile,
    /// or the timeout.
    ///
    /// The process's own settings apply except where an option says otherwise,
    /// for this one checkpoint only (its later checkpoints are as before):
    /// without -n it writes its own file (its -n, or PROG.ckpt, in its
    /// working directory; the next image in directory mode); without -c it
    /// continues or exits as it was started to (a process started without -c
    /// exits with 85 once the image is durable, as on its trigger signal).
    #[command(verbatim_doc_comment)]
    Checkpoint {
        /// Write this file instead, for this checkpoint; a relative NAME is
        /// relative to the current directory of this command (not of the process)
        #[arg(short, long, value_name = "NAME")]
        name: Option<OsString>,
        /// The process goes on after this checkpoint, even if it was started without -c
        #[arg(short = 'c', long = "continue")]
        keep_running: bool,
        /// Give up (exit 1) if the image is not durable after SECONDS
        #[arg(short, long, value_name = "SECONDS", default_value_t = 120)]
        timeout: u32,
        /// The process
        #[arg(value_name = "PID")]
        pid: i32,
    },
    /// Put the checkpoint runtime into a running process started without ckpt
    ///
    /// PID, static or dynamic (busybox, a Go program, python3...), then
    /// answers its trigger exactly like a process started as 'ckpt [OPTIONS]
    /// PROG' with the same options: SIGTSTP (or -a) writes PROG.ckpt (or -n,
    /// relative to its working directory at checkpoint time) and ends it (or
    /// not, -c); 'ckpt checkpoint PID' asks it from outside. The image restarts
    /// where no ckpt is installed. With ptrace (PTRACE_SEIZE and
    /// PTRACE_INTERRUPT: the program sees no stop and no signal); the process
    /// must be yours, not traced, not privileged, x86_64, not under a seccomp
    /// filter, and ptrace must be allowed (Yama ptrace_scope 0, or run as
    /// root). --tree and --inherit do not apply.
    #[command(verbatim_doc_comment)]
    Hijack {
        /// Name of the checkpoint file (as CKPT_NAME) [default: PROG.ckpt]
        #[arg(short, long, value_name = "NAME")]
        name: Option<OsString>,
        #[command(flatten)]
        opts: RuntimeOpts,
        /// The process
        #[arg(value_name = "PID")]
        pid: i32,
    },
    /// Check every byte of a checkpoint file, without running it
    ///
    /// Reads the whole file: the restart loader, the header, the metadata
    /// (registers, region table), the page data and the length, each against
    /// its checksum. Exit status 0 with a one-line summary, 1 with a message
    /// naming the damaged part.
    Verify {
        /// The checkpoint file
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Write the full image an incremental image and its parents stand for
    ///
    /// Every image of the chain is checked first (as verify does); FULL is a
    /// plain image that restarts exactly as CHILD does, without the parents.
    Merge {
        /// The incremental image (the newest of its chain)
        #[arg(value_name = "CHILD")]
        file: PathBuf,
        /// The full image to write
        #[arg(short, long, value_name = "FULL")]
        output: PathBuf,
    },
    /// Describe a checkpoint file, without running it
    ///
    /// Program, arguments, working directory, time, pid, kernel, architecture,
    /// and each memory region with its size. The header and metadata are
    /// checked; the page data is not read (that is what verify does).
    Info {
        /// Print one JSON object instead of text
        #[arg(long)]
        json: bool,
        /// The checkpoint file
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let result = parse_command_line().and_then(|cli| match &cli.tool {
        Some(Tool::Verify { file }) => inspect::verify(file),
        Some(Tool::Hijack { name, opts, pid }) => hijack_process(name.as_ref(), opts, *pid),
        Some(Tool::Checkpoint { name, keep_running, timeout, pid }) => {
            checkpoint::checkpoint(*pid, name.as_deref(), *keep_running, *timeout)
        }
        Some(Tool::Info { file, json }) => inspect::info(file, *json),
        Some(Tool::Merge { file, output }) => inspect::merge(file, output),
        Some(Tool::Run { dir, keep, opts, command }) => {
            run::run(dir.as_deref(), *keep, opts, command).map(|never| match never {})
        }
        None => {
            let mut vars = Vec::new();
            if let Some(name) = &cli.name {
                if name.is_empty() {
                    return Err(Error::usage("the checkpoint name must not be empty"));
                }
                vars.push(("CKPT_NAME", name.clone()));
            }
            exec_program(&cli.opts, &cli.command, vars).map(|never| match never {})
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("ckpt: {err}");
            ExitCode::from(err.status)
        }
    }
}

/// Does everything up to the exec of `command` (PROG ARGS) with the runtime,
/// the `CKPT_*` variables of `opts` and `extra`; only returns on failure.
fn exec_program(
    opts: &RuntimeOpts,
    command: &[OsString],
    extra: Vec<(&'static str, OsString)>,
) -> Result<Infallible, Error> {
    let mut settings = runtime_settings(opts)?;
    settings.extend(extra);
    // The runtime is active in this process only (and what it execs into), not
    // in the children it starts (see runtime/src/preload.rs). Nine digits, so
    // the restarted process can write its own pid in place.
    settings.push(("CKPT_PID", format!("{:09}", std::process::id()).into()));
    let path = find_program(command)?.0;
    let Some((prog, args)) = command.split_first() else {
        return Err(Error::usage("no program given"));
    };
    let kind = elf::classify(&path);
    // The runtime of the program's class: lib/ (x86_64) or lib32/ (i386).
    let class = match kind {
        elf::Kind::Dynamic(c) | elf::Kind::Static(c) => c,
        elf::Kind::Script | elf::Kind::Other => elf::Class::Elf64,
    };
    let lib_name = if class == elf::Class::Elf32 { "lib32" } else { "lib" };
    let dist_lib = dist_dir().map(|d| d.join(lib_name));
    let archive = dist_lib.as_deref().map_or_else(
        || PathBuf::from("<dist>").join(lib_name).join(RUNTIME_ARCHIVE_NAME),
        |dir| dir.join(RUNTIME_ARCHIVE_NAME),
    );
    // A program linked with libckpt.a has the runtime already: one runtime, not two.
    let runtime_linked = elf::has_runtime(&path);
    program::check_preloadable(&path, kind, &archive, runtime_linked)?;

    let mut cmd = Command::new(&path);
    if !runtime_linked {
        let var = if class == elf::Class::Elf32 { RUNTIME_LIB32_VAR } else { RUNTIME_LIB_VAR };
        let library = runtime_library(dist_lib.as_deref(), var)?;
        cmd.env("LD_PRELOAD", preload_list(&library, env::var_os("LD_PRELOAD").as_deref())?);
    }
    let err = cmd
        // argv[0] as typed, like a shell, for programs that look at their name.
        .arg0(prog)
        .args(args)
        .envs(settings)
        // std restores the signal mask and SIGPIPE's default disposition before
        // exec, so PROG does not inherit the Rust runtime's SIGPIPE ignore.
        .exec();
    Err(Error::new(CANNOT_EXECUTE, format!("cannot execute {}: {}", prog.display(), program::describe(&err))))
}

/// `ckpt hijack`: the settings `ckpt PROG` would give, into process `pid`.
fn hijack_process(name: Option<&OsString>, opts: &RuntimeOpts, pid: i32) -> Result<(), Error> {
    if opts.tree || opts.inherit {
        return Err(Error::usage(
            "--tree and --inherit do not apply to ckpt hijack (the process's children are not changed)",
        ));
    }
    let mut vars = runtime_settings(opts)?;
    if let Some(name) = name {
        if name.is_empty() {
            return Err(Error::usage("the checkpoint name must not be empty"));
        }
        vars.push(("CKPT_NAME", name.clone()));
    }
    let blob = match env::var_os(RUNTIME_BLOB_VAR).filter(|v| !v.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => dist_dir().map(|d| d.join("lib").join(RUNTIME_BLOB_NAME)).ok_or_else(|| {
            Error::new(
                FAILURE,
                format!("cannot locate the runtime blob: the path of ckpt is unknown; set {RUNTIME_BLOB_VAR}"),
            )
        })?,
    };
    hijack::hijack(pid, hijack::Settings { vars }, &blob)
}

/// Parses argv; `--help` and `--version` print and exit here.
fn parse_command_line() -> Result<Cli, Error> {
    match Cli::try_parse() {
        Ok(cli) => Ok(cli),
        Err(err) if !err.use_stderr() => err.exit(),
        Err(err) => {
            // Keep clap's message and usage, but with our `ckpt: ` prefix in
            // place of its `error: ` so that all our errors look alike.
            let text = err.render().to_string();
            let text = text.strip_prefix("error: ").unwrap_or(&text);
            Err(Error::usage(text.trim_end()))
        }
    }
}

/// PROG's path, found like a shell does, and its arguments.
fn find_program(command: &[OsString]) -> Result<(PathBuf, &OsString), Error> {
    // clap guarantees at least PROG; an error rather than a panic all the same.
    let Some(prog) = command.first() else {
        return Err(Error::usage("no program given"));
    };
    Ok((program::find(prog)?, prog))
}

/// The `CKPT_*` variables set by options. Variables without an option on the
/// command line are left as inherited.
fn runtime_settings(cli: &RuntimeOpts) -> Result<Vec<(&'static str, OsString)>, Error> {
    let mut vars = Vec::new();
    if cli.keep_running {
        vars.push(("CKPT_CONTINUE", "1".into()));
    }
    if let Some(sig) = &cli.signal {
        let numbers = signal::parse_list(sig).map_err(|err| Error::usage(err.to_string()))?;
        let list: Vec<String> = numbers.iter().map(u32::to_string).collect();
        vars.push(("CKPT_ASYNCSIG", list.join(",").into()));
    }
    if let Some(status) = cli.exit_status {
        vars.push(("CKPT_EXIT_STATUS", status.to_string().into()));
    }
    if cli.quiet {
        vars.push(("CKPT_QUIET", "1".into()));
    }
    if cli.compress {
        vars.push(("CKPT_COMPRESS", "1".into()));
    }
    match cli.full_every {
        Some(n) if !(2..=64).contains(&n) => {
            return Err(Error::usage(format!("--full-every {n}: a full image every N checkpoints, N from 2 to 64")));
        }
        Some(n) => vars.push(("CKPT_INCREMENTAL", n.to_string().into())),
        None if cli.incremental => vars.push(("CKPT_INCREMENTAL", "1".into())),
        None => {}
    }
    if let Some(deadline) = cli.deadline {
        vars.push(("CKPT_DEADLINE", deadline.to_string().into()));
    }
    if cli.inherit {
        vars.push(("CKPT_INHERIT", "1".into()));
    }
    if cli.tree {
        vars.push(("CKPT_TREE", "1".into()));
        if cli.compress {
            eprintln!("ckpt: warning: -z is not applied to a tree's image yet (--tree): it is written uncompressed");
        }
    }
    if let Some(interval) = &cli.interval {
        vars.push(("CKPT_INTERVAL", parse_interval(interval)?.to_string().into()));
    }
    Ok(vars)
}

/// A positive whole number of seconds, digits only.
fn parse_interval(arg: &str) -> Result<u32, Error> {
    let invalid = || Error::usage(format!("invalid interval '{arg}' (use a positive whole number of seconds)"));
    if arg.is_empty() || !arg.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    match arg.parse() {
        Ok(0) | Err(_) => Err(invalid()),
        Ok(seconds) => Ok(seconds),
    }
}

/// `<dir of the ckpt executable>/..` (holding `lib` and `lib32`), from the
/// canonical path of the executable so that a symlink to `ckpt` (say in ~/bin)
/// still finds the distribution it belongs to.
fn dist_dir() -> Option<PathBuf> {
    let exe = env::current_exe().and_then(|exe| exe.canonicalize()).ok()?;
    Some(exe.parent()?.parent()?.to_path_buf())
}

/// The absolute path of the runtime library: `$VAR` (`CKPT_RUNTIME_LIB` or
/// `CKPT_RUNTIME_LIB32`) if set, otherwise `libckpt.so` in the distribution's lib
/// directory of the program's class.
fn runtime_library(dist_lib: Option<&Path>, var: &str) -> Result<PathBuf, Error> {
    let (path, origin) = match env::var_os(var).filter(|v| !v.is_empty()) {
        Some(path) => (PathBuf::from(path), format!(" (from {var})")),
        None => match dist_lib {
            Some(dir) => (dir.join(RUNTIME_LIB_NAME), String::new()),
            None => {
                return Err(Error::new(
                    FAILURE,
                    format!(
                        "cannot locate the runtime library: the path of the ckpt \
                         executable is unknown; set {var}"
                    ),
                ));
            }
        },
    };
    let missing = |why: &str| {
        Error::new(
            FAILURE,
            format!(
                "runtime library {}{origin}: {why}; is the ckpt installation complete? \
                 ({var} can name another copy)",
                path.display()
            ),
        )
    };
    // Absolute and canonical: PROG may change directory before anything reads
    // the path again, and a checkpoint may be restarted from elsewhere.
    let canonical = path.canonicalize().map_err(|err| missing(&program::describe(&err)))?;
    if !canonical.is_file() {
        return Err(missing("not a regular file"));
    }
    Ok(canonical)
}

/// The new `LD_PRELOAD`: the runtime first, then what was already there.
///
/// First, because preloaded libraries are loaded and searched in list order:
/// the runtime is then in place before any other preloaded library and its
/// symbols take precedence over theirs. Another copy of the same path is
/// dropped so that nesting `ckpt` does not load it twice.
fn preload_list(library: &Path, existing: Option<&OsStr>) -> Result<OsString, Error> {
    let lib = library.as_os_str().as_bytes();
    // ld.so splits LD_PRELOAD on spaces and colons, with no way to quote them.
    if lib.iter().any(|&b| b == b' ' || b == b':') {
        return Err(Error::new(
            FAILURE,
            format!(
                "runtime library path {} contains a space or a colon, which LD_PRELOAD \
                 cannot express; install ckpt elsewhere or set {RUNTIME_LIB_VAR}",
                library.display()
            ),
        ));
    }
    let mut list = lib.to_vec();
    let others = existing.map(OsStr::as_bytes).unwrap_or_default();
    for entry in others.split(|&b| b == b' ' || b == b':') {
        if !entry.is_empty() && entry != lib {
            list.push(b':');
            list.extend_from_slice(entry);
        }
    }
    Ok(OsString::from_vec(list))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preload(existing: Option<&str>) -> String {
        preload_list(Path::new("/d/lib/libckpt.so"), existing.map(OsStr::new))
            .expect("valid path")
            .into_string()
            .expect("UTF-8")
    }

    #[test]
    fn preload_goes_first_and_keeps_others() {
        assert_eq!(preload(None), "/d/lib/libckpt.so");
        assert_eq!(preload(Some("")), "/d/lib/libckpt.so");
        assert_eq!(preload(Some("/x/y.so")), "/d/lib/libckpt.so:/x/y.so");
        assert_eq!(preload(Some("a.so b.so::c.so")), "/d/lib/libckpt.so:a.so:b.so:c.so");
        assert_eq!(preload(Some("/d/lib/libckpt.so:/x.so")), "/d/lib/libckpt.so:/x.so");
    }

    #[test]
    fn preload_refuses_unrepresentable_paths() {
        assert!(preload_list(Path::new("/my dir/libckpt.so"), None).is_err());
        assert!(preload_list(Path::new("/a:b/libckpt.so"), None).is_err());
    }

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("5").ok(), Some(5));
        for bad in ["0", "", "-1", "+5", "1.5", "x", "99999999999"] {
            assert!(parse_interval(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
