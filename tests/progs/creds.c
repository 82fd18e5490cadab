/* Credentials, natively and in a guest: starts as root, makes files and a
 * sticky directory, then in one child after another drops to users (1000,
 * in group 100) and prints what each may and may not do, one line per check.
 * `creds threads`: setuid from one thread changes every thread (glibc's
 * SIGSETXID broadcast), a raw setresuid only the caller.
 * `creds show`: what an exec'ed (set-user-ID) copy starts with.
 * Needs a private mount namespace natively (it mounts proc and a nosuid tmpfs). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/fsuid.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define D "/credtest"
/* the capabilities this prints (the host's root may lack others, e.g.
 * CAP_SYS_RESOURCE in a container): CHOWN..LINUX_IMMUTABLE, SYS_ADMIN, MKNOD */
#define SHOWN 0x082003ffu

static const char *err(int r) {
    if (r >= 0) return "ok";
    switch (errno) {
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case EINVAL: return "EINVAL";
    case ENOENT: return "ENOENT";
    case ESRCH: return "ESRCH";
    case EEXIST: return "EEXIST";
    default: return strerror(errno);
    }
}

#define CHECK(what, call) printf("%-44s %s\n", what, err(call))

static void caps(const char *who) {
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    if (syscall(SYS_capget, &h, d) < 0) { printf("%s capget %s\n", who, err(-1)); return; }
    printf("%s caps eff=%08x prm=%08x inh=%08x keep=%d bnd_kill=%d\n", who,
           d[0].effective & SHOWN, d[0].permitted & SHOWN, d[0].inheritable & SHOWN,
           prctl(PR_GET_KEEPCAPS), prctl(PR_CAPBSET_READ, CAP_KILL));
}

static void ids(const char *who) {
    uid_t r, e, s; gid_t gr, ge, gs, g[8];
    getresuid(&r, &e, &s);
    getresgid(&gr, &ge, &gs);
    int n = getgroups(8, g);
    printf("%s uid=%u/%u/%u fsuid=%d gid=%u/%u/%u fsgid=%d groups=", who, r, e, s,
           setfsuid(-1), gr, ge, gs, setfsgid(-1));
    for (int i = 0; i < n; i++) printf("%s%u", i ? "," : "", g[i]);
    printf("\n");
}

/* The Uid/Gid/Groups lines of a task's status, and its CapEff within SHOWN. */
static void status(const char *who, const char *path) {
    char line[256];
    FILE *f = fopen(path, "r");
    if (!f) { printf("%s status %s\n", who, err(-1)); return; }
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "Uid:", 4) || !strncmp(line, "Gid:", 4) || !strncmp(line, "Groups:", 7))
            printf("%s %s", who, line);
        if (!strncmp(line, "CapEff:", 7) || !strncmp(line, "CapPrm:", 7))
            printf("%s %.7s %08llx\n", who, line, strtoull(line + 8, NULL, 16) & SHOWN);
    }
    fclose(f);
}

static void mkfile(const char *path, int mode, uid_t uid, gid_t gid) {
    int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
    if (fd < 0 || write(fd, "data\n", 5) != 5) { perror(path); exit(1); }
    close(fd);
    if (chown(path, uid, gid) || chmod(path, mode)) { perror(path); exit(1); }
}

static void copy(const char *from, const char *to, int mode, uid_t uid, gid_t gid) {
    char buf[65536];
    int in = open(from, O_RDONLY), out = open(to, O_CREAT | O_WRONLY | O_TRUNC, 0700);
    ssize_t n;
    if (in < 0 || out < 0) { perror(to); exit(1); }
    while ((n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, n) != n) { perror(to); exit(1); }
    close(in);
    close(out);
    if (chown(to, uid, gid) || chmod(to, mode)) { perror(to); exit(1); }
}

static void mode_of(const char *what, const char *path) {
    struct stat st;
    if (stat(path, &st)) { printf("%-44s %s\n", what, err(-1)); return; }
    printf("%-44s %04o %u:%u\n", what, st.st_mode & 07777, st.st_uid, st.st_gid);
}

