"""`python -m ivt_hf ...` is the `ivt` command (so that launchers can run it: `torchrun -m ivt_hf train ...`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
