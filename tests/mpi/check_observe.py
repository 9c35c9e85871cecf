"""enable(stats=True) and enable(check=True) at run time, and disable() putting them back."""

import warnings

import numpy as np
from common import left, rank, right
from mpi4py import MPI

import pkl5shim
from pkl5shim import observe
from pkl5shim.config import modes


def ring_of_arrays(comm: MPI.Comm, modify: bool = False) -> None:
    data = np.full(300_000, rank, dtype="u1")
    request = comm.isend(data, right, 41)
    if modify:
        data[:] = 255  # breaks the isend rule on purpose
    got = comm.recv(source=left, tag=41)
    request.wait()
    assert got.nbytes == 300_000


def check_enable_stats_counts_and_disable_restores_the_methods():
    original_send = pkl5shim.Comm.__dict__["send"]
    assert not observe.observing()
    pkl5shim.enable(stats=True)
    try:
        # observing replaces no method: the same functions move the data
        assert observe.observing() and pkl5shim.Comm.__dict__["send"] is original_send
        before = pkl5shim.stats()["methods"].get("recv", {}).get("bytes_received", 0)
        ring_of_arrays(MPI.COMM_WORLD)
        after = pkl5shim.stats()["methods"]["recv"]["bytes_received"]
        sent = MPI.pickle.dumps_oob(np.full(300_000, left, dtype="u1"))
        assert after - before == len(sent[0]) + 300_000, (before, after)
    finally:
        pkl5shim.disable()
    assert not observe.observing() and not pkl5shim.enabled()
    assert pkl5shim.Comm.__dict__["send"] is original_send
    frozen = pkl5shim.stats()["methods"]["recv"]["bytes_received"]
    ring_of_arrays(pkl5shim.Intracomm(MPI.COMM_WORLD))
    assert pkl5shim.stats()["methods"]["recv"]["bytes_received"] == frozen  # no longer counting


def check_enable_check_mode_reports_and_disable_restores_it():
    assert modes.check == ""
    pkl5shim.enable(check=True)
    try:
        assert modes.check == "warn"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ring_of_arrays(MPI.COMM_WORLD, modify=True)
        reports = [w for w in caught if issubclass(w.category, pkl5shim.BufferModifiedWarning)]
        assert len(reports) == 1, [str(w.message) for w in caught]
        assert "check_observe.py" in str(reports[0].message)
    finally:
        pkl5shim.disable()
    assert modes.check == ""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ring_of_arrays(pkl5shim.Intracomm(MPI.COMM_WORLD), modify=True)
    assert not caught, [str(w.message) for w in caught]


def check_enable_rejects_an_unknown_check_mode():
    try:
        pkl5shim.enable(check="sometimes")
    except ValueError as exc:
        assert "check='sometimes'" in str(exc)
    else:
        raise AssertionError("enable(check='sometimes') did not raise")
    assert not pkl5shim.enabled() and modes.check == ""
