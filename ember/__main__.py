"""Command line of ember: ``python -m ember demo [--quick] ...``."""

from __future__ import annotations

import sys
from typing import Sequence

USAGE = """usage: python -m ember <command> [options]

commands:
  demo      fit the bundled models on bundled real data and print summaries
            (python -m ember demo --help for its options)
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch a command; return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, end="")
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "demo":
        from ember.demo import main as demo_main

        return demo_main(rest)
    print(f"ember: unknown command {command!r}\n\n{USAGE}", end="", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
