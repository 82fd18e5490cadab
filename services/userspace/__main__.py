from common.service import main
from services.userspace.service import run

main("userspace", run)
