/*
 * The runtime blob's own code (x86_64): what `ckpt hijack` runs in the target
 * process, and the one C library function the runtime calls that the loader's
 * mem.S does not provide. Linked only into the blob (xtask/src/blob.rs,
 * linker-scripts/blob-x86_64.ld), never into libckpt.so or libckpt.a.
 */
        .intel_syntax noprefix
        .text

/*
 * ckpt_hijack_start: the blob's entry. ckpt stops the target's thread, sets rsp to
 * the top of a stack it mapped (16-byte aligned), rdi and rsi to the settings and
 * their length (on that stack), rip here, and lets it run.
 * Calls ckpt_hijack_entry (runtime/src/capi.rs), then stops at the int3 with its
 * result in eax: the SIGTRAP is ckpt's cue (it never reaches the program), and
 * ckpt puts every register back.
 * Clobbers: what a SysV call may (rax, rcx, rdx, rsi, rdi, r8-r11, flags, vector
 * registers), rsp moves by 8 and back.
 */
        .globl  ckpt_hijack_start
        .type   ckpt_hijack_start, @function
ckpt_hijack_start:
        call    ckpt_hijack_entry
        int3
        .size   ckpt_hijack_start, . - ckpt_hijack_start

/* size_t strlen(const char *s): rdi in, rax out; clobbers rcx, rdi, flags. */
        .globl  strlen
        .type   strlen, @function
strlen:
        xor     eax, eax
        mov     rcx, -1
        repne scasb
        not     rcx
        lea     rax, [rcx - 1]
        ret
        .size   strlen, . - strlen

        .section .note.GNU-stack, "", @progbits
