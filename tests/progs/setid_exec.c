/* execve's credential rules, natively and in a guest (fs/exec.c,
 * security/commoncap.c): starts as root, makes set-ID copies of itself and
 * execs them in children that drop to uid 1000 first; each exec'd copy
 * (`setid_exec show LABEL`) prints its ids, capabilities, AT_SECURE,
 * dumpability, no_new_privs, /proc/self's owner and its status lines.
 * `setid_exec hostile`: what a user (1000) can and cannot do with set-ID
 * bits of its own (chmod u+s, then write, truncate, chown).
 * Needs a private mount namespace natively (it mounts proc and a nosuid tmpfs). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/fsuid.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define D "/setid"
/* the capabilities shown (a host root in a container may lack others):
 * CHOWN..LINUX_IMMUTABLE, SYS_ADMIN, MKNOD */
#define SHOWN 0x082003ffu

static const char *self;    /* this program's path, for exec */

static const char *err(int r) {
    if (r >= 0) return "ok";
    switch (errno) {
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case EINVAL: return "EINVAL";
    default: return strerror(errno);
    }
}

#define CHECK(what, call) printf("%-40s %s\n", what, err(call))

static void caps(const char *who) {
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    if (syscall(SYS_capget, &h, d) < 0) { printf("%s capget %s\n", who, err(-1)); return; }
    printf("%s caps eff=%08x prm=%08x\n", who, d[0].effective & SHOWN, d[0].permitted & SHOWN);
}

static void ids(const char *who) {
    uid_t r, e, s; gid_t gr, ge, gs;
    getresuid(&r, &e, &s);
    getresgid(&gr, &ge, &gs);
    printf("%s uid=%u/%u/%u fsuid=%d gid=%u/%u/%u fsgid=%d\n", who, r, e, s, setfsuid(-1),
           gr, ge, gs, setfsgid(-1));
}

static const char *owner(const char *path) {
    static char buf[2][32];
    static int n;
    struct stat st;
    char *b = buf[n++ % 2];
    if (stat(path, &st)) return err(-1);
    snprintf(b, 32, "%u:%u", st.st_uid, st.st_gid);
    return b;
}

/* /proc/PID is owned by the effective ids, its files by root when the
 * process is not dumpable */
static void flags(const char *who) {
    printf("%s dumpable=%d nnp=%d /proc/self=%s status=%s\n", who, prctl(PR_GET_DUMPABLE),
           prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0), owner(D "/proc/self"),
           owner(D "/proc/self/status"));
}

