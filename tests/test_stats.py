"""Observation: ``PKL5_STATS`` counts add up, its JSON and tables are valid, ``PKL5_LOG`` logs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from mpilaunch import run

PROGRAM = Path(__file__).parent / "programs" / "stats_traffic.py"
KEYS = {
    "objects_sent",
    "bytes_sent",
    "objects_received",
    "bytes_received",
    "eager_sent",
    "out_of_band_sent",
    "eager_received",
    "out_of_band_received",
    "zero_copy_bytes",
    "pickle_seconds",
    "unpickle_seconds",
}


def launch(tmp_path: Path, nprocs: int, stats: str, *args: str, **env: str):
    expected = str(tmp_path / "expected-{rank}.json")
    result = run(
        nprocs,
        [str(PROGRAM), expected, *args],
        env={"PKL5_ENABLE": "1", "PKL5_STATS": stats, **env},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def load(tmp_path: Path, nprocs: int) -> list[tuple[dict, dict]]:
    pairs = []
    for rank in range(nprocs):
        stats = json.loads((tmp_path / f"stats-{rank}.json").read_text())
        expected = json.loads((tmp_path / f"expected-{rank}.json").read_text())
        pairs.append((stats, expected))
    return pairs


@pytest.mark.parametrize("nprocs", [2, 3, 4])
def test_counts_match_the_traffic_on_every_rank(tmp_path: Path, nprocs: int) -> None:
    launch(tmp_path, nprocs, f"json:{tmp_path}/stats-{{rank}}.json")
    for rank, (stats, expected) in enumerate(load(tmp_path, nprocs)):
        assert stats["rank"] == rank and stats["observing"] is True
        for method, want in expected.items():
            row = stats["methods"][method]
            assert set(row) == KEYS, row
            for key, value in want.items():
                assert row[key] == value, (rank, method, key, row[key], value)
            untouched = KEYS - set(want) - {"pickle_seconds", "unpickle_seconds"}
            assert all(row[key] == 0 for key in untouched), (rank, method, row)
        assert set(stats["methods"]) == set(expected), (rank, sorted(stats["methods"]))
        for key in KEYS:
            column = sum(row[key] for row in stats["methods"].values())
            assert stats["total"][key] == pytest.approx(column), key
        assert stats["total"]["pickle_seconds"] > 0 and stats["total"]["unpickle_seconds"] > 0
        largest_sent = 2 << 20 if rank == 0 else 400_000 * (rank + 1)  # bcast, gather arrays
        assert largest_sent <= stats["peak_bytes_in_flight"] <= 5 * largest_sent
        assert stats["bytes_in_flight"] == 0  # every send completed


@pytest.mark.parametrize("nprocs", [2, 4])
def test_bytes_sent_equal_bytes_received_across_ranks(tmp_path: Path, nprocs: int) -> None:
    launch(tmp_path, nprocs, f"json:{tmp_path}/stats-{{rank}}.json")
    stats = [pair[0]["methods"] for pair in load(tmp_path, nprocs)]

    def column(method: str, key: str) -> int:
        return sum(rank.get(method, {}).get(key, 0) for rank in stats)

    for sender, receiver in (("send", "recv"), ("isend", "irecv")):
        assert column(sender, "bytes_sent") == column(receiver, "bytes_received") > 0
        assert column(sender, "objects_sent") == column(receiver, "objects_received") > 0
    root_sent = stats[0]["bcast"]["bytes_sent"]
    assert all(rank["bcast"]["bytes_received"] == root_sent for rank in stats)
    assert stats[-1]["gather"]["bytes_received"] == column("gather", "bytes_sent")


def test_isend_copy_mode_sends_nothing_zero_copy_from_isend(tmp_path: Path) -> None:
    launch(tmp_path, 2, f"json:{tmp_path}/stats-{{rank}}.json", "copy", PKL5_ISEND="copy")
    for stats, expected in load(tmp_path, 2):
        assert stats["methods"]["isend"]["zero_copy_bytes"] == 0
        assert stats["methods"]["isend"]["bytes_sent"] == expected["isend"]["bytes_sent"]
    rank0 = load(tmp_path, 2)[0]
    zero_copy = rank0[1]["send"]["zero_copy_bytes"]  # blocking sends stay zero-copy
    assert rank0[0]["methods"]["send"]["zero_copy_bytes"] == zero_copy > 1 << 20


def _rows(text: str, title: str) -> dict[str, list[str]]:
    block = text[text.index(title) :].splitlines()
    rows = {}
    for line in block[2:]:
        if line.startswith("peak bytes in flight"):
            break
        cells = re.split(r"\s{2,}", line.strip())
        rows[cells[0]] = cells[1:]
    return rows


def test_table_per_rank_at_exit(tmp_path: Path) -> None:
    result = launch(tmp_path, 3, "1")
    for rank in range(3):
        rows = _rows(result.stderr, f"pkl5shim stats, rank {rank}")
        assert rows["bcast"][2] == "1" and rows["gather"][0] == "1", rows  # received, sent
        assert "all" in rows
    assert result.stderr.count("peak bytes in flight") == 3


def test_total_table_on_rank_zero(tmp_path: Path) -> None:
    result = launch(tmp_path, 3, "total")
    assert result.stderr.count("pkl5shim stats") == 1, result.stderr[-3000:]
    rows = _rows(result.stderr, "pkl5shim stats, sum of 3 ranks")
    assert rows["bcast"][:3] == ["1", "2.0 MiB", "3"], rows  # one sent, three copies received
    assert rows["isend"][0] == "6" and rows["irecv"][2] == "6", rows  # two per rank


def test_debug_log_has_one_line_per_object(tmp_path: Path) -> None:
    result = launch(tmp_path, 2, f"json:{tmp_path}/stats-{{rank}}.json", PKL5_LOG="debug")
    lines = [line for line in result.stderr.splitlines() if line.startswith("pkl5shim[rank")]
    for rank, (stats, _expected) in enumerate(load(tmp_path, 2)):
        mine = [line for line in lines if line.startswith(f"pkl5shim[rank {rank}]")]
        total = stats["total"]
        assert len(mine) == total["objects_sent"] + total["objects_received"], mine
    for pattern in (
        r"\] send sent to rank 1 tag 1: \d+ bytes, out-of-band",
        r"\] irecv received from rank 0 tag 101: \d+ bytes, eager",
        r"\] bcast received root 0: 2097\d+ bytes, out-of-band",
    ):
        assert any(re.search(pattern, line) for line in lines), pattern
