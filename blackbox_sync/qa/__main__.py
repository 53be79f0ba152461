"""``python -m blackbox_sync.qa``: the ``qa`` subcommand on its own."""

import sys

from blackbox_sync.cli.qa import main

if __name__ == "__main__":
    sys.exit(main())
