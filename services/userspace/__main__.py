from common import phases
phases.mark("userspace", "start")
from common.service import main
from services.userspace.service import run

main("userspace", run)
