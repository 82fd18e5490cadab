"""<linux/sysinfo.h>."""

SI_LOAD_SHIFT = 16        # sysinfo's loads are fixed point, 1 << 16 is 1.0
