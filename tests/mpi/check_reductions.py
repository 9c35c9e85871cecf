"""reduce, allreduce, scan, exscan of pkl5shim against plain mpi4py on the same data.

pkl5shim applies ``op`` in plain mpi4py's order and grouping, so results are
compared for exact equality, floating-point sums and non-commutative ops included.
"""

import numpy as np
from check_collectives import inter_root, make_intercomm
from common import comm, expect_same, rank, size, world
from expect import Soft, raises
from mpi4py import MPI

import pkl5shim

MIB = 1 << 20


def concat(a, b):
    """Non-commutative: string/list concatenation shows the order of the operands."""
    return a + b


NONCOMMUTATIVE = MPI.Op.Create(lambda a, b, datatype: a + b, commute=False)


def operands(name, r):
    """Per-rank operands for the op called ``name`` (several kinds each)."""
    arrays = [np.arange(MIB // 8, dtype=np.float64) / (r + 3), np.full(70_000, r + 1, np.int64)]
    table = {
        "SUM": [r + 1, 0.1 * (r + 1), *arrays],
        "PROD": [r + 2, 1.5 + r, np.full(200_000, 1.0 + r / 10)],
        "MAX": [r * 7 % 5, (r % 3, -r), f"s{r * 7 % 5}"],  # plain's MAX is Python's max()
        "MIN": [r * 7 % 5, (r % 3, -r), f"s{r * 7 % 5}"],
        "LAND": [r != 1, True],
        "LOR": [r == 1, False],
        "LXOR": [r % 2 == 0, True],
        "BAND": [0b1111 ^ r, 255],
        "BOR": [1 << (r % 8), 0],
        "BXOR": [r * 3, 5],
        "MAXLOC": [(r * 7 % 5, r)],
        "MINLOC": [(r * 7 % 5, r)],
        "REPLACE": [r, {"rank": r}],
        "NO_OP": [r, [r]],
        "concat": [f"<{r}>", [r, np.full(100_000, r)]],
        "Op.Create": [f"[{r}]", [np.full(40_000, r, np.int8)]],
    }
    return table[name]


OPS = {
    name: getattr(MPI, name)
    for name in (
        "SUM", "PROD", "MAX", "MIN", "LAND", "LOR", "LXOR", "BAND", "BOR", "BXOR",
        "MAXLOC", "MINLOC", "REPLACE", "NO_OP",
    )
}  # fmt: skip
OPS["concat"] = concat
OPS["Op.Create"] = NONCOMMUTATIVE


def same_as_plain(soft, name, *args):
    ours = getattr(comm, name)(*args)
    plain = getattr(world, name)(*args)
    soft(expect_same, ours, plain, f"{name}{args[1:]!r}")


def check_reduce_matches_plain_for_every_op_and_root():
    soft = Soft()
    for name, op in OPS.items():
        for index in range(len(operands(name, 0))):
            value = operands(name, rank)[index]
            for root in range(size):
                same_as_plain(soft, "reduce", value, op, root)
    soft.done()


def check_allreduce_scan_exscan_match_plain_for_every_op():
    soft = Soft()
    for name, op in OPS.items():
        for index in range(len(operands(name, 0))):
            value = operands(name, rank)[index]
            for collective in ("allreduce", "scan", "exscan"):
                same_as_plain(soft, collective, value, op)
    soft.done()


def check_default_op_is_sum_and_results_are_writable_copies():
    data = np.arange(300_000, dtype=np.float64) + rank
    total = comm.allreduce(data)
    expect_same(total, world.allreduce(data))
    assert total.flags.writeable and not np.shares_memory(total, data)
    total[:] = 0  # the caller's array is untouched
    assert data[1] == 1 + rank
    expect_same(comm.reduce(rank), world.reduce(rank))
    if rank == 0:
        single = comm.reduce(data, root=0) if size == 1 else None
        if single is not None:
            assert not np.shares_memory(single, data)


def check_reductions_carry_large_arrays_out_of_band():
    data = np.full(2 * MIB, rank, dtype=np.uint8)
    before = pkl5shim.stats()["out_of_band_received"]
    expect_same(comm.allreduce(data, op=np.maximum), np.full(2 * MIB, size - 1, np.uint8))
    received = pkl5shim.stats()["out_of_band_received"] - before
    assert received >= (1 if size > 1 else 0), received


def check_unpicklable_value_fails_every_rank_of_an_allreduce():
    soft = Soft()
    bad = (lambda: None) if rank == size - 1 else 1
    exc = soft(raises, Exception, lambda: comm.allreduce(bad))
    if exc is not None and rank != size - 1:
        soft.true(isinstance(exc, pkl5shim.RemoteError), f"{type(exc).__name__}: {exc}")
        soft.true(f"rank {size - 1}" in str(exc), str(exc))
    same_as_plain(soft, "allreduce", rank, MPI.SUM)  # the communicator still works
    soft.done()


def check_op_that_raises_fails_every_rank_of_an_allreduce():
    soft = Soft()

    def fragile(a, b):
        if "boom" in (a, b):
            raise ArithmeticError("cannot combine boom")
        return a + b

    value = "boom" if rank == size - 1 else f"{rank}"
    if size == 1:
        soft(expect_same, comm.allreduce(value, op=fragile), "boom")
    else:
        exc = soft(raises, Exception, lambda: comm.allreduce(value, op=fragile))
        if exc is not None:
            ok = isinstance(exc, (ArithmeticError, pkl5shim.RemoteError))
            soft.true(ok, f"{type(exc).__name__}: {exc}")
    same_as_plain(soft, "allreduce", [rank], concat)
    soft.done()


def check_invalid_root_raises_mpi_exception():
    exc = raises(MPI.Exception, lambda: comm.reduce(1, MPI.SUM, size))
    assert exc.Get_error_class() == MPI.ERR_ROOT
    same_as_plain(Soft(), "reduce", 1, MPI.SUM, 0)


def check_intercomm_reduce_and_allreduce_match_plain():
    soft = Soft()
    if size == 1:
        soft(expect_same, comm.allreduce(np.ones(5)), np.ones(5))
        soft.done()
        return
    color, local, plain, ours = make_intercomm()
    me = local.Get_rank()
    groups = {color: local.Get_size(), 1 - color: ours.Get_remote_size()}
    values = [10 * color + me, f"<{color}.{me}>", np.full(150_000, 1.0 + me + color)]
    for value in values:
        for op in (MPI.SUM, concat):
            got, ref = ours.allreduce(value, op), plain.allreduce(value, op)
            soft(expect_same, got, ref, f"intercomm allreduce {value!r:.30}")
            for group in (0, 1):
                for root in range(groups[group]):
                    arg = inter_root(color, me, group, root)
                    got, ref = ours.reduce(value, op, arg), plain.reduce(value, op, arg)
                    soft(expect_same, got, ref, f"intercomm reduce root {arg} {value!r:.30}")
    ours.Free()
    local.Free()
    soft.done()
