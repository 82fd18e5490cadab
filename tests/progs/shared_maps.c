/* MAP_SHARED file maps as Linux has them: one copy of the file's data that
 * maps, read and write all see, between processes too.  Prints what it sees;
 * run natively and in a guest, the output must be the same.
 *   shared_maps all DIR        every case below, on files in DIR
 *   shared_maps leave FILE     write through a shared map and exit without
 *                              msync or munmap (the data must reach the disk)
 *   shared_maps show FILE      print FILE's first 16 bytes */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096
#define SIZE (3 << 20)          /* more than one of the page cache's 1 MiB chunks */

static char path[4096];
static sigjmp_buf fault;

static void on_sigbus(int sig) { siglongjmp(fault, sig); }

static int make(const char *dir, const char *name, char c, size_t size)
{
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) { perror(path); exit(1); }
    char *buf = malloc(size);
    memset(buf, c, size);
    if (write(fd, buf, size) != (ssize_t)size) { perror("write"); exit(1); }
    free(buf);
    return fd;
}

static char *map(int fd, size_t length, int prot, int flags)
{
    char *p = mmap(NULL, length, prot, flags, fd, 0);
    if (p == MAP_FAILED) { perror("mmap"); exit(1); }
    return p;
}

static void show(const char *what, const char *p, size_t n)
{
    printf("%s: %.*s\n", what, (int)n, p);
}

static void pshow(const char *what, int fd, off_t at, size_t n)
{
    char buf[64] = {0};
    ssize_t got = pread(fd, buf, n, at);
    printf("%s: %.*s\n", what, (int)(got < 0 ? 0 : got), buf);
}

static void result(const char *what, int r)
{
    printf("%s: %d %s\n", what, r, r < 0 ? strerror(errno) : "");
}

static int touch(volatile char *p)
{
    if (sigsetjmp(fault, 1))
        return -1;
    return *p;
}

static void all(const char *dir)
{
    signal(SIGBUS, on_sigbus);

    /* write(2) is seen through a map made before it, in every chunk */
    int fd = make(dir, "coherent", 'a', SIZE);
    char *m = map(fd, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED);
    pwrite(fd, "WRITE", 5, 10);
    pwrite(fd, "LATER", 5, SIZE - 5);
    show("map sees write", m + 10, 5);
    show("map sees write in the last chunk", m + SIZE - 5, 5);

    /* a store through the map is seen by read(2) at once */
    memcpy(m + (1 << 20) + 3, "STORE", 5);
    pshow("read sees store", fd, (1 << 20) + 3, 5);

    /* a forked child's store, and a second process's own map */
    pid_t child = fork();
    if (child == 0) {
        memcpy(m + 200, "CHILD", 5);
        int again = open(path, O_RDWR);
        char *other = map(again, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED);
        memcpy(other + 300, "OTHER", 5);
        _exit(0);
    }
    waitpid(child, NULL, 0);
    pshow("read sees child's store", fd, 200, 5);
    show("map sees another map's store", m + 300, 5);

    /* a private map made later starts from the shared bytes, and keeps its own */
    char *priv = map(fd, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    show("private map starts from the stores", priv + 200, 5);
    memcpy(priv + 400, "PRIVATE", 7);
    pshow("read does not see a private store", fd, 400, 7);
    munmap(priv, PAGE);

    /* truncate: past the end is SIGBUS; grown again, zeros, then data */
    ftruncate(fd, PAGE);
    printf("past the end after truncate: %s\n",
           touch(m + 2 * PAGE) < 0 ? "SIGBUS" : "readable");
    ftruncate(fd, 2 * PAGE);
    printf("grown again: %d\n", touch(m + PAGE + 5));
    pwrite(fd, "GROWN", 5, PAGE + 5);
    show("map sees the grown part's write", m + PAGE + 5, 5);

    /* msync's checks and a synchronous one */
    printf("msync MS_SYNC: %d\n", msync(m, PAGE, MS_SYNC));
    result("msync MS_SYNC|MS_ASYNC", msync(m, PAGE, MS_SYNC | MS_ASYNC));
    result("msync unaligned", msync(m + 1, PAGE, MS_SYNC));
    munmap(m, SIZE);

    /* after munmap and close, the stores are the file's */
    memcpy(map(fd, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED) + 500, "KEPT", 4);
    close(fd);
    fd = open(path, O_RDONLY);
    pshow("reopened", fd, 500, 4);

    /* a read-only fd's shared map cannot be made writable; a read-write one's can */
    char *ro = map(fd, PAGE, PROT_READ, MAP_SHARED);
    result("mprotect write, read-only fd", mprotect(ro, PAGE, PROT_READ | PROT_WRITE));
    close(fd);
    fd = open(path, O_RDWR);
    char *rw = map(fd, PAGE, PROT_READ, MAP_SHARED);
    printf("mprotect write, read-write fd: %d\n", mprotect(rw, PAGE, PROT_READ | PROT_WRITE));
    memcpy(rw + 600, "RAISED", 6);
    pshow("read sees a store after mprotect", fd, 600, 6);
    show("the read-only map sees it too", ro + 600, 6);
    close(fd);

    /* an unlinked file's map goes on being the file */
    fd = make(dir, "unlinked", 'u', PAGE);
    char *gone = map(fd, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED);
    unlink(path);
    memcpy(gone, "GONE", 4);
    pwrite(fd, "FD", 2, 10);
    pshow("unlinked: read sees store", fd, 0, 4);
    show("unlinked: map sees write", gone + 10, 2);
    close(fd);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 3 && !strcmp(argv[1], "all")) {
        all(argv[2]);
    } else if (argc == 3 && !strcmp(argv[1], "leave")) {
        int fd = open(argv[2], O_RDWR | O_CREAT | O_TRUNC, 0644);
        ftruncate(fd, PAGE);
        memcpy(map(fd, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED), "left in the map", 15);
    } else if (argc == 3 && !strcmp(argv[1], "show")) {
        int fd = open(argv[2], O_RDONLY);
        pshow("shows", fd, 0, 16);
    } else {
        fprintf(stderr, "usage: shared_maps all DIR | leave FILE | show FILE\n");
        return 2;
    }
    return 0;
}
