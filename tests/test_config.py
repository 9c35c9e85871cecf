"""``config.load``: every ``PKL5_*`` variable parsed from a plain dictionary (no MPI)."""

from __future__ import annotations

import dataclasses

import pytest

from pkl5shim import config
from pkl5shim.config import EAGER_DEFAULT, Settings, load

DEFAULTS = {
    "eager_limit": EAGER_DEFAULT,
    "max_message": config.physical_memory(),
    "chunk_limit": 0,
    "payload_timeout": 60.0,
    "isend_copy": False,
    "stats": "",
    "stats_path": "",
    "log": False,
    "check": "",
    "launch_timeout": 30.0,
    "dump_signal": "",
}


def test_an_empty_environment_gives_the_defaults() -> None:
    assert dataclasses.asdict(load({})) == DEFAULTS


def test_blank_values_give_the_defaults() -> None:
    blank = {variable.name: "  " for variable in config.VARIABLES}
    assert dataclasses.asdict(load(blank)) == DEFAULTS


def test_every_field_is_set_by_exactly_one_variable() -> None:
    fields = [field for variable in config.VARIABLES for field in variable.fields]
    assert sorted(fields) == sorted(f.name for f in dataclasses.fields(Settings))


def test_other_variables_are_ignored() -> None:
    assert load({"PKL5_ENABLE": "1", "PATH": "/bin", "PKL5_UNKNOWN": "x"}) == load({})


@pytest.mark.parametrize(
    ("name", "raw", "field", "value"),
    [
        ("PKL5_EAGER", "4K", "eager_limit", 4 << 10),
        ("PKL5_EAGER", "1024", "eager_limit", 1024),
        ("PKL5_EAGER", " 64kib ", "eager_limit", 64 << 10),
        ("PKL5_EAGER", "1MB", "eager_limit", 1 << 20),
        ("PKL5_MAX_MESSAGE", " 2G ", "max_message", 2 << 30),
        ("PKL5_MAX_MESSAGE", "1T", "max_message", 1 << 40),
        ("PKL5_MAX_MESSAGE", "1", "max_message", 1),
        ("PKL5_CHUNK", "1MiB", "chunk_limit", 1 << 20),
        ("PKL5_CHUNK", "0", "chunk_limit", 0),
        ("PKL5_PAYLOAD_TIMEOUT", "1", "payload_timeout", 1.0),
        ("PKL5_PAYLOAD_TIMEOUT", "0.5s", "payload_timeout", 0.5),
        ("PKL5_PAYLOAD_TIMEOUT", "0", "payload_timeout", 0.0),
        ("PKL5_LAUNCH_TIMEOUT", "90", "launch_timeout", 90.0),
        ("PKL5_LAUNCH_TIMEOUT", "2.5S", "launch_timeout", 2.5),
        ("PKL5_ISEND", "copy", "isend_copy", True),
        ("PKL5_ISEND", " Zero-Copy ", "isend_copy", False),
        ("PKL5_LOG", "debug", "log", True),
        ("PKL5_LOG", "DEBUG", "log", True),
        ("PKL5_LOG", "off", "log", False),
        ("PKL5_LOG", "0", "log", False),
        ("PKL5_CHECK", "1", "check", "warn"),
        ("PKL5_CHECK", "warn", "check", "warn"),
        ("PKL5_CHECK", "on", "check", "warn"),
        ("PKL5_CHECK", "Raise", "check", "raise"),
        ("PKL5_CHECK", "0", "check", ""),
        ("PKL5_CHECK", "off", "check", ""),
        ("PKL5_DUMP_SIGNAL", "usr1", "dump_signal", "SIGUSR1"),
        ("PKL5_DUMP_SIGNAL", "SIGUSR2", "dump_signal", "SIGUSR2"),
        ("PKL5_DUMP_SIGNAL", "off", "dump_signal", ""),
        ("PKL5_DUMP_SIGNAL", "0", "dump_signal", ""),
    ],
)
def test_good_values(name: str, raw: str, field: str, value: object) -> None:
    settings = load({name: raw})
    assert getattr(settings, field) == value
    others = {key: v for key, v in dataclasses.asdict(settings).items() if key != field}
    assert others == {key: v for key, v in DEFAULTS.items() if key != field}


