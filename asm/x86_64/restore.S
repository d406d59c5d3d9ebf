/*
 * Loader side of the context switch (x86_64): the process entry point, the stack
 * switch used when the loader moves itself out of the way, and the final jump back
 * into the restored program.
 */
#include "ckpt_offsets.h"

        .intel_syntax noprefix

/*
 * _start: the loader's ELF entry point.
 *
 * Entry:   as the kernel starts a static program: rsp -> argc, argv[], NULL,
 *          envp[], NULL, auxv; rsp % 16 == 0; rdx = 0 (no rtld_fini).
 * Does:    1. checks that the file holds the whole loader: a checkpoint file cut
 *             inside the loader's own bytes would otherwise die of SIGBUS on the
 *             first access to a page past its end. This step uses only code and
 *             data of the first page (the linker script asserts it), which the
 *             kernel maps from the file or zero-fills.
 *          2. applies the loader's own relocations (the kernel does not: there is
 *             no dynamic linker);
 *          3. loader_main(initial rsp) with a clean frame pointer. Never returns.
 * Hazard:  until ckpt_relocate returns, nothing may read a pointer from the GOT or
 *          from data: only this assembly runs, using rip-relative addresses.
 */
        .section .text.entry, "ax", @progbits
        .globl  _start
        .type   _start, @function
_start:
        xor     ebp, ebp                        /* outermost frame for debuggers */
        mov     r12, rsp                        /* keep the initial stack (callee-saved) */
        and     rsp, -16
        sub     rsp, 144                        /* struct stat (x86_64: 144 bytes) */
        lea     rdi, [rip + .Lexe]
        mov     esi, 0x80000                    /* O_RDONLY | O_CLOEXEC */
        mov     eax, __NR_open
        syscall
        test    rax, rax
        js      .Lchecked                       /* cannot tell: loader_main reports */
        mov     rdi, rax                        /* fd */
        mov     rsi, rsp
        mov     eax, __NR_fstat
        syscall
        mov     r13, rax
        mov     eax, __NR_close                  /* rdi still the fd */
        syscall
        test    r13, r13
        jnz     .Lchecked
        lea     rcx, [rip + __file_end]
        lea     rdx, [rip + __ehdr_start]
        sub     rcx, rdx                        /* bytes the loader needs in the file */
        cmp     [rsp + 48], rcx                 /* st_size */
        jae     .Lchecked
        mov     edi, 2                          /* stderr */
        lea     rsi, [rip + .Lshort]
        mov     edx, .Lshort_end - .Lshort
        mov     eax, __NR_write
        syscall
        mov     edi, 1
        mov     eax, __NR_exit_group
        syscall
.Lchecked:
        add     rsp, 144
        lea     rdi, [rip + __ehdr_start]       /* load base: where the kernel put us */
        lea     rsi, [rip + __rela_start]
        lea     rdx, [rip + __rela_end]
        call    ckpt_relocate
        mov     rdi, r12                        /* arg: the initial stack */
        call    loader_main
        ud2
.Lexe:  .asciz  "/proc/self/exe"
.Lshort:
        .ascii  "ckpt restart: truncated image (the file ends inside the restart loader)\n"
.Lshort_end:
        .size   _start, . - _start
        .globl  __entry_end
__entry_end:

        .text
/*
 * void ckpt_relocate(uintptr_t base, const Elf64_Rela *rela, const Elf64_Rela *end)
 *
 * Applies R_X86_64_RELATIVE entries: *(base + r_offset) = base + r_addend. Used by
 * _start on the image the kernel loaded, and by the loader on its own copy (with
 * the copy's base and the copy's table) when it moves out of the saved program's
 * way. Other types are skipped: xtask refuses to build a loader that has any.
 * Entry:   SysV call, any aligned stack. Clobbers: rax, rcx, rsi, r8, flags.
 */
        .globl  ckpt_relocate
        .type   ckpt_relocate, @function
