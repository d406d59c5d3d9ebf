/*
 * Loader side of the context switch (i386, cdecl): the process entry point, the
 * relocation of the loader's own image, the stack switch used when the loader
 * moves itself out of the way, and the final jump back into the restored program.
 *
 * i386 has no eip-relative addressing: code that must run before the loader is
 * relocated finds its own data through the GOT address (call .Lget_pc, then
 * `add OFFSET FLAT:_GLOBAL_OFFSET_TABLE_`) and @GOTOFF offsets, which the static
 * link resolves completely (no GOT slot is read). System calls use `int 0x80`
 * (i386 numbers): there is no libc, and the vDSO is moved during the restore.
 */
#include "ckpt_offsets.h"

        .intel_syntax noprefix

/*
 * _start: the loader's ELF entry point.
 *
 * Entry:   as the kernel starts a static program: esp -> argc, argv[], NULL,
 *          envp[], NULL, auxv; edx = 0 (no rtld_fini).
 * Does:    1. checks that the file holds the whole loader: a checkpoint file cut
 *             inside the loader's own bytes would otherwise die of SIGBUS on the
 *             first access to a page past its end. This step uses only code and
 *             data of the first page (the linker script asserts it), which the
 *             kernel maps from the file or zero-fills. open, fstat64 (struct
 *             stat64: 96 bytes, st_size at 44), close.
 *          2. applies the loader's own relocations (the kernel does not: there is
 *             no dynamic linker);
 *          3. loader_main(initial esp) on a 16-byte aligned stack with a clean
 *             frame pointer. Never returns.
 * Keeps:   edi = the initial esp, esi = the GOT address (int 0x80 preserves both).
 * Hazard:  until ckpt_relocate returns, nothing may read a pointer from the GOT or
 *          from data: only this assembly runs, using @GOTOFF addresses.
 */
        .section .text.entry, "ax", @progbits
        .globl  _start
        .type   _start, @function
_start:
        xor     ebp, ebp                        /* outermost frame for debuggers */
        mov     edi, esp                        /* keep the initial stack */
        call    .Lget_pc_esi                    /* esi = address of the add */
        add     esi, OFFSET FLAT:_GLOBAL_OFFSET_TABLE_
        and     esp, -16
        sub     esp, 96                         /* struct stat64 (i386: 96 bytes) */
        lea     ebx, [esi + .Lexe@GOTOFF]
        mov     ecx, 0x80000                    /* O_RDONLY | O_CLOEXEC */
        mov     eax, __NR_open
        int     0x80
        test    eax, eax
        js      .Lchecked                       /* cannot tell: loader_main reports */
        mov     ebx, eax                        /* fd */
        mov     ecx, esp
        mov     eax, __NR_fstat64
        int     0x80
        mov     edx, eax                        /* fstat64's result */
        mov     eax, __NR_close                  /* ebx still the fd */
        int     0x80
        test    edx, edx
        jnz     .Lchecked
        cmp     dword ptr [esp + 48], 0         /* st_size, high word: >= 4 GiB */
        jne     .Lchecked
        lea     ecx, [esi + __file_end@GOTOFF]
        lea     edx, [esi + __ehdr_start@GOTOFF]
        sub     ecx, edx                        /* bytes the loader needs in the file */
        cmp     [esp + 44], ecx                 /* st_size, low word */
        jae     .Lchecked
        mov     ebx, 2                          /* stderr */
        lea     ecx, [esi + .Lshort@GOTOFF]
        mov     edx, OFFSET .Lshort_end - .Lshort
        mov     eax, __NR_write
        int     0x80
        mov     ebx, 1
        mov     eax, __NR_exit_group
        int     0x80
.Lchecked:
        add     esp, 96                         /* aligned again */
        lea     eax, [esi + __ehdr_start@GOTOFF] /* load base: where the kernel put us */
        lea     ecx, [esi + __rel_start@GOTOFF]
        lea     edx, [esi + __rel_end@GOTOFF]
        push    eax                             /* delta: linked at 0, loaded at base */
        push    edx
        push    ecx
        push    eax                             /* the image to patch */
        call    ckpt_relocate                   /* esp % 16 == 0 at the call */
        add     esp, 16
        sub     esp, 12
        push    edi                             /* arg: the initial stack */
        call    loader_main                     /* esp % 16 == 0 at the call */
        ud2

/* esi = the caller's return address (the instruction after the call). */
.Lget_pc_esi:
        mov     esi, [esp]
        ret
.Lexe:  .asciz  "/proc/self/exe"
.Lshort:
        .ascii  "ckpt restart: truncated image (the file ends inside the restart loader)\n"
.Lshort_end:
        .size   _start, . - _start
        .globl  __entry_end
__entry_end:

        .text
/*
 * void ckpt_relocate(uintptr_t image, const Elf32_Rel *rel, const Elf32_Rel *end,
 *                    uintptr_t delta)
 *
 * Applies R_386_RELATIVE entries, whose addend is the word in place:
 * *(image + r_offset) += delta. _start calls it on the image the kernel loaded
 * (delta = its base, the loader being linked at 0); the loader calls it on its own
 * copy with delta = copy - original, because the copied words were already
 * relocated for the original's base. Other types are skipped: xtask refuses to
 * build a loader that has any.
 * Entry:   cdecl, any stack. Clobbers: eax, ecx, edx, flags.
 */
        .globl  ckpt_relocate
        .hidden ckpt_relocate
        .type   ckpt_relocate, @function
