/* read(2) and pread(2) of regular files at the edges a file cache could get
 * wrong: pages straddled, the end of the file, holes, reads after writes,
 * truncates and stores through a shared map by another process, buffers
 * that stop being writable part way.  Prints counts, errnos, positions and
 * a hash of the bytes read; run natively and in a guest, the output must be
 * the same.
 *   read_cache all DIR     every case, on files in DIR
 *   read_cache race DIR    one thread reads into a buffer another unmaps and
 *                          maps again, over and over; the pages around it
 *                          must be untouched: prints "race: ok" */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096
#define BIG (64 << 10)

static char path[4096];
static char buf[1 << 20];

static uint64_t hash(const char *p, ssize_t n)
{
    uint64_t h = 1469598103934665603ULL;            /* FNV-1a */
    for (ssize_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
    return h;
}

static void pattern(char *p, size_t n, size_t at)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (char)((at + i) * 7 + (at + i) / 4093);
}

static int make(const char *dir, const char *name, size_t size)
{
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) { perror(path); exit(1); }
    char *data = malloc(size + 1);
    pattern(data, size, 0);
    if (write(fd, data, size) != (ssize_t)size) { perror("write"); exit(1); }
    free(data);
    return fd;
}

static void show_pread(const char *what, int fd, size_t count, off_t at)
{
    memset(buf, 0x5a, count);
    ssize_t n = pread(fd, buf, count, at);
    if (n < 0)
        printf("%s pread %zu@%lld: -1 %s\n", what, count, (long long)at, strerror(errno));
    else
        printf("%s pread %zu@%lld: %zd %016llx\n", what, count, (long long)at, n,
               (unsigned long long)hash(buf, n));
}

static void edges(const char *dir)
{
    size_t size = 3 * PAGE + 100;
    int fd = make(dir, "edges", size);
    for (int pass = 0; pass < 2; pass++) {      /* cold, then from the cache */
        const char *what = pass ? "edges warm" : "edges cold";
        show_pread(what, fd, 10, 0);
        show_pread(what, fd, 20, PAGE - 10);
        show_pread(what, fd, 2 * PAGE + 1, PAGE - 1);
        show_pread(what, fd, 500, 3 * PAGE + 50);
        show_pread(what, fd, 10, size);
        show_pread(what, fd, 10, size + 5000);
        show_pread(what, fd, sizeof buf, 0);
    }
    lseek(fd, 0, SEEK_SET);
    ssize_t n;
    uint64_t h = 0;
    int reads = 0;
    while ((n = read(fd, buf, 5000)) > 0) {
        h ^= hash(buf, n) + reads++;
        printf("edges read 5000: %zd, now at %lld\n", n, (long long)lseek(fd, 0, SEEK_CUR));
    }
    printf("edges sequential: %d reads, last %zd, %016llx\n", reads, n, (unsigned long long)h);
    close(fd);
}

