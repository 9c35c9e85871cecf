"""Spawned by spawn_master.py: doubles what it receives and sends back the sum."""

from mpi4py import MPI

parent = MPI.Comm.Get_parent()
data = parent.recv(source=0, tag=1)
parent.send(float((2 * data).sum()), dest=0, tag=2)
parent.Disconnect()
