/* Prints what a process learns from exec and the kernel: compared natively
   and in a guest by tests/test_guest.py. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/auxv.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv) {
    printf("argc=%d\n", argc);
    for (int i = 0; i < argc; i++)
        printf("argv[%d]=%s\n", i, argv[i]);
    for (char **e = environ; *e; e++)
        printf("env=%s\n", *e);
    printf("pagesz=%lu\n", getauxval(AT_PAGESZ));
    printf("random=%s\n", getauxval(AT_RANDOM) ? "set" : "unset");
    printf("pid=%d\n", (int)getpid());
    if (argc > 1) {
        FILE *f = fopen(argv[1], "r");
        if (!f) { perror(argv[1]); return 2; }
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, f)) > 0)
            fwrite(buf, 1, n, stdout);
        fclose(f);
    }
    return 7;
}