static int opens(const char *path, int flags) {
    int fd = open(path, flags);
    if (fd >= 0) close(fd);
    return fd;
}

static void run(const char *prog) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        execl(prog, prog, "show", (char *)NULL);
        printf("exec %s %s\n", prog, err(-1));
        _exit(1);
    }
    waitpid(pid, NULL, 0);
}

/* A process of uid that pauses; returns once it has that uid. */
static pid_t sleeper(uid_t uid) {
    int fds[2];
    char c;
    if (pipe(fds)) exit(1);
    pid_t pid = fork();
    if (pid == 0) {
        if (uid && setresuid(uid, uid, uid)) _exit(1);
        if (write(fds[1], "x", 1) != 1) _exit(1);
        for (;;) pause();
    }
    if (read(fds[0], &c, 1) != 1) exit(1);
    close(fds[0]);
    close(fds[1]);
    return pid;
}

static void drop(void) {
    gid_t g = 100;
    CHECK("setgroups [100]", setgroups(1, &g));
    CHECK("setresgid 1000 1000 1000", setresgid(1000, 1000, 1000));
    CHECK("setresuid 1000 1000 1000", setresuid(1000, 1000, 1000));
}

static pid_t root_pid, user_pid, other_pid;

static void unprivileged(void) {
    drop();
    ids("user");
    caps("user");
    status("user", D "/proc/self/status");
    CHECK("open root600 r", opens(D "/root600", O_RDONLY));
    CHECK("open root644 r", opens(D "/root644", O_RDONLY));
    CHECK("open root644 w", opens(D "/root644", O_WRONLY));
    CHECK("open grp640 r (group 100)", opens(D "/grp640", O_RDONLY));
    CHECK("open grp604 r (group gets no read)", opens(D "/grp604", O_RDONLY));
    CHECK("open user600 r", opens(D "/user600", O_RDONLY));
    CHECK("access root600 r", access(D "/root600", R_OK));
    CHECK("access grp640 r", access(D "/grp640", R_OK));
    CHECK("open private/x (dir 0700)", opens(D "/private/x", O_RDONLY));
    CHECK("mkdir in root's 0755 dir", mkdir(D "/new", 0755));
    CHECK("chmod root644", chmod(D "/root644", 0666));
    CHECK("chmod user600 0640", chmod(D "/user600", 0640));
    CHECK("chmod user600 02750 (not in group 0)", chmod(D "/user600", 02750));
    mode_of("mode user600", D "/user600");
    CHECK("chown user600 to 1001", chown(D "/user600", 1001, -1));
    CHECK("chown user600 to 1000 (its owner)", chown(D "/user600", 1000, -1));
    CHECK("chown root644 to 0 (not its owner)", chown(D "/root644", 0, -1));
    CHECK("chgrp user600 to 100 (a member)", chown(D "/user600", -1, 100));
    CHECK("chgrp user600 to 0 (not a member)", chown(D "/user600", -1, 0));
    CHECK("chmod user600 02750 (in group 100)", chmod(D "/user600", 02750));
    mode_of("mode user600", D "/user600");
    CHECK("chgrp user600 to 1000 (drops setgid)", chown(D "/user600", -1, 1000));
    mode_of("mode user600", D "/user600");
    CHECK("chown -1 -1 root644", chown(D "/root644", -1, -1));
    CHECK("utimes root644 (not writable)", utimes(D "/root644", NULL));
    CHECK("utimes sticky/root666 (writable)", utimes(D "/sticky/root666", NULL));
    CHECK("sticky: open root666 w", opens(D "/sticky/root666", O_WRONLY));
    CHECK("sticky: unlink root666", unlink(D "/sticky/root666"));
    CHECK("sticky: unlink other666 (uid 1001)", unlink(D "/sticky/other666"));
    CHECK("sticky: rename other666", rename(D "/sticky/other666", D "/sticky/mine"));
    CHECK("sticky: rmdir otherdir", rmdir(D "/sticky/otherdir"));
    CHECK("sticky: unlink user644", unlink(D "/sticky/user644"));
    CHECK("sticky: create new", close(open(D "/sticky/new", O_CREAT | O_EXCL | O_WRONLY, 0644)));
    mode_of("mode sticky/new", D "/sticky/new");
    CHECK("sticky: unlink new", unlink(D "/sticky/new"));
    CHECK("mknod char device", mknod(D "/sticky/null", S_IFCHR | 0666, makedev(1, 3)));
    CHECK("mknod fifo", mknod(D "/sticky/fifo", S_IFIFO | 0666, 0));
    CHECK("unlink fifo", unlink(D "/sticky/fifo"));
    CHECK("kill root sleeper 0", kill(root_pid, 0));
    CHECK("kill root sleeper SIGTERM", kill(root_pid, SIGTERM));
    CHECK("kill root sleeper SIGCONT (same session)", kill(root_pid, SIGCONT));
    CHECK("kill uid-1000 sleeper 0", kill(user_pid, 0));
    CHECK("kill uid-1001 sleeper 0", kill(other_pid, 0));
    CHECK("setuid 0", setuid(0));
    CHECK("seteuid 0", seteuid(0));
    CHECK("setresuid -1 -1 0", setresuid(-1, -1, 0));
    CHECK("setgid 0", setgid(0));
    CHECK("setgroups []", setgroups(0, NULL));
    CHECK("setuid -1", setuid(-1));
    int old = setfsuid(0);
    printf("setfsuid 0 -> %d, then %d\n", old, setfsuid(-1));
    CHECK("mount tmpfs", mount("tmpfs", D "/sticky", "tmpfs", 0, ""));
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2] = {{1 << CAP_KILL, 1 << CAP_KILL, 0}, {0, 0, 0}};
    CHECK("capset kill", syscall(SYS_capset, &h, d));
    CHECK("PR_CAPBSET_DROP kill", prctl(PR_CAPBSET_DROP, CAP_KILL));
    CHECK("PR_SET_KEEPCAPS 1", prctl(PR_SET_KEEPCAPS, 1));
    run(D "/suid_root");
    run(D "/sgid_100");
    run(D "/suid_1001");
    run(D "/nosuid/suid_root");
}

