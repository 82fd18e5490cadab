/* For the sec_* programs: run one try in a child and print what it came
   to, the same way natively and in a guest. */
#ifndef SEC_TRY_H
#define SEC_TRY_H
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Run run_it in a child with its stdout on a pipe and print what came of
   it: the errno it left if it returned (an exec failed), or how the child
   ended and what it printed. */
static void try(const char *name, void (*run_it)(void *), void *arg) {
    int err[2], out[2];
    pipe2(err, O_CLOEXEC);
    pipe(out);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(out[1], 1);
        close(out[0]);
        close(out[1]);
        run_it(arg);
        int e = errno;
        write(err[1], &e, sizeof e);
        _exit(127);
    }
    close(err[1]);
    close(out[1]);
    int e = 0;
    ssize_t got = read(err[0], &e, sizeof e);
    char buf[4096];
    ssize_t n, len = 0;
    while ((n = read(out[0], buf + len, sizeof buf - 1 - len)) > 0)
        len += n;
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
        len--;
    buf[len] = 0;
    int st;
    waitpid(pid, &st, 0);
    close(err[0]);
    close(out[0]);
    if (got == sizeof e)
        printf("%s: %s\n", name, strerrorname_np(e));
    else if (WIFSIGNALED(st))
        printf("%s: signal %d%s%s\n", name, WTERMSIG(st), len ? " " : "", buf);
    else
        printf("%s: exit %d%s%s\n", name, WEXITSTATUS(st), len ? " " : "", buf);
    fflush(stdout);
}

/* A process's state as /proc/PID/stat says (fd open on it): 'S' while a
   call of its waits in the kernel (Linux shows a caller inside execve as
   running).  The bystanders of sec_exec and sec_dirwalk watch for it. */
static inline char state_of(int fd) {
    char buf[512];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return '?';
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    return p && p[1] ? p[2] : '?';
}

#endif