@pytest.mark.parametrize(
    ("raw", "stats", "path"),
    [
        ("1", "table", ""),
        ("table", "table", ""),
        ("on", "table", ""),
        ("total", "total", ""),
        ("TOTAL", "total", ""),
        ("0", "", ""),
        ("off", "", ""),
        ("json:/tmp/s-{rank}.json", "json", "/tmp/s-{rank}.json"),
        (" json:out.json ", "json", "out.json"),
    ],
)
def test_stats_sets_its_mode_and_path(raw: str, stats: str, path: str) -> None:
    settings = load({"PKL5_STATS": raw})
    assert (settings.stats, settings.stats_path) == (stats, path)


SIZE = "expected a byte count such as 65536, 64K or 2G"
SECONDS = "expected seconds such as 60 or 0.5 (0: no limit)"


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("PKL5_EAGER", "abc", f"PKL5_EAGER='abc': {SIZE}"),
        ("PKL5_EAGER", "12Q", f"PKL5_EAGER='12Q': {SIZE}"),
        ("PKL5_EAGER", "100", "PKL5_EAGER='100': must be at least 1024 bytes"),
        ("PKL5_EAGER", "1023", "PKL5_EAGER='1023': must be at least 1024 bytes"),
        ("PKL5_MAX_MESSAGE", "lots", f"PKL5_MAX_MESSAGE='lots': {SIZE}"),
        ("PKL5_MAX_MESSAGE", "0", "PKL5_MAX_MESSAGE='0': must be at least 1 bytes"),
        ("PKL5_CHUNK", "-1", "PKL5_CHUNK='-1': must be at least 0 bytes"),
        ("PKL5_CHUNK", "4.5K", f"PKL5_CHUNK='4.5K': {SIZE}"),
        ("PKL5_PAYLOAD_TIMEOUT", "soon", f"PKL5_PAYLOAD_TIMEOUT='soon': {SECONDS}"),
        ("PKL5_PAYLOAD_TIMEOUT", "-1", f"PKL5_PAYLOAD_TIMEOUT='-1': {SECONDS}"),
        ("PKL5_PAYLOAD_TIMEOUT", "inf", f"PKL5_PAYLOAD_TIMEOUT='inf': {SECONDS}"),
        ("PKL5_PAYLOAD_TIMEOUT", "nan", f"PKL5_PAYLOAD_TIMEOUT='nan': {SECONDS}"),
        ("PKL5_LAUNCH_TIMEOUT", "later", f"PKL5_LAUNCH_TIMEOUT='later': {SECONDS}"),
        ("PKL5_ISEND", "sometimes", "PKL5_ISEND='sometimes': expected 'copy' or 'zero-copy'"),
        (
            "PKL5_STATS",
            "csv:/tmp/x",
            "PKL5_STATS='csv:/tmp/x': expected 1 (a table per rank at exit), total (summed on "
            "rank 0) or json:PATH (PATH may contain {rank} and {pid})",
        ),
        ("PKL5_STATS", "json:", "PKL5_STATS='json:': expected 1 (a table per rank at exit)"),
        ("PKL5_LOG", "verbose", "PKL5_LOG='verbose': expected debug (one log line per object)"),
        ("PKL5_CHECK", "maybe", "PKL5_CHECK='maybe': expected 1 (warn) or raise"),
        ("PKL5_DUMP_SIGNAL", "NOPE", "PKL5_DUMP_SIGNAL='NOPE': expected a signal name"),
    ],
)
def test_bad_values_raise_value_error_naming_the_variable(
    name: str, raw: str, message: str
) -> None:
    with pytest.raises(ValueError) as caught:
        load({name: raw})
    assert str(caught.value).startswith(message), str(caught.value)


def test_the_first_bad_variable_of_the_table_is_reported() -> None:
    with pytest.raises(ValueError, match=r"^PKL5_EAGER="):
        load({"PKL5_CHECK": "maybe", "PKL5_EAGER": "x"})


def test_load_reads_only_what_it_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PKL5_EAGER", "not a size")
    assert load({}).eager_limit == EAGER_DEFAULT


def test_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.settings.eager_limit = 1  # type: ignore[misc]
