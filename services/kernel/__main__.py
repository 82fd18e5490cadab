from common.service import main
from services.kernel.main import run

main("kernel", run)
