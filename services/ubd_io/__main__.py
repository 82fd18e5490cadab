from common.service import main
from services.ubd_io.service import run

main("ubd_io", run)
