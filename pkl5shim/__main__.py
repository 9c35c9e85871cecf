"""``python -m pkl5shim``: run a program with the shim enabled, or report what is active.

python -m pkl5shim app.py [args ...]      run a script, as ``python app.py args``
python -m pkl5shim -m module [args ...]   run a module, as ``python -m module args``
python -m pkl5shim --info                 print versions, settings and patched objects
"""

from __future__ import annotations

import importlib.util
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


def _error(message: str, status: int) -> int:
    sys.stderr.write(f"python -m pkl5shim: {message}\n")
    return status


def _settings_problem() -> str | None:
    """The one-line problem of a bad ``PKL5_*`` value, or ``None`` (loads no MPI)."""
    try:
        startup.requested()
    except ValueError as exc:
        return (
            f"{exc}; python -m pkl5shim enables the shim whatever the variable says: "
            "unset PKL5_ENABLE or set it to 1"
        )
    try:
        from . import config  # noqa: F401  (reads every PKL5_* variable)
    except ValueError as exc:
        return str(exc)
    return None


def _info() -> int:
    try:
        from . import config  # noqa: F401
    except ValueError as exc:
        return _error(str(exc), 1)
    try:
        wanted = startup.requested()
    except ValueError:
        wanted = False  # report.info() shows the bad value
    if wanted:
        startup.install_hook()
    from .report import info

    print(info())
    return 0


def _missing(first: str, rest: list[str]) -> str | None:
    """Why the script or module cannot be run, as ``python`` says it, or ``None``."""
    if first != "-m":
        if os.path.exists(first):
            return None
        return f"can't open file {os.path.abspath(first)!r}: [Errno 2] No such file or directory"
    try:
        found = importlib.util.find_spec(rest[0]) is not None
    except (ImportError, ValueError):
        found = False
    return None if found else f"No module named {rest[0]}"


def main(argv: list[str]) -> int:
    """Entry point; ``argv`` excludes the interpreter and ``-m pkl5shim``."""
    if not argv or argv[0] in ("-h", "--help"):
        sys.stdout.write("usage:\n" + USAGE)
        return 0 if argv else 2
    first, rest = argv[0], argv[1:]
    if first == "--info":
        return _info()
    if first == "-m" and not rest:
        sys.stderr.write("python -m pkl5shim -m: a module name is missing\nusage:\n" + USAGE)
        return 2
    if first.startswith("-") and first != "-m":
        sys.stderr.write(f"python -m pkl5shim: unknown option {first!r}\nusage:\n" + USAGE)
        return 2
    missing = _missing(first, rest)
    if missing is not None:
        return _error(missing, 2 if first != "-m" else 1)
    problem = _settings_problem()
    if problem is not None:
        return _error(problem, 1)
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
