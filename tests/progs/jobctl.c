/* Job control: a child stopped by SIGSTOP and SIGTSTP, seen by waitpid
   (WUNTRACED) and waitid, continued (WCONTINUED), then killed. */
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

static void show(const char *what, int st) {
    if (WIFSTOPPED(st)) printf("%s: stopped by %d\n", what, WSTOPSIG(st));
    else if (WIFCONTINUED(st)) printf("%s: continued\n", what);
    else if (WIFSIGNALED(st)) printf("%s: killed by %d\n", what, WTERMSIG(st));
    else printf("%s: exited %d\n", what, WEXITSTATUS(st));
}

/* SIGTSTP to a process group with no parent outside it in the session (an
   orphaned group: here, a new session) is discarded; SIGSTOP is not. */
static int orphaned_group(void) {
    pid_t c = fork();
    if (c == 0) {
        setsid();
        raise(SIGTSTP);               /* discarded: goes on */
        printf("orphaned: TSTP discarded\n");
        raise(SIGSTOP);               /* stops */
        _exit(3);
    }
    int st;
    waitpid(c, &st, WUNTRACED);
    show("orphaned: then", st);
    kill(c, SIGCONT);
    waitpid(c, &st, 0);
    show("orphaned: end", st);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc > 1) return orphaned_group();
    int p[2];
    pipe(p);
    pid_t c = fork();
    if (c == 0) {                      /* counts while it runs */
        close(p[0]);
        /* its own group, whose parent is in another group of the session:
           not orphaned, so the host does not discard SIGTSTP wherever
           the test runs */
        setpgid(0, 0);
        raise(SIGTSTP);               /* stops itself first */
        for (unsigned long i = 0;; i++)
            if (i % 100000000 == 0) write(p[1], "", 0);
    }
    close(p[1]);
    int st;
    waitpid(c, &st, WUNTRACED); show("self", st);
    kill(c, SIGCONT);
    waitpid(c, &st, WCONTINUED); show("cont", st);
    kill(c, SIGSTOP);
    waitpid(c, &st, WUNTRACED); show("sigstop", st);
    printf("nohang while stopped: %d\n", waitpid(c, &st, WNOHANG | WUNTRACED));
    siginfo_t si = {0};
    kill(c, SIGCONT);
    waitid(P_PID, c, &si, WCONTINUED);
    printf("waitid: code=%d status=%d pid_ok=%d\n", si.si_code, si.si_status, si.si_pid == c);
    kill(c, SIGTERM);
    waitpid(c, &st, 0); show("term", st);
    return 0;
}