static void holes(const char *dir)
{
    snprintf(path, sizeof path, "%s/holes", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (pwrite(fd, "head", 4, 0) != 4 || pwrite(fd, "tail", 4, (1 << 20) + 7) != 4)
        perror("pwrite");
    for (int pass = 0; pass < 2; pass++) {
        show_pread("holes", fd, 2 * PAGE, 0);
        show_pread("holes", fd, 30, (1 << 20) - 10);
        show_pread("holes", fd, BIG, (1 << 20) - BIG + 100);
    }
    close(fd);
}

static void after_changes(const char *dir)
{
    int fd = make(dir, "changes", 5 * PAGE);
    show_pread("changes before", fd, 5 * PAGE, 0);             /* cached now */
    if (pwrite(fd, "NEW BYTES", 9, PAGE + 4090) != 9) perror("pwrite");
    show_pread("changes after pwrite", fd, 5 * PAGE, 0);
    lseek(fd, 2 * PAGE + 1, SEEK_SET);
    if (write(fd, "more", 4) != 4) perror("write");
    show_pread("changes after write", fd, 3 * PAGE, PAGE);
    if (ftruncate(fd, 2 * PAGE + 3) < 0) perror("ftruncate");
    show_pread("changes after shrink", fd, 5 * PAGE, 0);
    if (ftruncate(fd, 4 * PAGE) < 0) perror("ftruncate");
    show_pread("changes after grow", fd, 5 * PAGE, 0);
    if (pwrite(fd, "far", 3, 7 * PAGE + 5) != 3) perror("pwrite");   /* a hole between */
    show_pread("changes after extending", fd, 9 * PAGE, 0);
    if (ftruncate(fd, 100) < 0) perror("ftruncate");
    if (pwrite(fd, "x", 1, 3000) != 1) perror("pwrite");      /* the old tail is zeros */
    show_pread("changes after shrink and write", fd, PAGE, 0);
    close(fd);
}

static void shared_map_stores(const char *dir)
{
    int fd = make(dir, "mapped", 4 * PAGE);
    show_pread("mapped before", fd, 4 * PAGE, 0);
    pid_t child = fork();
    if (child == 0) {                  /* stores, and exits without msync or munmap */
        char *m = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (m == MAP_FAILED) _exit(1);
        memcpy(m + PAGE + 10, "STORED BY A CHILD", 17);
        _exit(0);
    }
    int st;
    waitpid(child, &st, 0);
    printf("mapped child exit %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    show_pread("mapped after the child", fd, 4 * PAGE, 0);
    char *m = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    memcpy(m + 3 * PAGE, "MINE", 4);
    show_pread("mapped while mine", fd, 4 * PAGE, 0);
    munmap(m, 4 * PAGE);
    show_pread("mapped after munmap", fd, 4 * PAGE, 0);
    close(fd);
}

static void bad_buffers(const char *dir)
{
    int fd = make(dir, "faults", 4 * PAGE);
    for (int pass = 0; pass < 2; pass++) {
        const char *what = pass ? "faults warm" : "faults cold";
        char *two = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                         -1, 0);
        munmap(two + PAGE, PAGE);                  /* the second page is gone */
        size_t offsets[] = {0, 100, PAGE - 1};
        for (int i = 0; i < 3; i++) {
            lseek(fd, 0, SEEK_SET);
            errno = 0;
            ssize_t n = read(fd, two + offsets[i], 2 * PAGE);
            printf("%s read into %zu: %zd %s, now at %lld, %016llx\n", what, offsets[i], n,
                   n < 0 ? strerror(errno) : "", (long long)lseek(fd, 0, SEEK_CUR),
                   (unsigned long long)hash(two + offsets[i], n > 0 ? n : 0));
            errno = 0;
            n = pread(fd, two + offsets[i], 2 * PAGE, 10);
            printf("%s pread into %zu: %zd %s\n", what, offsets[i], n,
                   n < 0 ? strerror(errno) : "");
        }
        lseek(fd, 0, SEEK_SET);
        errno = 0;
        ssize_t n = read(fd, two + PAGE, 100);
        printf("%s read into nothing: %zd %s, now at %lld\n", what, n, strerror(errno),
               (long long)lseek(fd, 0, SEEK_CUR));
        char *ro = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        errno = 0;
        n = pread(fd, ro, 100, 0);
        printf("%s pread into read-only: %zd %s\n", what, n, strerror(errno));
        munmap(ro, PAGE);
        munmap(two, PAGE);
    }
    close(fd);
}

/* --- the race ------------------------------------------------------------- */

#define GUARD 0xa5
static char *region;            /* guard page, BIG bytes of buffer, guard page */
static volatile int stop;
static int race_fd;

static void *reader(void *arg)
{
    (void)arg;
    for (int i = 0; i < 3000; i++) {
        ssize_t n = pread(race_fd, region + PAGE, BIG, (i % 16) * PAGE);
        if (n > BIG || (n < 0 && errno != EFAULT)) {
            printf("race: read gave %zd (%s)\n", n, strerror(errno));
            exit(1);
        }
    }
    stop = 1;
    return NULL;
}

static void race(const char *dir)
{
    race_fd = make(dir, "race", 1 << 20);
    region = mmap(NULL, BIG + 2 * PAGE, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(region, GUARD, BIG + 2 * PAGE);
    pthread_t t;
    pthread_create(&t, NULL, reader, NULL);
    while (!stop) {
        munmap(region + PAGE, BIG);
        if (mmap(region + PAGE, BIG, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED) {
            perror("mmap");
            exit(1);
        }
    }
    pthread_join(t, NULL);
    for (int i = 0; i < PAGE; i++)
        if ((unsigned char)region[i] != GUARD || (unsigned char)region[PAGE + BIG + i] != GUARD) {
            printf("race: a guard page changed at %d\n", i);
            exit(1);
        }
    printf("race: ok\n");
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: read_cache all|race DIR\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IONBF, 0);
    if (!strcmp(argv[1], "race")) {
        race(argv[2]);
        return 0;
    }
    edges(argv[2]);
    holes(argv[2]);
    after_changes(argv[2]);
    shared_map_stores(argv[2]);
    bad_buffers(argv[2]);
    return 0;
}
