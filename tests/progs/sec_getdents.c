/* getdents64 with buffers too small for one entry (EINVAL, but 0 at the
 * end of the directory), counts whose high bits Linux drops (an unsigned
 * int) and counts of 2 GiB or more (an int to Linux: too small).  Run
 * natively and in a guest; the output must be the same whatever the
 * order of the entries: every entry needs 24 bytes or more. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static char buf[1 << 16];

static void call(int fd, const char *what, unsigned long count) {
    long r = syscall(SYS_getdents64, fd, buf, count);
    printf("%s = %ld %s\n", what, r, r < 0 ? strerrorname_np(errno) : "");
}

int main(void) {
    mkdir("/tmp/sec_getdents", 0755);
    close(open("/tmp/sec_getdents/a-file-with-a-longer-name", O_CREAT | O_WRONLY, 0644));
    int fd = open("/tmp/sec_getdents", O_RDONLY | O_DIRECTORY);
    call(fd, "count 0", 0);
    call(fd, "count 1", 1);
    call(fd, "count 23", 23);
    call(fd, "count 2^32 + 8", (1ul << 32) + 8);
    call(fd, "count 2^32 + 23", (1ul << 32) + 23);
    call(fd, "count 2^31", 1ul << 31);
    call(fd, "count 2^32 - 1", (1ul << 32) - 1);
    long n = syscall(SYS_getdents64, fd, buf, sizeof buf);
    int entries = 0;
    for (long at = 0; at < n; at += *(unsigned short *)(buf + at + 16))
        entries++;
    printf("count 64 KiB = %d entries\n", entries);
    call(fd, "at the end, count 1", 1);
    call(fd, "at the end, count 2^31", 1ul << 31);
    call(fd, "at the end, count 64 KiB", sizeof buf);
    lseek(fd, 0, SEEK_SET);
    call(fd, "rewound, count 1", 1);
    close(fd);
    unlink("/tmp/sec_getdents/a-file-with-a-longer-name");
    rmdir("/tmp/sec_getdents");
    return 0;
}
