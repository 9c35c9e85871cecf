"""Legacy program: a parameter sweep that scatters arrays and gathers results (mpi4py only)."""

import numpy as np
from mpi4py import MPI

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()

config = comm.bcast({"scale": 0.5, "grid": np.linspace(0.0, 1.0, 400_000)} if rank == 0 else None)
if rank == 0:
    rng = np.random.default_rng(42)
    chunks = [{"params": rng.random(300_000 + 1000 * r), "id": r} for r in range(size)]
else:
    chunks = None
mine = comm.scatter(chunks, root=0)
result = {"id": mine["id"], "curve": np.sin(mine["params"] * config["scale"]) + config["grid"][10]}
results = comm.gather(result, root=0)
everyone = comm.allgather(float(result["curve"].sum()))
if rank == 0:
    ids = [item["id"] for item in results]
    totals = [round(float(item["curve"].sum()), 6) for item in results]
    print("ids", ids)
    print("totals", totals)
    print("allgather agrees", [round(value, 6) for value in everyone] == totals)
