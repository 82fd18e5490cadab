from common import phases
phases.mark("sigio", "start")
from common.service import main
from services.sigio.service import run

main("sigio", run)
