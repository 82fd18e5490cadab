/* Hostile chroot: bad pointers, an unterminated path, a path too long;
   then every way out of a jail Linux leaves (the fchdir escape, ".."
   climbed far past the root, /proc's links of a process outside, a root
   in /proc of a process that goes away) and what it reaches: the guest's
   own root at most, never the host's files (the host paths given as
   arguments).  tests/security/test_chroot_escape.py checks the output. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define SHOW(label, expr) do { \
    errno = 0; long r_ = (long)(expr); \
    printf("%s = %ld%s%s\n", label, r_, r_ < 0 ? " " : "", r_ < 0 ? strerrorname_np(errno) : ""); \
} while (0)

static void cwd(const char *label) {
    char buf[4096];
    long n = syscall(SYS_getcwd, buf, sizeof buf);
    printf("%s: getcwd %s\n", label, n > 0 ? buf : strerrorname_np(errno));
}

static void link_of(const char *label, const char *path) {
    char buf[4096];
    ssize_t n = readlink(path, buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    printf("%s: %s\n", label, n >= 0 ? buf : strerrorname_np(errno));
}

/* The names in "/", sorted by the kernel's order of no importance: printed
   one line, sorted here. */
static void list_root(const char *label) {
    char names[64][256];
    int n = 0;
    DIR *d = opendir("/");
    struct dirent *e;
    while (d && (e = readdir(d)) && n < 64)
        if (e->d_name[0] != '.')
            snprintf(names[n++], 256, "%s", e->d_name);
    if (d)
        closedir(d);
    qsort(names, n, 256, (int (*)(const void *, const void *))strcmp);
    printf("%s:", label);
    for (int i = 0; i < n; i++)
        printf(" %s", names[i]);
    printf("\n");
}

static void climb(void) {
    for (int i = 0; i < 200; i++)
        chdir("..");
}

static void wait_for(pid_t pid) {
    int st;
    waitpid(pid, &st, 0);
}

static void bad_pointers(void) {
    SHOW("chroot NULL", syscall(SYS_chroot, NULL));
    SHOW("chroot a kernel address", syscall(SYS_chroot, (char *)0xffffffffff600000UL));
    SHOW("chroot -1", syscall(SYS_chroot, (char *)-1L));
    char *page = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(page + 4096, 4096);
    memset(page + 4000, 'a', 96);
    SHOW("chroot unterminated at a hole", syscall(SYS_chroot, page + 4000));
    char *longer = malloc(PATH_MAX + 10);
    memset(longer, 'a', PATH_MAX + 9);
    longer[PATH_MAX + 9] = 0;
    SHOW("chroot longer than PATH_MAX", chroot(longer));
}

/* Jailed, then out by the fchdir escape: what the process can reach. */
static void escape(int argc, char **argv) {
    mkdir("/tmp/jail", 0755);
    mkdir("/tmp/jail/in", 0755);
    mkdir("/tmp/jail/proc", 0755);
    SHOW("mount proc in the jail", mount("proc", "/tmp/jail/proc", "proc", 0, NULL));
    int outside = open("/", O_RDONLY | O_DIRECTORY);
    SHOW("chroot /tmp/jail", chroot("/tmp/jail"));
    SHOW("chdir /", chdir("/"));
    climb();
    cwd("climbed in the jail");
    list_root("root in the jail");
    link_of("init's root from the jail", "/proc/1/root");
    link_of("init's cwd from the jail", "/proc/1/cwd");

    SHOW("fchdir outside", fchdir(outside));
    cwd("outside");
    climb();
    cwd("climbed outside");
    SHOW("chroot .", chroot("."));
    SHOW("chdir / again", chdir("/"));
    climb();
    list_root("root after the escape");
    cwd("climbed after the escape");
    link_of("own root", "/proc/self/root");
    for (int i = 1; i < argc; i++) {
        char label[64];
        snprintf(label, sizeof label, "host path %d", i);
        SHOW(label, access(argv[i], F_OK));
        SHOW("  from the root", faccessat(outside, argv[i] + 1, F_OK, 0));
    }
}

/* A root in /proc, of a process that ends while a task is rooted there. */
static void root_in_proc(void) {
    int go[2], rooted[2], ended[2];
    char c;
    pipe(go);
    pipe(rooted);
    pipe(ended);
    pid_t doomed = fork();
    if (doomed == 0) {
        read(go[0], &c, 1);
        _exit(0);
    }
    pid_t pid = fork();
    if (pid == 0) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d", doomed);
        SHOW("chroot a process's /proc dir", chroot(path));
        SHOW("  chdir /", chdir("/"));
        write(rooted[1], "r", 1);
        read(ended[0], &c, 1);
        /* what these answer is procfs's business (Linux: ESRCH, and
           getcwd ENOENT); the point is that they are answered */
        struct stat st;
        char buf[4096];
        stat("/status", &st);
        stat("/..", &st);
        syscall(SYS_getcwd, buf, sizeof buf);
        climb();
        printf("  lookups in it once it ended: answered\n");
        _exit(0);
    }
    read(rooted[0], &c, 1);
    write(go[1], "g", 1);
    wait_for(doomed);
    write(ended[1], "e", 1);
    wait_for(pid);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    bad_pointers();
    pid_t pid = fork();
    if (pid == 0) {
        escape(argc, argv);
        _exit(0);
    }
    wait_for(pid);
    root_in_proc();
    SHOW("still serving: getpid", getpid());
    return 0;
}
