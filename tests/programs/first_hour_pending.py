"""Rank 1 gets SIGUSR1 while an irecv is pending and its main thread is blocked in MPI.

Run with PKL5_ENABLE=1 PKL5_DUMP_SIGNAL=USR1 on 2 ranks.  Rank 1 posts an irecv that
nothing matches yet and blocks in a Barrier; a thread sends the signal to its own
process, waits for the dump, and only then tells rank 0 (on a duplicate communicator)
to enter the Barrier and send the message the irecv waits for.
"""

import os
import signal
import sys
import threading
import traceback

from mpi4py import MPI

from pkl5shim import pending

world = MPI.COMM_WORLD
rank = world.Get_rank()
side = MPI.Intracomm(world).Dup()  # mpi4py's own: a side channel for the go-ahead
assert MPI.Query_thread() == MPI.THREAD_MULTIPLE, "this program needs THREAD_MULTIPLE"


def signal_self(main: int) -> None:
    # signal once the main thread is at its Barrier line (then inside MPI, or entering it)
    while "world.Barrier()" not in "".join(traceback.format_stack(sys._current_frames()[main])):
        threading.Event().wait(0.01)
    os.kill(os.getpid(), signal.SIGUSR1)
    while pending.dumps == 0:
        threading.Event().wait(0.01)
    side.Send(b"go", dest=0)


if rank == 1:
    request = world.irecv(source=0, tag=5)
    helper = threading.Thread(target=signal_self, args=(threading.get_ident(),), name="signaller")
    helper.start()
    world.Barrier()  # blocked inside MPI until rank 0 got the go-ahead
    helper.join()
    assert request.wait() == {"late": True}
else:
    side.Recv(bytearray(2), source=1)
    world.Barrier()
    world.send({"late": True}, dest=1, tag=5)
print(f"OK first hour pending rank {rank}", flush=True)
