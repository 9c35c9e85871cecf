"""Rank 0 isends an array to every other rank; argv[1] says what it does before waiting.

"modify": refill the array right after isend (breaks the isend rule);
"correct": refill it only after the requests completed;
"forget": never wait for one request (reported at exit in check mode).
Receivers print whether the data they got is intact.
"""

import sys
import time

import numpy as np
from mpi4py import MPI

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
mode = sys.argv[1]
N = 1_000_000
forgotten = None
if rank == 0:
    data = np.arange(N, dtype="f8")
    requests = [comm.isend(data, dest=peer, tag=5) for peer in range(1, size)]  # ISEND LINE
    if mode == "modify":
        data[:] = -1.0
    try:
        if mode == "forget":
            forgotten = requests.pop()
        MPI.Request.waitall(requests)  # WAIT LINE
    except Exception as exc:  # noqa: BLE001 - reported for the test
        sys.stdout.write(f"rank 0 raised {type(exc).__name__}\n")
    data[:] = -2.0
else:
    time.sleep(0.3)
    got = comm.recv(source=0, tag=5)
    sys.stdout.write(f"rank {rank} intact={bool((got == np.arange(N)).all())}\n")
sys.stdout.flush()
comm.Barrier()
