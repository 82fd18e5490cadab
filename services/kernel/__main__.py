from common.service import main
from services.kernel.entry.kernel import run

main("kernel", run)
