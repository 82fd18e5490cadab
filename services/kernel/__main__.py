from common import phases
phases.mark("kernel", "start")
from common.service import main
from services.kernel.main import run

main("kernel", run)
