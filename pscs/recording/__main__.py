"""``python -m pscs.recording FD``: a recorder worker process, started by the supervisor."""

import sys

from pscs.recording.worker import worker_main

worker_main(int(sys.argv[1]))
