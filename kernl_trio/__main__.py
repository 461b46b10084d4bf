"""``python -m kernl_trio``: the command line (:mod:`kernl_trio.cli`)."""

from __future__ import annotations

import sys

from .cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
