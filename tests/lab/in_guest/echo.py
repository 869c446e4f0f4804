"""What a ``python -m`` run sees (tests/lab/test_foundation.py compares a
run through the agent's preloaded interpreter with a fresh one): argv, the
working directory, sys.path[0], an environment variable, its session, stdin;
then writes to stderr and exits with the status given as its first argument
(an integer, or text: SystemExit's message)."""

import json
import os
import sys

if __name__ == "__main__":
    print(json.dumps({"argv": sys.argv[1:], "argv0": os.path.basename(sys.argv[0]), "cwd": os.getcwd(),
                      "path0": sys.path[0], "env": os.environ.get("KCT_ECHO"),
                      "session_leader": os.getsid(0) == os.getpid(), "stdin": sys.stdin.read(),
                      "main": __name__}))
    print("to stderr", file=sys.stderr)
    code = sys.argv[1]
    sys.exit(int(code) if code.lstrip("-").isdigit() else code)
