/* File maps as Linux has them, and /proc/self/maps naming them.  Prints
 * what it sees; run natively (in a chroot of the guest's tree) and in a
 * guest, the output must be the same.
 *   file_maps maps DIR      /proc/self/maps: every line, addresses left out,
 *                           each file's dev and inode checked against stat
 *   file_maps stack         pthread_getattr_np on the main thread
 *   file_maps ops DIR       offsets, MAP_FIXED, MAP_FIXED_NOREPLACE,
 *                           mprotect, mremap, madvise, truncate, and what a
 *                           private map sees of later writes
 *   file_maps hold FILE     map FILE, say so, close stdout and wait to be killed */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define PAGE 4096
#define MiB (1 << 20)

static char path[4096];
static sigjmp_buf fault;

static void on_fault(int sig) { siglongjmp(fault, sig); }

/* A file of size bytes, each page's bytes the page's letter ('a' + n % 26). */
static int make(const char *dir, const char *name, size_t size)
{
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) { perror(path); exit(1); }
    char page[PAGE];
    for (size_t off = 0; off < size; off += PAGE) {
        memset(page, 'a' + (off / PAGE) % 26, PAGE);
        size_t n = size - off < PAGE ? size - off : PAGE;
        if (write(fd, page, n) != (ssize_t)n) { perror("write"); exit(1); }
    }
    return fd;
}

/* The byte at p, or the signal reading it raised. */
static const char *peek(volatile char *p)
{
    static char out[32];
    int sig = sigsetjmp(fault, 1);
    if (sig)
        snprintf(out, sizeof out, "%s", sig == SIGBUS ? "SIGBUS" : "SIGSEGV");
    else
        snprintf(out, sizeof out, *p > ' ' && *p < 127 ? "%c" : "<%d>", *p);
    return out;
}

static void result(const char *what, long r)
{
    printf("%s: %s\n", what, r < 0 ? strerror(errno) : "ok");
}

static void maps(const char *dir)
{
    int fd = make(dir, "data", 4 * PAGE);
    char *priv = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, fd, 2 * PAGE);
    char *shared = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, PAGE);
    if (priv == MAP_FAILED || shared == MAP_FAILED) { perror("mmap"); exit(1); }
    char other[4096];
    snprintf(other, sizeof other, "%s/other", dir);
    int fd2 = make(dir, "other", PAGE);
    char *gone = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, fd2, 0);
    unlink(other);
    char moved[4096];
    snprintf(moved, sizeof moved, "%s/before", dir);
    int fd3 = make(dir, "before", PAGE);
    char *renamed = mmap(NULL, PAGE, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd3, 0);
    snprintf(other, sizeof other, "%s/after", dir);
    rename(moved, other);
    (void)gone; (void)renamed;
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) { perror("/proc/self/maps"); exit(1); }
    char line[8192];
    while (fgets(line, sizeof line, f)) {
        char perms[8], dev[16], name[4096] = "";
        unsigned long lo, hi, off, ino;
        if (sscanf(line, "%lx-%lx %7s %lx %15s %lu %4095[^\n]", &lo, &hi, perms, &off, dev,
                   &ino, name) < 6) {
            printf("bad line: %s", line);
            continue;
        }
        const char *check = "";
        struct stat st;
        if (name[0] == '/' && stat(name, &st) == 0) {
            char want[32];
            snprintf(want, sizeof want, "%02x:%02x", major(st.st_dev), minor(st.st_dev));
            check = strcmp(want, dev) == 0 && st.st_ino == ino ? " (dev, ino: stat's)"
                                                                : " (dev, ino: not stat's)";
        } else if (name[0] != '/' && (ino != 0 || strcmp(dev, "00:00") != 0)) {
            check = " (dev, ino: not 0)";
        }
        /* the stack and the heap's sizes are the process's own */
        if (strcmp(name, "[stack]") && strcmp(name, "[heap]") && name[0])
            printf("%s %lx %s%s size %lx\n", perms, off, name, check, hi - lo);
        else
            printf("%s %lx %s%s\n", perms, off, name[0] ? name : "(anonymous)", check);
    }
    fclose(f);
    unlink(other);
    snprintf(other, sizeof other, "%s/data", dir);
    unlink(other);
}

