"""<linux/elf.h>, <linux/auxvec.h>: program header types and the auxiliary vector's keys."""

PT_LOAD, PT_INTERP = 1, 3
AT = dict(NULL=0, PHDR=3, PHENT=4, PHNUM=5, PAGESZ=6, BASE=7, FLAGS=8, ENTRY=9, UID=11,
          EUID=12, GID=13, EGID=14, PLATFORM=15, HWCAP=16, CLKTCK=17, SECURE=23, RANDOM=25,
          HWCAP2=26, EXECFN=31, SYSINFO_EHDR=33, MINSIGSTKSZ=51)