/* Saved ids: root parks its uid in the saved slot and comes back. */
static void saved_ids(void) {
    CHECK("seteuid 1000", seteuid(1000));
    ids("euid 1000");
    caps("euid 1000");
    CHECK("open root600 r", opens(D "/root600", O_RDONLY));
    CHECK("kill uid-1001 sleeper 0", kill(other_pid, 0));
    CHECK("seteuid 0", seteuid(0));
    caps("euid 0");
    CHECK("setresuid 1000 1000 0", setresuid(1000, 1000, 0));
    ids("saved 0");
    caps("saved 0");
    CHECK("access root600 r (real uid 1000)", access(D "/root600", R_OK));
    CHECK("setresuid -1 0 -1", setresuid(-1, 0, -1));
    ids("back");
    caps("back");
    CHECK("access root600 r (real uid 1000)", access(D "/root600", R_OK));
    CHECK("faccessat root600 r AT_EACCESS", faccessat(AT_FDCWD, D "/root600", R_OK, AT_EACCESS));
    CHECK("setfsuid 1000 (returns 0)", setfsuid(1000));
    ids("fsuid 1000");
    caps("fsuid 1000");
    CHECK("open root600 r", opens(D "/root600", O_RDONLY));
    CHECK("kill uid-1001 sleeper 0 (euid 0)", kill(other_pid, 0));
    setfsuid(0);
    caps("fsuid 0");
    CHECK("setreuid 1001 1002", setreuid(1001, 1002));
    ids("setreuid");
    CHECK("setreuid -1 1001", setreuid(-1, 1001));
    ids("setreuid");
    CHECK("setreuid -1 1002", setreuid(-1, 1002));
    ids("setreuid");
    CHECK("setreuid 1002 -1", setreuid(1002, -1));
    ids("setreuid");
    CHECK("setuid 1001", setuid(1001));
    CHECK("setreuid -1 1000", setreuid(-1, 1000));
    CHECK("setregid 100 200", setregid(100, 200));
    CHECK("setgid 5", setgid(5));
    ids("end");
    caps("end");
}