ckpt_relocate:
        push    ebx
        push    esi                             /* arguments now at esp + 12 */
        mov     edx, [esp + 12]                 /* image */
        mov     ecx, [esp + 16]                 /* rel */
        mov     esi, [esp + 20]                 /* end */
        mov     ebx, [esp + 24]                 /* delta */
1:      cmp     ecx, esi
        jae     2f
        cmp     byte ptr [ecx + 4], 8           /* ELF32_R_TYPE(r_info): R_386_RELATIVE */
        jne     3f
        mov     eax, [ecx]                      /* r_offset */
        add     [edx + eax], ebx
3:      add     ecx, 8                          /* sizeof(Elf32_Rel) */
        jmp     1b
2:      pop     esi
        pop     ebx
        ret
        .size   ckpt_relocate, . - ckpt_relocate

/*
 * noreturn ckpt_call_on_stack(void *arg, uintptr_t sp, void (*f)(void *))
 *
 * Switches to a new stack and calls f(arg) there; f must not return.
 * Entry:   cdecl, [esp+4] = arg, [esp+8] = top of the new stack, [esp+12] = f.
 * Clobbers: everything (the old stack is abandoned).
 */
        .globl  ckpt_call_on_stack
        .hidden ckpt_call_on_stack
        .type   ckpt_call_on_stack, @function
ckpt_call_on_stack:
        mov     eax, [esp + 4]                  /* arg */
        mov     ecx, [esp + 8]                  /* sp */
        mov     edx, [esp + 12]                 /* f */
        mov     esp, ecx
        and     esp, -16
        sub     esp, 12
        push    eax                             /* esp % 16 == 0 at the call */
        xor     ebp, ebp
        call    edx
        ud2
        .size   ckpt_call_on_stack, . - ckpt_call_on_stack

/*
 * noreturn ckpt_restore_context(const RegsX86 *ctx, long retval)
 *
 * The final jump: resumes the program at the return of ckpt_save_context in the
 * restored memory, as if that call had just returned retval.
 * Entry:   cdecl, [esp+4] = ctx (must stay readable until the jump), [esp+8] =
 *          retval; the whole address space restored and the TLS descriptor the
 *          saved %gs selects already set (set_thread_area).
 * Loads:   MXCSR, x87 control word, %gs (the descriptor is read from the GDT now),
 *          ebx, ebp, esi, edi, esp = ctx->esp + 4 (the return address popped),
 *          then jumps to ctx->eip with eax = retval.
 * Clobbers: every caller-saved register (they are dead across the original call).
 */
        .globl  ckpt_restore_context
        .hidden ckpt_restore_context
        .type   ckpt_restore_context, @function
ckpt_restore_context:
        mov     ecx, [esp + 4]                  /* ctx */
        mov     eax, [esp + 8]                  /* retval */
.Lrestore_ecx:                                  /* ckpt_start_thread enters here */
        ldmxcsr [ecx + REGS32_MXCSR]
        fldcw   [ecx + REGS32_FCW]
        mov     gs, word ptr [ecx + REGS32_GS]
        mov     ebx, [ecx + REGS32_EBX]
        mov     ebp, [ecx + REGS32_EBP]
        mov     esi, [ecx + REGS32_ESI]
        mov     edi, [ecx + REGS32_EDI]
        mov     edx, [ecx + REGS32_EIP]
        mov     esp, [ecx + REGS32_ESP]
        add     esp, 4                          /* as `ret` would leave it */
        jmp     edx
        .size   ckpt_restore_context, . - ckpt_restore_context

/*
 * long ckpt_start_thread(const struct clone_args *args, size_t size, const RegsX86 *ctx)
 *
 * Creates a thread of the restored program with clone3(args, size) (CLONE_VM |
 * CLONE_THREAD | CLONE_SETTLS with a struct user_desc..., no stack: the child
 * starts on the caller's stack pointer) and starts it at the save point in *ctx,
 * as ckpt_restore_context does for the main thread, with eax = 1.
 * Entry:   cdecl, [esp+4] = args, [esp+8] = size, [esp+12] = ctx (readable until
 *          the new thread has jumped); every signal blocked (see x86_64).
 * Returns: in the caller, eax = the new thread's tid or -errno.
 * Child:   touches no stack: ecx = ctx, eax = 1, then the register loads of
 *          ckpt_restore_context (which reload %gs from the TLS entry clone3 set).
 * Clobbers: eax, ecx, edx, flags; ebx and esi are saved and restored.
 */
        .globl  ckpt_start_thread
        .hidden ckpt_start_thread
        .type   ckpt_start_thread, @function
ckpt_start_thread:
        push    ebx
        push    esi                             /* arguments now at esp + 12 */
        mov     ebx, [esp + 12]                 /* args */
        mov     ecx, [esp + 16]                 /* size */
        mov     esi, [esp + 20]                 /* ctx survives int 0x80 in both */
        mov     eax, 435                        /* __NR_clone3 (i386) */
        int     0x80
        test    eax, eax
        jz      1f
        pop     esi
        pop     ebx
        ret
1:      mov     ecx, esi                        /* the new thread */
        mov     eax, 1
        jmp     .Lrestore_ecx
        .size   ckpt_start_thread, . - ckpt_start_thread

        .section .note.GNU-stack, "", @progbits
