"""mpi4py.futures (and mpi4py.util.pool on top of it) mapping over 8 MiB numpy arrays.

Run as ``mpiexec -n N python -m mpi4py.futures futures_map.py pool|executor``;
prints one line of checksums, the same with and without pkl5shim.
"""

import sys

import numpy as np


def scaled(array: np.ndarray) -> np.ndarray:
    """A task whose argument and result are 8 MiB arrays."""
    return array * 2.0 + 1.0


def main() -> None:
    arrays = [np.full(1 << 20, float(i)) for i in range(8)]  # 8 MiB each
    if sys.argv[1] == "pool":
        from mpi4py.util.pool import Pool

        with Pool() as pool:
            results = pool.map(scaled, arrays)
    else:
        from mpi4py.futures import MPIPoolExecutor

        with MPIPoolExecutor() as executor:
            results = list(executor.map(scaled, arrays))
    print(sys.argv[1], [float(result.sum()) for result in results], flush=True)


if __name__ == "__main__":
    main()
