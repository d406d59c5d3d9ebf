//! `cargo xtask lint`: the gates every submission passes (CI runs this before the
//! tests). rustfmt on the whole workspace (rustfmt.toml), then clippy with warnings
//! as errors on the std side (the default members: the CLI, the image and sys
//! crates, xtask, the tests)
//! and on the no_std runtime and loader for both architectures they ship for.
//!
//! The runtime embeds the spliced loader (`CKPT_LOADER_PATH`), so the loaders are
//! built first, exactly as `cargo xtask build` builds them.

use crate::build::{ARCHES, loader};
use crate::{Result, cargo, root, run};

pub fn run_lint() -> Result<()> {
    let root = root();
    run(cargo().current_dir(&root).args(["fmt", "--all", "--", "--check"]))
        .map_err(|e| format!("{e}: run `cargo fmt --all` and commit the result"))?;
    run(cargo().current_dir(&root).args(["clippy", "--all-targets", "--", "-D", "warnings"]))?;
    for arch in &ARCHES {
        let spliced = loader(arch)?;
        run(cargo()
            .current_dir(&root)
            .args(["clippy", "--release", "-p", "ckpt-runtime", "-p", "ckpt-loader", "--target", arch.triple])
            .args(["--", "-D", "warnings"])
            .env("CKPT_LOADER_PATH", &spliced))?;
    }
    Ok(())
}
