"""x86_64: the page, the 64-bit word, where user space ends."""
from common.layout import ADDR_LIMIT

PAGE = 4096
U64 = (1 << 64) - 1
TASK_SIZE = ADDR_LIMIT - PAGE          # Linux's TASK_SIZE_MAX
