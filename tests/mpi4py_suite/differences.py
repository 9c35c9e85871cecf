"""The tests of mpi4py's own suite whose outcome under ``PKL5_ENABLE=1`` differs by design.

Each entry is a test id (as unittest names it) and the reason; docs/guide.md lists
the same under "Differences from plain mpi4py".  ``tests/test_mpi4py_suite.py``
fails when any other test differs, and when one of these no longer does.
"""

KNOWN = {
    "test_objmodel.TestObjModel.testCAPI": (
        "mpi4py's C API (PyMPIComm_New, reached here through ctypes) builds an object of "
        "mpi4py's own class from a handle, in C, with no Python hook; for MPI.COMM_WORLD "
        "and MPI.COMM_SELF, which pkl5shim replaces by its own subclass, the type differs"
    ),
}
