//! i386 facts of the runtime (same names as `arch/x86_64.rs`). The i386 port is its
//! own piece of work.
compile_error!("the i386 runtime is not implemented yet");
