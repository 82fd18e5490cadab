/* Escape attempts, one per mode; each prints what it saw.
   escape int80 | open PATH | kill HOSTPID | efault */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    if (!strcmp(argv[1], "int80")) {
        long ret;
        /* 32-bit getpid (20) through the legacy gate */
        __asm__ volatile ("int $0x80" : "=a"(ret) : "a"(20L) : "memory");
        printf("int80 returned %ld\n", ret);
        return 0;
    }
    if (!strcmp(argv[1], "open")) {
        int fd = open(argv[2], O_RDONLY);
        printf("open %s: %s\n", argv[2], fd < 0 ? strerror(errno) : "opened");
        return 0;
    }
    if (!strcmp(argv[1], "kill")) {
        int pid = atoi(argv[2]);
        int r = kill(pid, SIGTERM);
        printf("kill %d: %s\n", pid, r < 0 ? strerror(errno) : "sent");
        printf("getpid %d getppid %d\n", getpid(), getppid());
        return 0;
    }
    if (!strcmp(argv[1], "efault")) {
        long r = syscall(SYS_write, 1, (void *)16, 10);
        printf("write(bad pointer) = %ld errno %s\n", r, r < 0 ? strerror(errno) : "-");
        r = syscall(SYS_write, 1, (void *)0x7fffffffffff00, 10);
        printf("write(unmapped) = %ld errno %s\n", r, r < 0 ? strerror(errno) : "-");
        printf("still served\n");
        return 0;
    }
    return 2;
}
