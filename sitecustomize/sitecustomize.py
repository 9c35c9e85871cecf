"""pkl5shim start-up activation for setups that use PYTHONPATH instead of pip.

Put this directory on PYTHONPATH; with ``PKL5_ENABLE=1`` every Python process
then patches mpi4py when it imports ``mpi4py.MPI``.  If ``pkl5shim`` itself is
not importable, the checkout this directory belongs to is added to ``sys.path``.
Note: Python imports only one ``sitecustomize``; this one replaces any other.
"""

import os
import sys

if os.environ.get("PKL5_ENABLE", "").strip() not in ("", "0"):
    _checkout = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        import pkl5shim.startup
    except ImportError:
        sys.path.append(_checkout)
        import pkl5shim.startup
    pkl5shim.startup.activate()