/* Keep-caps: a root that keeps its permitted set across the drop. */
static void keepcaps(void) {
    CHECK("PR_SET_KEEPCAPS 1", prctl(PR_SET_KEEPCAPS, 1));
    CHECK("PR_SET_KEEPCAPS 2", prctl(PR_SET_KEEPCAPS, 2));
    drop();
    ids("keepcaps");
    caps("keepcaps");
    CHECK("open root600 r", opens(D "/root600", O_RDONLY));
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct v[2];
    syscall(SYS_capget, &h, v);
    v[0].effective = 1u << CAP_DAC_OVERRIDE;
    CHECK("capset eff=DAC_OVERRIDE", syscall(SYS_capset, &h, v));
    caps("raised");
    CHECK("open root600 r", opens(D "/root600", O_RDONLY));
    CHECK("chown user600 to 1001 (no CAP_CHOWN)", chown(D "/user600", 1001, -1));
    v[0].effective |= 1u << CAP_CHOWN;
    CHECK("capset eff=+CHOWN", syscall(SYS_capset, &h, v));
    CHECK("chown user600 to 1001", chown(D "/user600", 1001, -1));
    CHECK("chown user600 back to 1000", chown(D "/user600", 1000, -1));
    v[0].permitted = 1u << CAP_KILL;
    v[0].effective = 1u << CAP_KILL;
    CHECK("capset prm=KILL", syscall(SYS_capset, &h, v));
    CHECK("kill root sleeper 0 (CAP_KILL)", kill(root_pid, 0));
    v[0].permitted = v[0].effective = (1u << CAP_KILL) | (1u << CAP_CHOWN);
    CHECK("capset prm=+CHOWN (regain)", syscall(SYS_capset, &h, v));
    caps("reduced");
    run(D "/show");
}

/* Capabilities as root: the bounding set, capset and exec. */
static void root_caps(void) {
    struct __user_cap_header_struct h = {0, 0};
    const char *r = err(syscall(SYS_capget, &h, NULL));
    printf("capget bad version, no data: %s, version %08x\n", r, h.version);
    h.pid = root_pid;
    h.version = _LINUX_CAPABILITY_VERSION_3;
    struct __user_cap_data_struct v[2];
    CHECK("capget of another process", syscall(SYS_capget, &h, v));
    printf("root sleeper eff=%08x\n", v[0].effective & SHOWN);
    h.pid = 0;
    CHECK("PR_CAPBSET_DROP kill", prctl(PR_CAPBSET_DROP, CAP_KILL));
    CHECK("PR_CAPBSET_READ 99", prctl(PR_CAPBSET_READ, 99));
    caps("bset");
    syscall(SYS_capget, &h, v);
    v[0].effective &= ~(1u << CAP_DAC_OVERRIDE | 1u << CAP_DAC_READ_SEARCH);
    CHECK("capset eff-=DAC_OVERRIDE,READ_SEARCH", syscall(SYS_capset, &h, v));
    CHECK("open user600 r (root, no DAC caps)", opens(D "/user600", O_RDONLY));
    CHECK("open root600 r (owner)", opens(D "/root600", O_RDONLY));
    v[0].permitted &= ~(1u << CAP_SETUID);
    v[0].effective &= ~(1u << CAP_SETUID);
    CHECK("capset prm-=SETUID", syscall(SYS_capset, &h, v));
    CHECK("setuid 1000 (no CAP_SETUID)", setuid(1000));
    caps("dropped");
    run(D "/show");     /* root gets its bounding set back at exec */
}

