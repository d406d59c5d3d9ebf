//! i386 facts of the loader (same names as `arch/x86_64.rs`). Not built yet: the
//! i386 port is its own piece of work.
compile_error!("the i386 loader is not implemented yet");
