"""`python -m iotc_apply` runs the CLI."""

import sys

from .cli import main

sys.exit(main())
