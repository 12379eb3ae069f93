import logging
import os
import sys

from platform_assets.cli import main

code = main()
# The command is done and everything it wrote is closed (runs, stores, child processes). Skip the
# interpreter's teardown, which after a replay spends 2-4 s freeing the torch, Feast, MLflow and
# Evidently modules: flush what is buffered, then exit.
logging.shutdown()
sys.stdout.flush()
sys.stderr.flush()
os._exit(code)