/* Supplementary groups, fs gids and securebits. */
static void groups_securebits(void) {
    gid_t g[3] = {300, 100, 200}, bad = -1, out[3];
    CHECK("setgroups [300,100,200]", setgroups(3, g));
    ids("groups sorted");
    CHECK("getgroups 2 of 3", getgroups(2, out));
    CHECK("getgroups -1", syscall(SYS_getgroups, -1, out));
    CHECK("setgroups [-1]", setgroups(1, &bad));
    printf("getgroups 0 -> %d\n", getgroups(0, NULL));
    CHECK("setresgid 100 200 300", setresgid(100, 200, 300));
    ids("gids");
    int old = setfsgid(300);
    printf("setfsgid 300 -> %d, then %d\n", old, setfsgid(-1));
    CHECK("setegid 100", setegid(100));
    ids("gids");
    printf("securebits %d\n", prctl(PR_GET_SECUREBITS));
    CHECK("PR_SET_SECUREBITS keep-caps, locked", prctl(PR_SET_SECUREBITS, 0x30));
    CHECK("PR_SET_KEEPCAPS 0 (locked)", prctl(PR_SET_KEEPCAPS, 0));
    CHECK("PR_SET_SECUREBITS unlock", prctl(PR_SET_SECUREBITS, 0x10));
    CHECK("PR_SET_SECUREBITS +no-setuid-fixup +noroot", prctl(PR_SET_SECUREBITS, 0x35));
    int bits = prctl(PR_GET_SECUREBITS);
    printf("securebits %d keep %d\n", bits, prctl(PR_GET_KEEPCAPS));
    CHECK("setresuid 1000 1000 1000", setresuid(1000, 1000, 1000));
    caps("no fixup");
    CHECK("open root600 r (caps kept)", opens(D "/root600", O_RDONLY));
    CHECK("setresuid 0 0 0", setresuid(0, 0, 0));
    run(D "/show");     /* noroot: root gets no capabilities at exec */
}

static void show(void) {
    ids("exec");
    printf("exec secure=%lu\n", getauxval(AT_SECURE));
    caps("exec");
}

/* --- threads --------------------------------------------------------------- */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int go, ready, pipefd[2];
static volatile int spin_go;
static char lines[4][160];

static void report(int i, const char *how) {
    uid_t r, e, s;
    syscall(SYS_getresuid, &r, &e, &s);
    char path[64], line[128] = "";
    snprintf(path, sizeof path, D "/proc/self/task/%ld/status", (long)syscall(SYS_gettid));
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f) && strncmp(line, "Uid:", 4)) {}
    if (f) fclose(f);
    line[strcspn(line, "\n")] = 0;
    snprintf(lines[i], sizeof lines[i], "thread %d (%s) uid=%u/%u/%u %s", i, how, r, e, s, line);
}

static void *waiter(void *arg) {     /* in a futex wait on the host */
    pthread_mutex_lock(&lock);
    ready++;
    pthread_cond_broadcast(&cond);
    while (!go) pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    report(1, "condvar");
    return arg;
}

static void *reader(void *arg) {     /* in a read the kernel serves */
    char c;
    pthread_mutex_lock(&lock);
    ready++;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
    if (read(pipefd[0], &c, 1) != 1) return arg;
    report(2, "read");
    return arg;
}

static void *spinner(void *arg) {    /* running, never calling the kernel */
    pthread_mutex_lock(&lock);
    ready++;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
    while (!spin_go) {}
    report(3, "spin");
    return arg;
}

static void *raw_setuid(void *arg) {
    CHECK("raw setresuid 1001 in a thread", syscall(SYS_setresuid, 1001, 1001, 1001));
    report(0, "raw");
    return arg;
}

