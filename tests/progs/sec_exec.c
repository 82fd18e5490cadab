/* execve from a hostile caller: argument vectors at and past Linux's limits,
   bad pointers, crafted files.  Each try runs in a child; what it came to is
   printed the same way natively and in a guest:
     sec_exec args          the argument-vector cases
     sec_exec run PATH...   exec each PATH (argv {PATH}, no environment)
     sec_exec bystander     12,000 pointers to one 128 KiB string, tried
                            while a child counts its getppid calls and
                            reads the caller's state from /proc (guest only:
                            it shows the kernel serving others meanwhile)
   With no mode (as the target of a successful exec) it prints its arguments. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sec_try.h"

#define SELF "/bin/sec_exec"
#define MAX_ARG_STRLEN (32 * 4096)
#define ARG_LIMIT (2 << 20)            /* an 8 MiB stack rlimit / 4 */
#define PAGE 4096

static char *envp_none[] = {NULL};

struct vec { const char *path; char **argv, **envp; };

static void exec_vec(void *a) {
    struct vec *v = a;
    execve(v->path, v->argv, v->envp);
}

static char *string(size_t len, char c) {       /* len bytes and a NUL */
    char *s = malloc(len + 1);
    memset(s, c, len);
    s[len] = 0;
    return s;
}

static char **repeat(size_t n, char *s) {       /* n pointers to s, then NULL */
    char **v = malloc((n + 1) * sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = s;
    v[n] = NULL;
    return v;
}

/* argv {SELF, "ok", s1 .. sk} whose strings (with the file name) and
   pointers take exactly ARG_LIMIT + over bytes. */
static char **at_limit(size_t over) {
    size_t fixed = 2 * sizeof SELF + 3, k = 1;
    while (ARG_LIMIT + over - fixed - (2 + k) * sizeof(char *) > k * MAX_ARG_STRLEN)
        k++;
    size_t room = ARG_LIMIT + over - fixed - (2 + k) * sizeof(char *);
    char **v = malloc((k + 3) * sizeof *v);
    v[0] = SELF;
    v[1] = "ok";
    char *full = string(MAX_ARG_STRLEN - 1, 'a');
    for (size_t i = 0; i + 1 < k; i++)
        v[2 + i] = full;
    v[1 + k] = string(room - (k - 1) * MAX_ARG_STRLEN - 1, 'b');
    v[2 + k] = NULL;
    return v;
}

/* n pointers (to nothing: only counted) filling whole pages, and an
   unmapped page after them; with_null: the last one is NULL. */
static char **pointer_pages(size_t n, int with_null) {
    size_t bytes = n * sizeof(char *);
    char *m = mmap(NULL, bytes + PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(m + bytes, PAGE);
    memset(m, 0x41, bytes);
    char **v = (char **)m;
    if (with_null)
        v[n - 1] = NULL;
    return v;
}

static void args(void) {
    char *big = string(MAX_ARG_STRLEN - 1, 'x');
    char *ok[] = {SELF, "ok", NULL};
    struct {
        const char *name;
        struct vec v;
    } cases[] = {
        {"the longest string", {SELF, (char *[]){SELF, "ok", big, NULL}, envp_none}},
        {"a string past MAX_ARG_STRLEN",
         {SELF, (char *[]){SELF, "ok", string(MAX_ARG_STRLEN, 'x'), NULL}, envp_none}},
        {"strings and pointers at the limit", {SELF, at_limit(0), envp_none}},
        {"one byte past the limit", {SELF, at_limit(1), envp_none}},
        {"one byte past the limit, in the environment", {SELF, ok, at_limit(1)}},
        {"no argv", {SELF, NULL, envp_none}},
        {"a bad string pointer", {SELF, (char *[]){SELF, (char *)16, NULL}, envp_none}},
        {"a bad argv array", {SELF, (char **)16, envp_none}},
        {"12000 pointers to 128 KiB", {SELF, repeat(12000, big), envp_none}},
        {"300000 pointers to an empty string", {SELF, repeat(300000, ""), envp_none}},
        {"a bad argument, too big an environment",
         {SELF, (char *[]){SELF, (char *)16, NULL}, repeat(12000, big)}},
        {"too big arguments, a bad environment",
         {SELF, repeat(12000, big), (char *[]){(char *)16, NULL}}},
        {"the file before the arguments", {"/nonexistent", repeat(12000, big), envp_none}},
        {"16 MiB of pointers running into a hole", {SELF, pointer_pages(2 << 20, 0), envp_none}},
        {"16 MiB of pointers, then NULL", {SELF, pointer_pages(2 << 20, 1), envp_none}},
    };
    /* a string whose NUL would be on an unmapped page */
    char *m = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(m + PAGE, PAGE);
    memset(m, 'u', PAGE);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        try(cases[i].name, exec_vec, &cases[i].v);
    struct vec runs_off = {SELF, (char *[]){SELF, m + 100, NULL}, envp_none};
    try("a string running into a hole", exec_vec, &runs_off);
}

static void run(int n, char **paths) {
    for (int i = 0; i < n; i++) {
        struct vec v = {paths[i], (char *[]){paths[i], NULL}, envp_none};
        try(paths[i], exec_vec, &v);
    }
}

static void bystander(void) {
    volatile long *shared = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
                                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    enum { IN_EXECVE, SERVED, DURING, STOP };
    pid_t child = fork();
    if (child == 0) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/stat", getppid());
        int fd = open(path, O_RDONLY);
        while (!shared[STOP]) {
            getppid();
            shared[SERVED]++;
            if (shared[IN_EXECVE] && state_of(fd) == 'S')
                shared[DURING]++;
        }
        _exit(0);
    }
    while (!shared[SERVED])
        sched_yield();
    char **argv = repeat(12000, string(MAX_ARG_STRLEN - 1, 'x'));
    int tries = 0, e2big = 0;
    while (!shared[DURING] && tries < 500) {
        tries++;
        shared[IN_EXECVE] = 1;
        execve(SELF, argv, envp_none);
        int e = errno;
        shared[IN_EXECVE] = 0;
        e2big += e == E2BIG;
    }
    printf("execve: %s\n", e2big == tries ? "E2BIG every time" : "not always E2BIG");
    printf("bystander: %s\n",
           shared[DURING] ? "served during an execve" : "never served during one");
    long before = shared[SERVED];
    while (shared[SERVED] < before + 100)
        sched_yield();
    printf("bystander: still served after\n");
    shared[STOP] = 1;
    int st;
    waitpid(child, &st, 0);
    printf("bystander: exit %d\n", WEXITSTATUS(st));
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct rlimit stack = {8 << 20, RLIM_INFINITY};
    setrlimit(RLIMIT_STACK, &stack);
    if (argc > 1 && !strcmp(argv[1], "args"))
        args();
    else if (argc > 1 && !strcmp(argv[1], "run"))
        run(argc - 2, argv + 2);
    else if (argc > 1 && !strcmp(argv[1], "bystander"))
        bystander();
    else {
        printf("argc=%d", argc);
        for (int i = 0; i < argc; i++) {
            size_t n = strlen(argv[i]);
            if (n <= 40)
                printf(" \"%s\"", argv[i]);
            else
                printf(" <%zu bytes>", n);
        }
        printf("\n");
    }
    return 0;
}
