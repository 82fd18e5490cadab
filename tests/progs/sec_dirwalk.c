/* Long directory walks while a bystander calls getppid() in a loop: each
 * walk is one system call over a directory of N entries, and the bystander
 * counts the calls of its that were served while that call was waiting
 * inside the kernel (it reads the walker's state from /proc/PID/stat after
 * each getppid: 'S' is a call of the walker's that has let the kernel's
 * loop go; no other call could be served while one held it).
 *   sec_dirwalk N
 * The disk must hold /walk/{list,lookup,rmdir,create,unlink}, each with N
 * entries the kernel has not read yet (made with the image): each walk
 * there is the first look at the names of its directory, after a listing
 * (not counted) has brought its blocks into the kernel's cache.  Then a
 * tmpfs directory of N entries made here, and N fds listed in /proc/self/fd.
 * What the disk would be read for otherwise is read before each walk, so
 * that only the walk can let the loop go.  Prints each walk's result and
 * how often the bystanders (BYSTANDERS of them, so that one is always
 * ready) were served during it. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "sec_try.h"

#define WALKS 16
#define BYSTANDERS 4

struct shared {
    volatile int walking;            /* the walk under way (1 + its index), or 0 */
    volatile int stop;
    long calls;                      /* the bystanders' calls */
    long during[WALKS + 1];          /* those that found the walker waiting in its call */
};

static struct shared *sh;
static int walks;
static char big[1 << 20];

static void bystander(void) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", getppid());
    int fd = open(path, O_RDONLY);
    while (!sh->stop) {
        int w = sh->walking;
        if (!w)
            syscall(SYS_getppid);
        else if (state_of(fd) == 'S' && sh->walking == w)
            __atomic_add_fetch(&sh->during[w], 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&sh->calls, 1, __ATOMIC_RELAXED);
    }
    _exit(0);
}

static long result(long r) {
    return r < 0 ? -errno : r;
}

static const char *shown(long r) {
    static char buf[64];
    if (r < 0)
        return strerrorname_np(-r);
    snprintf(buf, sizeof buf, "%ld", r);
    return buf;
}

/* The number of entries in what getdents64 gave. */
static long entries(const char *buf, long n) {
    long count = 0;
    for (long at = 0; at < n; at += *(unsigned short *)(buf + at + 16))
        count++;
    return count;
}

/* Read the whole directory with a small buffer: its blocks are cached then. */
static void list_all(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    while (syscall(SYS_getdents64, fd, big, 4096) > 0)
        ;
    close(fd);
}

/* getdents64 of all of dir in one call. */
static long getdents_all(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    long n = result(syscall(SYS_getdents64, fd, big, sizeof big));
    close(fd);
    return n < 0 ? n : entries(big, n);
}

static void walk_begin(void) {
    walks++;
    sh->walking = walks;
}

static void walk_end(const char *what, long r) {
    sh->walking = 0;
    printf("%s: %s; bystanders served %ld times during it\n", what, shown(r),
           __atomic_load_n(&sh->during[walks], __ATOMIC_RELAXED));
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc != 2) {
        fprintf(stderr, "usage: sec_dirwalk N\n");
        return 2;
    }
    int n = atoi(argv[1]);
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    pid_t children[BYSTANDERS];
    for (int i = 0; i < BYSTANDERS; i++)
        if ((children[i] = fork()) == 0)
            bystander();
    while (__atomic_load_n(&sh->calls, __ATOMIC_RELAXED) < BYSTANDERS)
        sched_yield();

    long r;
    list_all("/walk/list");
    walk_begin();
    r = getdents_all("/walk/list");
    walk_end("ext2: getdents64 of all of it", r);

    list_all("/walk/lookup");
    walk_begin();
    struct stat st;
    r = result(stat("/walk/lookup/missing", &st));
    walk_end("ext2: stat of a missing name", r);

    list_all("/walk/rmdir");
    walk_begin();
    r = result(rmdir("/walk/rmdir"));
    walk_end("ext2: rmdir of it", r);

    list_all("/walk/create");
    close(open("/walk/warm", O_CREAT | O_WRONLY, 0644));   /* bitmaps read in, not counted */
    unlink("/walk/warm");
    walk_begin();
    r = result(open("/walk/create/new", O_CREAT | O_EXCL | O_WRONLY, 0644));
    walk_end("ext2: creating one more entry", r < 0 ? r : 0);
    close(r);
    printf("ext2: unlinking it: %s\n", shown(result(unlink("/walk/create/new"))));

    list_all("/walk/unlink");
    walk_begin();
    r = result(unlink("/walk/unlink/00042"));
    walk_end("ext2: unlinking an entry", r);

    /* tmpfs: N links to one file, and a directory last */
    mkdir("/tmp/walk", 0755);
    close(open("/tmp/walk/target", O_CREAT | O_WRONLY, 0644));
    char name[64];
    for (int i = 1; i < n; i++) {
        snprintf(name, sizeof name, "/tmp/walk/%05d", i);
        link("/tmp/walk/target", name);
    }
    mkdir("/tmp/walk/sub", 0755);
    walk_begin();
    r = getdents_all("/tmp/walk");
    walk_end("tmpfs: getdents64 of all of it", r);

    chdir("/tmp/walk/sub");
    syscall(SYS_getcwd, name, sizeof name);      /* the ext2 directories above read in */
    walk_begin();
    r = result(syscall(SYS_getcwd, name, sizeof name));
    walk_end("tmpfs: getcwd in its last subdirectory", r < 0 ? r : 0);
    printf("tmpfs: getcwd gave %s\n", r < 0 ? "nothing" : name);
    chdir("/");

    /* procfs: N fds */
    struct rlimit rl = {n + 64, n + 64};
    setrlimit(RLIMIT_NOFILE, &rl);
    int fd = open("/dev/null", O_RDONLY);
    for (int i = 0; i < n; i++)
        if (dup(fd) < 0)
            break;
    walk_begin();
    r = getdents_all("/proc/self/fd");
    walk_end("procfs: getdents64 of /proc/self/fd", r);

    sh->stop = 1;
    int failed = 0, status;
    for (int i = 0; i < BYSTANDERS; i++)
        failed += waitpid(children[i], &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status);
    printf("bystanders failed: %d\n", failed);
    return 0;
}
