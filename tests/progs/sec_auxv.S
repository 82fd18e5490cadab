    .globl _start
_start:
    mov (%rsp), %rcx
    lea 16(%rsp,%rcx,8), %rsi
1:  lodsq
    test %rax, %rax
    jnz 1b
2:  lodsq
    mov %rax, %rdx
    lodsq
    cmp $3, %rdx
    je 3f
    test %rdx, %rdx
    jnz 2b
    xor %eax, %eax
3:  lea -32(%rsp), %rdi
    mov $16, %ecx
    movb $10, 16(%rdi)
4:  mov %eax, %edx
    and $15, %edx
    add $48, %edx
    cmp $57, %edx
    jle 5f
    add $39, %edx
5:  mov %dl, -1(%rdi,%rcx)
    shr $4, %rax
    dec %ecx
    jnz 4b
    mov %rdi, %rsi
    mov $1, %eax
    mov $1, %edi
    mov $17, %edx
    syscall
    mov $60, %eax
    mov $7, %edi
    syscall
