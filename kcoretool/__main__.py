"""``python -m kcoretool`` and the ``kcoretool`` console script.

Ctrl-C during start-up (importing click and the library takes a few tenths
of a second) ends like Ctrl-C later: one line and status 130, not Python's
traceback -- until the CLI installs its own handler."""

import os
import signal


def _interrupted_early(signum: int, frame: object) -> None:
    os.write(2, b"kcoretool: interrupted\n")
    os._exit(130)


def main() -> None:
    try:
        signal.signal(signal.SIGINT, _interrupted_early)
    except ValueError:
        pass  # not the main thread: keep the embedding program's handler
    from kcoretool.cli import main as cli_main

    cli_main(prog_name="kcoretool")


if __name__ == "__main__":
    main()