/* What an exec'd copy starts with. */
static void show(const char *label) {
    char line[256];
    ids(label);
    caps(label);
    flags(label);
    const char *lib = getenv("LD_LIBRARY_PATH");
    printf("%s secure=%lu LD_LIBRARY_PATH=%s\n", label, getauxval(AT_SECURE), lib ? lib : "(unset)");
    FILE *f = fopen(D "/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "Uid:", 4) || !strncmp(line, "Gid:", 4) || !strncmp(line, "NoNewPrivs:", 11))
            printf("%s %s", label, line);
    if (f) fclose(f);
}

static void copy(const char *from, const char *to, int mode, uid_t uid, gid_t gid) {
    char buf[65536];
    int in = open(from, O_RDONLY), out = open(to, O_CREAT | O_WRONLY | O_TRUNC, 0700);
    ssize_t n;
    while (in >= 0 && out >= 0 && (n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, n) != n) break;
    close(in);
    close(out);
    if (chown(to, uid, gid) || chmod(to, mode)) perror(to);
}

static void mode_of(const char *what, const char *path) {
    struct stat st;
    if (stat(path, &st)) { printf("%s %s\n", what, err(-1)); return; }
    printf("%s %04o %u:%u\n", what, st.st_mode & 07777, st.st_uid, st.st_gid);
}

static void user(void) {
    if (setgroups(0, NULL) || setresgid(1000, 1000, 1000) || setresuid(1000, 1000, 1000)) {
        perror("drop to 1000");
        _exit(1);
    }
}

static void run(const char *prog, const char *label) {
    fflush(stdout);
    execl(prog, prog, "show", label, (char *)NULL);
    printf("%s exec %s\n", label, err(-1));
}

/* Each case in a child of its own; the child's status ends its lines. */
static void child(const char *label, void (*body)(const char *)) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        body(label);
        fflush(stdout);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    printf("%s -- exit %d\n", label, WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
}

static void suid_root_by_user(const char *l) { user(); flags(l); run(D "/suid_root", l); }
static void sgid_by_user(const char *l) { user(); run(D "/sgid_100", l); }
static void sgid_noexec_by_user(const char *l) { user(); run(D "/sgid_noexec", l); }
static void nosuid_by_user(const char *l) { user(); run(D "/nosuid/suid_root", l); }
static void exec_only_by_user(const char *l) { user(); run(D "/exec_only", l); }
static void plain_by_root(const char *l) { run(D "/plain", l); }

static void nnp_by_user(const char *l) {
    user();
    CHECK("PR_SET_NO_NEW_PRIVS 0", prctl(PR_SET_NO_NEW_PRIVS, 0, 0, 0, 0));
    CHECK("PR_SET_NO_NEW_PRIVS 1 extra arg", prctl(PR_SET_NO_NEW_PRIVS, 1, 1, 0, 0));
    CHECK("PR_SET_NO_NEW_PRIVS 1", prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
    pid_t pid = fork();      /* inherited by a fork, kept by exec */
    if (pid == 0) {
        run(D "/suid_root", l);
        _exit(1);
    }
    waitpid(pid, NULL, 0);
    run(D "/sgid_100", l);
}

static void root_to_user_plain(const char *l) {
    flags("root before");
    CHECK("setresuid 1000 1000 1000", setresuid(1000, 1000, 1000));
    flags("after setresuid");       /* commit_creds: ids changed, not dumpable */
    run(D "/plain", l);
}

static void root_dropped_caps_plain(const char *l) {
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2] = {{0}};
    d[0].permitted = d[0].effective = 1u << CAP_CHOWN;
    CHECK("capset chown only", syscall(SYS_capset, &h, d));
    caps("capset");
    run(D "/plain", l);    /* root gets its bounding set back: new capabilities */
}

static void real_user_effective_root(const char *l) {
    CHECK("setresuid 1000 0 0", setresuid(1000, 0, 0));
    run(D "/plain", l);
}

static void nnp_real_user_effective_root(const char *l) {
    CHECK("setresuid 1000 0 0", setresuid(1000, 0, 0));
    CHECK("PR_SET_NO_NEW_PRIVS 1", prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
    run(D "/plain", l);    /* the effective uid goes back to the real one */
}

static void dumpable_prctl(const char *l) {
    CHECK("PR_SET_DUMPABLE 2", prctl(PR_SET_DUMPABLE, 2));
    CHECK("PR_SET_DUMPABLE 0", prctl(PR_SET_DUMPABLE, 0));
    flags(l);
    pid_t pid = fork();
    if (pid == 0) {
        flags("forked");
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    CHECK("PR_SET_DUMPABLE 1", prctl(PR_SET_DUMPABLE, 1));
    flags(l);
}

/* A user's own set-ID bits give it nothing; writing or giving the file
 * away takes them off. */
static void hostile(const char *l) {
    user();
    copy(self, D "/mine/own", 0755, 1000, 1000);
    CHECK("chmod 06755 own", chmod(D "/mine/own", 06755));
    mode_of("own", D "/mine/own");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        run(D "/mine/own", l);
        _exit(1);
    }
    waitpid(pid, NULL, 0);
    int fd = open(D "/mine/own", O_WRONLY | O_APPEND);
    CHECK("write 0 bytes", (int)write(fd, "", 0));
    mode_of("after write of 0", D "/mine/own");
    CHECK("write 1 byte", (int)write(fd, "", 1));
    mode_of("after write", D "/mine/own");
    CHECK("chmod 06755 own", chmod(D "/mine/own", 06755));
    CHECK("ftruncate", ftruncate(fd, 1 << 20));
    mode_of("after ftruncate", D "/mine/own");
    close(fd);
    CHECK("chmod 06755 own", chmod(D "/mine/own", 06755));
    CHECK("chown -1 -1", chown(D "/mine/own", -1, -1));
    mode_of("after chown -1 -1", D "/mine/own");
    CHECK("chmod 04755 own", chmod(D "/mine/own", 04755));
    CHECK("truncate", truncate(D "/mine/own", 1 << 20));
    mode_of("after truncate", D "/mine/own");
    CHECK("chown 0 own", chown(D "/mine/own", 0, -1));
    CHECK("write to suid_root", open(D "/suid_root", O_WRONLY));
    CHECK("chmod u+s plain (root's)", chmod(D "/plain", 04755));
    mode_of("suid_root", D "/suid_root");
}

/* Root writing a set-ID file keeps its bits (CAP_FSETID); a chown drops them. */
static void root_writes(const char *l) {
    copy(self, D "/rootfile", 06755, 0, 100);
    int fd = open(D "/rootfile", O_WRONLY | O_APPEND);
    CHECK("root write 1 byte", (int)write(fd, "", 1));
    close(fd);
    mode_of(l, D "/rootfile");
    CHECK("root chown 0 0", chown(D "/rootfile", 0, 0));
    mode_of("after root chown", D "/rootfile");
    unlink(D "/rootfile");
}

static void cleanup(void) {
    const char *files[] = {"suid_root", "sgid_100", "sgid_noexec", "plain", "exec_only",
                           "mine/own", "rootfile", NULL};
    umount2(D "/nosuid", 0);
    umount2(D "/proc", 0);
    for (int i = 0; files[i]; i++) {
        char p[128];
        snprintf(p, sizeof p, D "/%s", files[i]);
        unlink(p);
    }
    rmdir(D "/mine");
    rmdir(D "/nosuid");
    rmdir(D "/proc");
    rmdir(D);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 2 && !strcmp(argv[1], "show")) {
        show(argv[2]);
        return 0;
    }
    self = argv[0];
    setenv("LD_LIBRARY_PATH", "/nowhere", 1);   /* glibc drops it from a secure start */
    cleanup();
    setgroups(0, NULL);
    if (mkdir(D, 0755) || mkdir(D "/proc", 0755) || mount("proc", D "/proc", "proc", 0, "")
            || mkdir(D "/nosuid", 0755)
            || mount("tmpfs", D "/nosuid", "tmpfs", MS_NOSUID, "mode=755")) {
        perror("setup");
        return 1;
    }
    copy(self, D "/suid_root", 04755, 0, 0);
    copy(self, D "/sgid_100", 02755, 0, 100);
    copy(self, D "/sgid_noexec", 02745, 0, 100);
    copy(self, D "/plain", 0755, 0, 0);
    copy(self, D "/exec_only", 0711, 0, 0);
    copy(self, D "/nosuid/suid_root", 04755, 0, 0);
    if (argc > 1 && !strcmp(argv[1], "hostile")) {
        mkdir(D "/mine", 0755);
        if (chown(D "/mine", 1000, 1000)) perror("chown mine");
        child("hostile", hostile);
        child("root write", root_writes);
    } else {
        flags("root");
        child("suid_root by 1000", suid_root_by_user);
        child("sgid_100 by 1000", sgid_by_user);
        child("sgid without g+x by 1000", sgid_noexec_by_user);
        child("nosuid suid_root by 1000", nosuid_by_user);
        child("no_new_privs by 1000", nnp_by_user);
        child("exec-only file by 1000", exec_only_by_user);
        child("plain by root", plain_by_root);
        child("plain by root after setresuid 1000", root_to_user_plain);
        child("plain by root after capset", root_dropped_caps_plain);
        child("plain by 1000 with euid 0", real_user_effective_root);
        child("plain by 1000 with euid 0 and nnp", nnp_real_user_effective_root);
        child("dumpable", dumpable_prctl);
    }
    cleanup();
    printf("done\n");
    return 0;
}
