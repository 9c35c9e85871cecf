"""The three ways in: PKL5_ENABLE (the installed .pth), sitecustomize/, python -m pkl5shim."""

from __future__ import annotations

from pathlib import Path

import pytest
from mpilaunch import ROOT, run

PROGRAMS = Path(__file__).parent / "programs"
FORMS = PROGRAMS / "startup_forms.py"
ENGINE_CLASS = "pkl5shim.comm.Intracomm"


def ranks_report(stdout: str, nprocs: int) -> list[str]:
    lines = sorted(line for line in stdout.splitlines() if line.startswith("rank "))
    assert len(lines) == nprocs, stdout
    return lines


@pytest.mark.parametrize("form", ["from-import", "import-as", "from-module-import"])
def test_environment_variable_patches_every_import_form(form: str) -> None:
    result = run(2, [str(FORMS), form], env={"PKL5_ENABLE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    for line in ranks_report(result.stdout, 2):
        assert ENGINE_CLASS in line, line


def test_without_the_variable_nothing_is_imported_or_patched() -> None:
    code = (
        "import sys; print('loaded', sorted(m for m in ('pkl5shim', 'wrapt', 'mpi4py')"
        " if m in sys.modules))"
    )
    result = run(1, ["-c", code], env={"PKL5_ENABLE": "0"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "loaded []" in result.stdout, result.stdout
    plain = run(2, [str(FORMS), "from-import"], env={"PKL5_ENABLE": "0"})
    for line in ranks_report(plain.stdout, 2):
        assert "mpi4py.MPI.Intracomm" in line, line


def test_sitecustomize_directory_activates_the_shim() -> None:
    # Python imports sitecustomize/ at start-up, before the -c code: with the
    # variable unset there, neither it nor the installed .pth does anything.
    # Setting the variable and re-running the module is what a start-up with
    # PKL5_ENABLE=1 does; only sitecustomize/ can have activated the shim then.
    site_dir = ROOT / "sitecustomize"
    code = (
        "import importlib, os, sys, sitecustomize; "
        f"assert sitecustomize.__file__ == {str(site_dir / 'sitecustomize.py')!r}; "
        "assert 'pkl5shim' not in sys.modules; "
        "os.environ['PKL5_ENABLE'] = '1'; importlib.reload(sitecustomize); "
        "sys.argv = ['startup_forms.py', 'from-import']; "
        f"exec(compile(open({str(FORMS)!r}).read(), {str(FORMS)!r}, 'exec'))"
    )
    result = run(2, ["-c", code], env={"PKL5_ENABLE": "0", "PYTHONPATH": str(site_dir)})
    assert result.returncode == 0, result.stderr[-3000:]
    for line in ranks_report(result.stdout, 2):
        assert ENGINE_CLASS in line, line


def test_launcher_runs_a_script_with_its_arguments() -> None:
    result = run(2, ["-m", "pkl5shim", str(FORMS), "from-import", "--extra"])
    assert result.returncode == 0, result.stderr[-3000:]
    for line in ranks_report(result.stdout, 2):
        assert ENGINE_CLASS in line and "__name__=__main__" in line, line
        assert "argv=['from-import', '--extra']" in line, line


def test_launcher_runs_a_module_with_its_arguments() -> None:
    module = "tests.programs.startup_forms"
    result = run(2, ["-m", "pkl5shim", "-m", module, "import-as", "x"])
    assert result.returncode == 0, result.stderr[-3000:]
    for line in ranks_report(result.stdout, 2):
        assert ENGINE_CLASS in line and "__name__=__main__" in line, line
        assert "argv=['import-as', 'x']" in line, line


@pytest.mark.parametrize(
    ("args", "message"),
    [([], "usage"), (["--bogus"], "unknown option '--bogus'"), (["-m"], "module name is missing")],
)
def test_launcher_usage_errors(args: list[str], message: str) -> None:
    result = run(1, ["-m", "pkl5shim", *args])
    assert result.returncode != 0
    assert message in result.stdout + result.stderr, result.stdout + result.stderr


@pytest.mark.parametrize("enabled", [True, False])
def test_info_reports_versions_settings_and_patches(enabled: bool) -> None:
    env = {"PKL5_ENABLE": "1" if enabled else "0", "PKL5_EAGER": "128K"}
    result = run(1, ["-m", "pkl5shim", "--info"], env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    text = result.stdout
    for field in ("pkl5shim", "mpi4py", "MPI library", "MPI standard", "large counts"):
        assert field in text, text
    assert "PKL5_EAGER           128 KiB (131072 bytes)" in text, text
    if enabled:
        assert "patched:          MPI.COMM_WORLD, MPI.COMM_SELF" in text, text
        assert "MPI_COMM_WORLD" in text, text
    else:
        assert "nothing (not enabled)" in text, text


def test_program_that_initializes_mpi_itself_gets_the_shim_at_init() -> None:
    result = run(2, [str(PROGRAMS / "deferred_init.py")], env={"PKL5_ENABLE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    for line in ranks_report(result.stdout, 2):
        assert "Intracomm out-of-band 1" in line, line
