"""``python -m blackbox_sync`` runs the command line."""

import sys

from blackbox_sync.cli.app import main

sys.exit(main())
