/*
 * memcpy, memmove, memset, memcmp, bcmp for the loader, which links no C library
 * (rustc emits calls to these for slice copies and comparisons). Written with string
 * instructions so the compiler cannot turn them back into calls to themselves.
 * All follow the SysV ABI: rdi, rsi, rdx in; rax out; they clobber rcx, rsi, rdi,
 * flags (DF is 0 on entry and exit, as the ABI requires).
 */
        .intel_syntax noprefix
        .text

/* void *memcpy(void *dst, const void *src, size_t n): rax = dst. */
        .globl  memcpy
        .type   memcpy, @function
memcpy:
        mov     rax, rdi
        mov     rcx, rdx
        rep     movsb
        ret
        .size   memcpy, . - memcpy

/* void *memmove(void *dst, const void *src, size_t n): copies backwards when the
   destination overlaps the source from above. rax = dst. */
        .globl  memmove
        .type   memmove, @function
memmove:
        mov     rax, rdi
        mov     rcx, rdx
        cmp     rdi, rsi
        jbe     1f                              /* dst <= src: forward is safe */
        lea     rdi, [rdi + rdx - 1]
        lea     rsi, [rsi + rdx - 1]
        std
        rep     movsb
        cld
        ret
1:      rep     movsb
        ret
        .size   memmove, . - memmove

/* void *memset(void *dst, int c, size_t n): rax = dst. */
        .globl  memset
        .type   memset, @function
memset:
        mov     r8, rdi
        mov     eax, esi
        mov     rcx, rdx
        rep     stosb
        mov     rax, r8
        ret
        .size   memset, . - memset

/* int memcmp(const void *a, const void *b, size_t n) and bcmp: eax < 0, 0, > 0. */
        .globl  memcmp
        .type   memcmp, @function
        .globl  bcmp
        .type   bcmp, @function
memcmp:
bcmp:
        xor     eax, eax
        mov     rcx, rdx
        test    rcx, rcx
        jz      2f
        repe    cmpsb
        je      2f
        movzx   eax, byte ptr [rdi - 1]
        movzx   ecx, byte ptr [rsi - 1]
        sub     eax, ecx
2:      ret
        .size   memcmp, . - memcmp

        .section .note.GNU-stack, "", @progbits
