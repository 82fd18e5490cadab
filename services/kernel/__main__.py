from common.service import main
from services.kernel.service import run

main("kernel", run)