ckpt_relocate:
1:      cmp     rsi, rdx
        jae     2f
        mov     eax, [rsi + 8]                  /* ELF64_R_TYPE(r_info) */
        cmp     eax, 8                          /* R_X86_64_RELATIVE */
        jne     3f
        mov     rcx, [rsi]                      /* r_offset */
        mov     r8, [rsi + 16]                  /* r_addend */
        add     r8, rdi
        mov     [rdi + rcx], r8
3:      add     rsi, 24                         /* sizeof(Elf64_Rela) */
        jmp     1b
2:      ret
        .size   ckpt_relocate, . - ckpt_relocate

        .text
/*
 * noreturn ckpt_call_on_stack(void *arg, uintptr_t sp, void (*f)(void *))
 *
 * Switches to a new stack and calls f(arg) there; f must not return.
 * Entry:   rdi = arg, rsi = top of the new stack, rdx = f.
 * Clobbers: everything (the old stack is abandoned).
 */
        .globl  ckpt_call_on_stack
        .type   ckpt_call_on_stack, @function
ckpt_call_on_stack:
        mov     rsp, rsi
        and     rsp, -16                        /* SysV: aligned before the call */
        xor     ebp, ebp
        call    rdx
        ud2
        .size   ckpt_call_on_stack, . - ckpt_call_on_stack

/*
 * noreturn ckpt_restore_context(const RegsX86_64 *ctx, long retval)
 *
 * The final jump: resumes the program at the return of ckpt_save_context in the
 * restored memory, as if that call had just returned retval.
 * Entry:   rdi = ctx (must stay readable until the jump), rsi = retval; the whole
 *          address space restored and the fs base already set (arch_prctl).
 * Loads:   MXCSR, x87 control word, rbx, rbp, r12-r15, rsp = ctx->rsp + 8 (the
 *          return address popped), then jumps to ctx->rip with rax = retval.
 * Clobbers: every caller-saved register (they are dead across the original call).
 */
        .globl  ckpt_restore_context
        .type   ckpt_restore_context, @function
ckpt_restore_context:
        ldmxcsr [rdi + REGS_MXCSR]
        fldcw   [rdi + REGS_FCW]
        mov     rbx, [rdi + REGS_RBX]
        mov     rbp, [rdi + REGS_RBP]
        mov     r12, [rdi + REGS_R12]
        mov     r13, [rdi + REGS_R13]
        mov     r14, [rdi + REGS_R14]
        mov     r15, [rdi + REGS_R15]
        mov     rcx, [rdi + REGS_RIP]
        mov     rsp, [rdi + REGS_RSP]
        add     rsp, 8                          /* as `ret` would leave it */
        mov     rax, rsi
        jmp     rcx
        .size   ckpt_restore_context, . - ckpt_restore_context

/*
 * long ckpt_start_thread(const struct clone_args *args, size_t size, const RegsX86_64 *ctx)
 *
 * Creates a thread of the restored program with clone3(args, size) (CLONE_VM |
 * CLONE_THREAD | CLONE_SETTLS..., no stack: the child starts on the caller's stack
 * pointer) and starts it at the save point in *ctx, as ckpt_restore_context does
 * for the main thread, with rax = 1 (the restart value).
 * Entry:   rdi = args, rsi = size, rdx = ctx (must stay readable until the new
 *          thread has jumped: the loader's copy of the metadata); every signal
 *          blocked (the child inherits the mask, so no signal frame can land on
 *          the shared stack before the child leaves it).
 * Returns: in the caller, rax = the new thread's tid or -errno.
 * Child:   touches no stack: it loads its registers from *ctx and jumps.
 * Clobbers: rax, rcx, r11 (syscall), flags; r12 is saved and restored.
 */
        .globl  ckpt_start_thread
        .type   ckpt_start_thread, @function
ckpt_start_thread:
        push    r12
        mov     r12, rdx                        /* ctx survives the syscall in both */
        mov     eax, 435                        /* __NR_clone3 */
        syscall
        test    rax, rax
        jz      1f
        pop     r12
        ret
1:      mov     rdi, r12                        /* the new thread */
        mov     esi, 1
        jmp     ckpt_restore_context
        .size   ckpt_start_thread, . - ckpt_start_thread

        .section .note.GNU-stack, "", @progbits