static void stack(void)
{
    pthread_attr_t attr;
    void *addr;
    size_t size;
    int here = 0;
    if (pthread_getattr_np(pthread_self(), &attr) != 0) { printf("getattr failed\n"); return; }
    pthread_attr_getstack(&attr, &addr, &size);
    printf("stack holds a local: %s\n",
           (char *)addr <= (char *)&here && (char *)&here < (char *)addr + size ? "yes" : "no");
    printf("stack size > 0: %s\n", size > 0 ? "yes" : "no");
}

static void ops(const char *dir)
{
    signal(SIGBUS, on_fault);
    signal(SIGSEGV, on_fault);

    /* any page offset, in and past the page cache's 1 MiB chunks */
    int fd = make(dir, "big", 3 * MiB);
    long offsets[] = {PAGE, 7 * PAGE, MiB - PAGE, MiB + 5 * PAGE, 2 * MiB + PAGE};
    for (int i = 0; i < 5; i++) {
        char *p = mmap(NULL, 2 * PAGE, PROT_READ, MAP_PRIVATE, fd, offsets[i]);
        printf("offset %ld: %s", offsets[i], peek(p));
        printf("%s\n", peek(p + PAGE));
        munmap(p, 2 * PAGE);
    }
    char *bad = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, fd, 100);
    result("offset not a page's", bad == MAP_FAILED ? -1 : 0);

    /* MAP_FIXED over an anonymous map and over another file map */
    char *area = mmap(NULL, 6 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(area, 'Z', 6 * PAGE);
    char *p = mmap(area + PAGE, 2 * PAGE, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 3 * PAGE);
    printf("fixed over anonymous: at the address %s, bytes %s", p == area + PAGE ? "yes" : "no",
           peek(area));
    printf("%s", peek(area + PAGE));
    printf("%s", peek(area + 2 * PAGE));
    printf("%s\n", peek(area + 3 * PAGE));
    p = mmap(area + 2 * PAGE, PAGE, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 10 * PAGE);
    printf("fixed over a file map: %s%s", p == area + 2 * PAGE ? "" : "moved ", peek(area + PAGE));
    printf("%s\n", peek(area + 2 * PAGE));

    /* MAP_FIXED_NOREPLACE: EEXIST where anything is mapped */
    p = mmap(area + 3 * PAGE, PAGE, PROT_READ, MAP_PRIVATE | MAP_FIXED_NOREPLACE, fd, 0);
    result("noreplace over a map", p == MAP_FAILED ? -1 : 0);
    p = mmap(area + 2 * PAGE, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
             -1, 0);
    result("noreplace anonymous over a file map", p == MAP_FAILED ? -1 : 0);
    munmap(area + 4 * PAGE, PAGE);
    p = mmap(area + 4 * PAGE, PAGE, PROT_READ, MAP_PRIVATE | MAP_FIXED_NOREPLACE, fd, 0);
    printf("noreplace in a hole: %s %s\n", p == area + 4 * PAGE ? "there" : "elsewhere",
           p == MAP_FAILED ? "failed" : peek(p));
    munmap(area, 6 * PAGE);

    /* mprotect: a private map of a read-only file may be written, a shared one not */
    int ro = open(path, O_RDONLY);
    p = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, ro, 0);
    result("mprotect write, private of read-only", mprotect(p, PAGE, PROT_READ | PROT_WRITE));
    p[0] = 'P';
    char byte;
    pread(ro, &byte, 1, 0);
    printf("private store: map %c file %c\n", p[0], byte);
    char *s = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, ro, 0);
    result("mprotect write, shared of read-only", mprotect(s, PAGE, PROT_READ | PROT_WRITE));
    result("mprotect exec, shared of read-only", mprotect(s, PAGE, PROT_READ | PROT_EXEC));
    result("mprotect none", mprotect(s, PAGE, PROT_NONE));
    printf("read of PROT_NONE: %s\n", peek(s));
    s = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, fd, 0);
    result("mprotect write, shared of read-write", mprotect(s, PAGE, PROT_READ | PROT_WRITE));
    s[1] = 'S';
    pread(fd, &byte, 1, 1);
    printf("shared store reaches the file: %c\n", byte);
    close(ro);

    /* mremap: grow (the new part is the file's), shrink, move */
    p = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, fd, MiB - PAGE);
    char *q = mremap(p, PAGE, MiB + 2 * PAGE, MREMAP_MAYMOVE);
    if (q == MAP_FAILED) {
        result("mremap grow", -1);
    } else {
        printf("mremap grow: %s", peek(q));
        printf("%s", peek(q + PAGE));
        printf("%s\n", peek(q + MiB + PAGE));
        char *r = mremap(q, MiB + 2 * PAGE, PAGE, 0);
        printf("mremap shrink: %s %s", r == q ? "in place" : "moved", peek(r));
        printf(" %s\n", peek(q + PAGE));
        char *to = mmap(NULL, 4 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        r = mremap(q, PAGE, 2 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, to + PAGE);
        printf("mremap move: %s %s", r == to + PAGE ? "there" : "elsewhere", peek(r));
        printf("%s\n", peek(r + PAGE));
    }
    s = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    q = mremap(s, PAGE, 2 * MiB, MREMAP_MAYMOVE);
    if (q != MAP_FAILED) {
        q[MiB + 1] = 'G';
        pread(fd, &byte, 1, MiB + 1);
        printf("mremap grow, shared: %s store reaches the file %c\n", peek(q + 2 * MiB - 1), byte);
    }

    /* madvise(MADV_DONTNEED) drops a private map's own pages: the file's again */
    p = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 4 * PAGE);
    p[0] = 'X';
    p[PAGE] = 'Y';
    result("madvise dontneed", madvise(p, PAGE, MADV_DONTNEED));
    printf("after dontneed: %s", peek(p));
    printf("%s\n", peek(p + PAGE));

    /* what a private map sees of write(2): its untouched pages follow the file */
    p = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 6 * PAGE);
    p[PAGE] = 'O';
    pwrite(fd, "W", 1, 6 * PAGE);
    pwrite(fd, "W", 1, 7 * PAGE);
    printf("private map after write: untouched %s", peek(p));
    printf(", own %s\n", peek(p + PAGE));
    p[0] = 'O';
    pwrite(fd, "V", 1, 6 * PAGE);
    printf("private map after its store: %s\n", peek(p));
    result("madvise dontneed", madvise(p, 2 * PAGE, MADV_DONTNEED));
    printf("after dontneed: %s", peek(p));
    printf("%s\n", peek(p + PAGE));

    /* truncate: past the new end, SIGBUS; extended again, zeros */
    int t = make(dir, "trunc", 4 * PAGE);
    s = mmap(NULL, 4 * PAGE, PROT_READ, MAP_SHARED, t, 0);
    p = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, t, 0);
    p[3 * PAGE] = 'O';
    ftruncate(t, PAGE + 10);
    printf("truncated, shared: %s", peek(s));
    printf(" %s", peek(s + PAGE + 10));
    printf(" %s\n", peek(s + 2 * PAGE));
    printf("truncated, private: %s", peek(p));
    printf(" %s", peek(p + 2 * PAGE));
    printf(" %s\n", peek(p + 3 * PAGE));
    ftruncate(t, 4 * PAGE);
    printf("extended: %d %d\n", *(volatile char *)(s + 2 * PAGE), *(volatile char *)(p + 2 * PAGE));
    int t2 = make(dir, "trunc2", 4 * PAGE);
    p = mmap(NULL, 4 * PAGE, PROT_READ, MAP_PRIVATE, t2, 0);
    ftruncate(t2, PAGE);
    printf("truncated, private only: %s", peek(p));
    printf(" %s\n", peek(p + 2 * PAGE));
    close(t);
    close(t2);
    close(fd);
    for (const char *n = "big\0trunc\0trunc2\0"; *n; n += strlen(n) + 1) {
        snprintf(path, sizeof path, "%s/%s", dir, n);
        unlink(path);
    }
}

static void hold(const char *file)
{
    int fd = open(file, O_RDONLY);
    if (fd < 0 || mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, fd, 0) == MAP_FAILED) {
        perror(file);
        exit(1);
    }
    printf("mapped\n");
    fclose(stdout);             /* the reader sees its end: the map is there */
    for (;;)
        pause();
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc == 3 && !strcmp(argv[1], "maps"))
        maps(argv[2]);
    else if (argc == 2 && !strcmp(argv[1], "stack"))
        stack();
    else if (argc == 3 && !strcmp(argv[1], "ops"))
        ops(argv[2]);
    else if (argc == 3 && !strcmp(argv[1], "hold"))
        hold(argv[2]);
    else {
        fprintf(stderr, "usage: file_maps maps DIR | stack | ops DIR | hold FILE\n");
        return 2;
    }
    return 0;
}
