"""``python -m pkl5shim``: run a program with the shim enabled, or report what is active.

python -m pkl5shim app.py [args ...]      run a script, as ``python app.py args``
python -m pkl5shim -m module [args ...]   run a module, as ``python -m module args``
python -m pkl5shim --info                 print versions, settings and patched objects
"""

from __future__ import annotations

import os
import runpy
import sys

from . import startup

USAGE = (__doc__ or "").split("\n\n", 1)[1].rstrip() + "\n"


def _run_script(path: str, args: list[str]) -> None:
    sys.argv = [path, *args]
    sys.path[0] = os.path.dirname(os.path.abspath(path))
    runpy.run_path(path, run_name="__main__")


def _run_module(name: str, args: list[str]) -> None:
    sys.argv = [name, *args]
    runpy.run_module(name, run_name="__main__", alter_sys=True)


def main(argv: list[str]) -> int:
    """Entry point; ``argv`` excludes the interpreter and ``-m pkl5shim``."""
    if not argv or argv[0] in ("-h", "--help"):
        sys.stdout.write("usage:\n" + USAGE)
        return 0 if argv else 2
    first, rest = argv[0], argv[1:]
    if first == "--info":
        if startup.requested():
            startup.install_hook()
        from .report import info

        print(info())
        return 0
    if first == "-m" and not rest:
        sys.stderr.write("python -m pkl5shim -m: a module name is missing\nusage:\n" + USAGE)
        return 2
    if first.startswith("-") and first != "-m":
        sys.stderr.write(f"python -m pkl5shim: unknown option {first!r}\nusage:\n" + USAGE)
        return 2
    startup.install_hook()
    if first == "-m":
        _run_module(rest[0], rest[1:])
    else:
        _run_script(first, rest)
    return 0


def console_main() -> None:
    """The ``pkl5shim`` console command: same as ``python -m pkl5shim``."""
    sys.exit(main(sys.argv[1:]))


if __name__ == "__main__":
    console_main()
