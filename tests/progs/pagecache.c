/* File maps and the page cache behind them.
 *   pagecache sparse FILE     a 1 GiB file with one page of data at 512 MiB;
 *                             map that page, print it, wait for a signal
 *   pagecache rewrite FILE N  an 8 MiB file; N times: pwrite one byte, map the
 *                             whole file, check the byte; then wait
 *   pagecache race FILE       a 16 MiB file mapped first by two processes at
 *                             once; each checks its map against pread
 *   pagecache unlinked FILE   map a 1 MiB file, rewrite it whole, map it again
 *                             (the first version is unlinked on the host), then
 *                             read both maps; then wait
 *   pagecache private FILE    a private writable map of a file: writes stay in
 *                             the map; a shared writable one of a read-only fd
 *                             is EACCES */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static char *map(int fd, size_t length, off_t offset)
{
    char *p = mmap(NULL, length, PROT_READ, MAP_PRIVATE, fd, offset);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    return p;
}

static void fill(int fd, char c, size_t size)
{
    static char buf[1 << 20];
    memset(buf, c, sizeof buf);
    for (size_t off = 0; off < size; off += sizeof buf)
        if (pwrite(fd, buf, sizeof buf, off) != sizeof buf) {
            perror("pwrite");
            exit(1);
        }
}

static void wait_for_signal(void)
{
    fflush(stdout);
    pause();
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    int fd = open(argv[2], O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        perror(argv[2]);
        return 1;
    }
    if (!strcmp(argv[1], "private")) {
        fill(fd, 'f', 1 << 20);
        char *p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            perror("private writable mmap");
            return 1;
        }
        memcpy(p, "mine", 4);
        char back[4];
        pread(fd, back, 4, 0);
        printf("map %.4s file %.4s\n", p, back);
        int ro = open(argv[2], O_RDONLY);
        void *q = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, ro, 0);
        printf("shared writable of a read-only fd: %s\n", q == MAP_FAILED ? strerror(errno) : "mapped");
        return 0;
    }
    if (!strcmp(argv[1], "sparse")) {
        static const char data[] = "one page of data";
        if (ftruncate(fd, 1L << 30) || pwrite(fd, data, sizeof data, 512L << 20) != sizeof data)
            return 1;
        printf("mapped: %s\n", map(fd, 4096, 512L << 20));
        wait_for_signal();
    } else if (!strcmp(argv[1], "rewrite") && argc == 4) {
        const size_t size = 8 << 20;
        int rounds = atoi(argv[3]);
        fill(fd, 'x', size);
        for (int i = 0; i < rounds; i++) {
            char c = 'a' + i % 26;
            off_t at = (off_t)i * 81919 % size;
            char *p;
            if (pwrite(fd, &c, 1, at) != 1)
                return 1;
            p = map(fd, size, 0);
            if (p[at] != c || p[size - 1] != 'x') {
                printf("round %d: map shows %c, not %c\n", i, p[at], c);
                return 1;
            }
            munmap(p, size);
        }
        printf("rewrote %d times\n", rounds);
        wait_for_signal();
    } else if (!strcmp(argv[1], "race")) {
        const size_t size = 16 << 20;
        char *want = malloc(size);
        for (size_t i = 0; i < size; i++)
            want[i] = (char)(i * 31 % 251 + 1);
        if (pwrite(fd, want, size, 0) != (ssize_t)size)
            return 1;
        pid_t child = fork();
        char *p = map(fd, size, 0);
        printf("%s: %s\n", child ? "parent" : "child",
               memcmp(p, want, size) ? "differs" : "agrees");
        if (!child)
            return 0;
        int status;
        fflush(stdout);
        waitpid(child, &status, 0);
        return status;
    } else if (!strcmp(argv[1], "unlinked")) {
        const size_t size = 1 << 20;
        fill(fd, 'o', size);
        char *old = map(fd, size, 0);         /* not touched until the new one is mapped */
        fill(fd, 'n', size);
        char *new = map(fd, size, 0);
        size_t old_ok = 0, new_ok = 0;
        for (size_t i = 0; i < size; i++) {
            old_ok += old[i] == 'o';
            new_ok += new[i] == 'n';
        }
        printf("old map: %zu of %zu bytes 'o'; new map: %zu 'n'\n", old_ok, size, new_ok);
        wait_for_signal();
    } else {
        return 2;
    }
    return 0;
}
