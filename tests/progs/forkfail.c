/* Fork until the host refuses (the test puts this process in a cgroup
   whose pids.max is reached), then check the refused fork left no child,
   then fork until it works again (the test lifts the limit).
   Prints: ready / fork failed: ERRNO / wait: ECHILD / fork works again. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int try_fork(void) {
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    if (pid > 0 && waitpid(pid, NULL, 0) != pid)
        return -2;
    return pid < 0 ? errno : 0;
}

int main(void) {
    printf("ready\n");
    fflush(stdout);
    int err = 0;
    for (int i = 0; i < 3000000 && !(err = try_fork()); i++)
        usleep(1000);
    printf("fork failed: %s\n", err == EAGAIN ? "EAGAIN" : strerror(err));
    fflush(stdout);
    if (wait(NULL) == -1 && errno == ECHILD)
        printf("wait: ECHILD\n");
    fflush(stdout);
    for (int i = 0; i < 3000000 && try_fork(); i++)
        usleep(1000);
    printf("fork works again\n");
    return 0;
}
