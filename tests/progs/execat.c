/* execveat: relative to a directory fd, and of an fd itself (fexecve). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    char *argv1[] = {"echo", "relative to a dir fd", NULL};
    char *argv2[] = {"echo", "via fexecve", NULL};
    char *envp[] = {NULL};
    int st;
    if (fork() == 0) {
        int dir = open("/bin", O_RDONLY | O_DIRECTORY);
        syscall(SYS_execveat, dir, "busybox", argv1, envp, 0);
        perror("execveat");
        _exit(1);
    }
    wait(&st);
    if (fork() == 0) {
        int fd = open("/bin/busybox", O_RDONLY);
        fexecve(fd, argv2, envp);
        perror("fexecve");
        _exit(1);
    }
    wait(&st);
    printf("bad flags: %ld\n", syscall(SYS_execveat, AT_FDCWD, "/bin/true", argv1, envp, 0x4));
    return 0;
}
