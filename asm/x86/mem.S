/*
 * memcpy, memmove, memset, memcmp, bcmp for the i386 loader, which links no C
 * library (rustc emits calls to these for slice copies and comparisons). Written
 * with string instructions so the compiler cannot turn them back into calls to
 * themselves.
 * All are cdecl: arguments at [esp+4], [esp+8], [esp+12]; eax out; they clobber
 * ecx, edx, flags and preserve esi/edi (saved around the string instructions); DF
 * is 0 on entry and exit, as the ABI requires.
 */
        .intel_syntax noprefix
        .text

/* void *memcpy(void *dst, const void *src, size_t n): eax = dst. */
        .globl  memcpy
        .type   memcpy, @function
memcpy:
        push    esi
        push    edi                             /* arguments now at esp + 12 */
        mov     edi, [esp + 12]
        mov     esi, [esp + 16]
        mov     ecx, [esp + 20]
        mov     eax, edi
        rep     movsb
        pop     edi
        pop     esi
        ret
        .size   memcpy, . - memcpy

/* void *memmove(void *dst, const void *src, size_t n): copies backwards when the
   destination overlaps the source from above. eax = dst. */
        .globl  memmove
        .type   memmove, @function
memmove:
        push    esi
        push    edi
        mov     edi, [esp + 12]
        mov     esi, [esp + 16]
        mov     ecx, [esp + 20]
        mov     eax, edi
        cmp     edi, esi
        jbe     1f                              /* dst <= src: forward is safe */
        lea     edi, [edi + ecx - 1]
        lea     esi, [esi + ecx - 1]
        std
        rep     movsb
        cld
        jmp     2f
1:      rep     movsb
2:      pop     edi
        pop     esi
        ret
        .size   memmove, . - memmove

/* void *memset(void *dst, int c, size_t n): eax = dst. */
        .globl  memset
        .type   memset, @function
memset:
        push    edi
        mov     edi, [esp + 8]
        mov     eax, [esp + 12]
        mov     ecx, [esp + 16]
        mov     edx, edi
        rep     stosb
        mov     eax, edx
        pop     edi
        ret
        .size   memset, . - memset

/* int memcmp(const void *a, const void *b, size_t n) and bcmp: eax < 0, 0, > 0. */
        .globl  memcmp
        .type   memcmp, @function
        .globl  bcmp
        .type   bcmp, @function
memcmp:
bcmp:
        push    esi
        push    edi
        mov     esi, [esp + 12]                 /* a */
        mov     edi, [esp + 16]                 /* b */
        mov     ecx, [esp + 20]
        xor     eax, eax
        test    ecx, ecx
        jz      2f
        repe    cmpsb
        je      2f
        movzx   eax, byte ptr [esi - 1]
        movzx   ecx, byte ptr [edi - 1]
        sub     eax, ecx
2:      pop     edi
        pop     esi
        ret
        .size   memcmp, . - memcmp

        .section .note.GNU-stack, "", @progbits
