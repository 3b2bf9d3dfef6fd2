"""`python -m tinygrad_lstm` is the `tinygrad-lstm` CLI."""

import sys

from .cli import main

sys.exit(main())