static void threads(void) {
    pthread_t th[3], raw;
    void *(*fn[3])(void *) = {waiter, reader, spinner};
    pthread_create(&raw, NULL, raw_setuid, NULL);
    pthread_join(raw, NULL);
    printf("%s\n", lines[0]);
    ids("main");
    if (pipe(pipefd)) exit(1);
    for (int i = 0; i < 3; i++) pthread_create(&th[i], NULL, fn[i], NULL);
    pthread_mutex_lock(&lock);
    while (ready < 3) pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    usleep(20000);                   /* let the reader reach its read */
    drop();
    ids("main");
    pthread_mutex_lock(&lock);
    go = 1;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
    if (write(pipefd[1], "x", 1) != 1) exit(1);
    spin_go = 1;
    for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
    for (int i = 1; i < 4; i++) printf("%s\n", lines[i]);
}

static void child(void (*fn)(void)) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        fn();
        fflush(stdout);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    printf("-- exit %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
}

static void cleanup(void) {
    umount2(D "/nosuid", 0);
    umount2(D "/proc", 0);
    const char *files[] = {"root600", "root644", "grp640", "grp604", "user600", "private/x",
                           "sticky/root666", "sticky/other666", "sticky/user644", "sticky/null",
                           "suid_root", "sgid_100", "suid_1001", "show", NULL};
    for (int i = 0; files[i]; i++) {
        char p[128];
        snprintf(p, sizeof p, D "/%s", files[i]);
        unlink(p);
    }
    rmdir(D "/sticky/otherdir");
    rmdir(D "/sticky");
    rmdir(D "/private");
    rmdir(D "/nosuid");
    rmdir(D "/proc");
    rmdir(D);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1 && !strcmp(argv[1], "show")) {
        show();
        return 0;
    }
    cleanup();
    setgroups(0, NULL);     /* the host's root may have some; a guest's init has none */
    if (mkdir(D, 0755) || mkdir(D "/proc", 0755) || mount("proc", D "/proc", "proc", 0, "")) {
        perror("setup");
        return 1;
    }
    ids("root");
    caps("root");
    status("root", D "/proc/self/status");
    if (argc > 1 && !strcmp(argv[1], "threads")) {
        child(threads);
        cleanup();
        return 0;
    }
    mkfile(D "/root600", 0600, 0, 0);
    mkfile(D "/root644", 0644, 0, 0);
    mkfile(D "/grp640", 0640, 0, 100);
    mkfile(D "/grp604", 0604, 0, 100);
    mkfile(D "/user600", 0600, 1000, 0);
    mkdir(D "/private", 0700);
    mkfile(D "/private/x", 0644, 0, 0);
    mkdir(D "/sticky", 0);
    chmod(D "/sticky", 01777);
    mkfile(D "/sticky/root666", 0666, 0, 0);
    mkfile(D "/sticky/other666", 0666, 1001, 1001);
    mkfile(D "/sticky/user644", 0644, 1000, 1000);
    mkdir(D "/sticky/otherdir", 0755);
    chown(D "/sticky/otherdir", 1001, 1001);
    copy(argv[0], D "/suid_root", 04755, 0, 0);
    copy(argv[0], D "/sgid_100", 02755, 0, 100);
    copy(argv[0], D "/suid_1001", 04755, 1001, 0);
    copy(argv[0], D "/show", 0755, 0, 0);
    mkdir(D "/nosuid", 0755);
    if (mount("tmpfs", D "/nosuid", "tmpfs", MS_NOSUID, "")) {
        perror("mount nosuid");
        return 1;
    }
    copy(argv[0], D "/nosuid/suid_root", 04755, 0, 0);
    mode_of("mode suid_root", D "/suid_root");
    mode_of("mode sticky", D "/sticky");
    root_pid = sleeper(0);
    user_pid = sleeper(1000);
    other_pid = sleeper(1001);
    child(unprivileged);
    child(saved_ids);
    child(keepcaps);
    child(root_caps);
    child(groups_securebits);
    mode_of("mode sticky/root666 (kept)", D "/sticky/root666");
    mode_of("mode sticky/user644 (gone)", D "/sticky/user644");
    kill(root_pid, SIGKILL);
    kill(user_pid, SIGKILL);
    kill(other_pid, SIGKILL);
    while (wait(NULL) > 0) {}
    unlink(D "/nosuid/suid_root");
    cleanup();
    printf("done\n");
    return 0;
}
