"""Stand-ins for ``MPI.Comm``, ``MPI.Request`` and ``MPI.Message`` while pkl5shim is enabled.

mpi4py's types are immutable, so ``enable()`` replaces these module attributes
with subclasses built here.  Legacy code calls class methods through them:
``MPI.Request.test(req)``, ``MPI.Request.Free(req)`` (mpi4py.futures does),
``MPI.Request.waitall(reqs)``, ``MPI.Message.probe(comm)``, ``MPI.Comm.fromint(h)``.

* ``isinstance``/``issubclass`` see mpi4py's own objects and pkl5shim's alike.
* Every public method of mpi4py's class is served for pkl5shim objects by
  pkl5shim's method of the same name, and for mpi4py's objects by mpi4py's:
  no C method of mpi4py is ever handed an object whose memory it cannot read
  (mpi4py's methods do not check the type of ``self``).
* Handles translated back to objects (``fromhandle``, ``fromint``, ``f2py``) keep
  pkl5shim's type: a communicator handle that has a pkl5shim channel comes back
  as a pkl5shim communicator.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from . import p2p, requests
from .comm import Comm
from .transport import RawComm, RawMessage, RawRequest

_HANDLE_CONSTRUCTORS = ("fromhandle", "fromint", "f2py")


class _StandIn(type):
    """Metaclass: an instance or subclass of mpi4py's class, or of pkl5shim's, qualifies.

    Only for the stand-in itself: a class derived from it (``class C(MPI.Comm)``
    written while enabled, as ``mpi4py.util.pkl5`` does) checks as any class does.
    """

    accepted: tuple[type, ...]

    def __instancecheck__(cls, obj: object) -> bool:
        if cls.__dict__.get("_stand_in"):
            return isinstance(obj, cls.accepted)
        return type.__instancecheck__(cls, obj)

    def __subclasscheck__(cls, sub: type) -> bool:
        if cls.__dict__.get("_stand_in"):
            return issubclass(sub, cls.accepted)
        return type.__subclasscheck__(cls, sub)


def _public(raw: type, kind: str) -> list[str]:
    """Names of ``raw``'s public attributes of one kind (``cython_function_or_method``
    for methods called on an instance, ``getset_descriptor`` for properties)."""
    return [
        name
        for name in dir(raw)
        if not name.startswith("_") and type(inspect.getattr_static(raw, name)).__name__ == kind
    ]


def _dispatch(raw: type, engine: type, name: str) -> Callable[..., Any]:
    """``raw.<name>`` for mpi4py's objects, ``engine.<name>`` for pkl5shim's."""
    raw_method = getattr(raw, name)
    engine_method = getattr(engine, name)

    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(self, engine):
            return engine_method(self, *args, **kwargs)
        if isinstance(self, raw):
            return raw_method(self, *args, **kwargs)
        raise TypeError(
            f"MPI.{raw.__name__}.{name}() needs an MPI.{raw.__name__}, got {type(self).__name__}"
        )

    method.__name__ = method.__qualname__ = name
    method.__doc__ = raw_method.__doc__
    return method


def _dispatch_property(raw: type, engine: type, name: str) -> property:
    """``raw.<name>`` read through the class: pkl5shim's for pkl5shim objects."""
    raw_get = inspect.getattr_static(raw, name).__get__

    def get(self: Any) -> Any:
        return getattr(self, name) if isinstance(self, engine) else raw_get(self, raw)

    return property(get, doc=inspect.getattr_static(raw, name).__doc__)


def _documented_as(raw: type, name: str, member: Any) -> Any:
    """A class method of the stand-in, carrying mpi4py's docstring of the same name
    (mpi4py's own test suite checks the docstrings of ``MPI.Comm``)."""
    if not isinstance(member, classmethod) or not hasattr(raw, name):
        return member
    func = member.__func__

    def call(cls: type, *args: Any, **kwargs: Any) -> Any:
        return func(cls, *args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = getattr(raw, name).__doc__
    return classmethod(call)


def _stand_in(raw: type, engine: type, members: dict[str, Any]) -> type:
    """A subclass of ``raw`` named like it; pickled by name it is ``mpi4py.MPI.<name>``.

    Methods that pkl5shim's class has of its own are routed by the kind of ``self``;
    when pkl5shim's objects are not mpi4py's (requests, messages) every method and
    property is, so that mpi4py's C code never reads them.
    """
    namespace: dict[str, Any] = {
        "__module__": raw.__module__,
        "__doc__": raw.__doc__,
        "_stand_in": True,
        "_RAW": raw,  # what p2p's fromhandle/fromint/f2py convert through
    }
    foreign = not issubclass(engine, raw)
    for name in _public(raw, "cython_function_or_method"):
        if foreign or getattr(engine, name) is not getattr(raw, name):
            namespace[name] = _dispatch(raw, engine, name)
    if foreign:
        for name in _public(raw, "getset_descriptor"):
            namespace[name] = _dispatch_property(raw, engine, name)
    for name, member in members.items():
        namespace[name] = _documented_as(raw, name, member)
    meta = type(f"{raw.__name__}StandIn", (_StandIn,), {"accepted": (raw, engine)})
    return meta(raw.__name__, (raw,), namespace)


def _new_request(cls: type, request: Any = None) -> Any:
    """``MPI.Request(req)``: a copy of ``req``, pkl5shim's or mpi4py's."""
    if isinstance(request, requests.Request):
        return requests.Request(request)
    return RawRequest.__new__(cls, request)


Request = _stand_in(
    RawRequest,
    requests.Request,
    {
        "__new__": _new_request,
        **{
            name: classmethod(getattr(requests.Request, name).__func__)
            for name in requests.REQUEST_CLASS_METHODS
        },
    },
)


def _matching_probe(name: str) -> classmethod:
    """``Message.probe``/``iprobe``: through the engine when ``comm`` is pkl5shim's."""
    engine_call, raw_call = getattr(p2p.Message, name), getattr(RawMessage, name)

    def call(cls: type, comm: Any, *args: Any, **kwargs: Any) -> Any:
        return (engine_call if isinstance(comm, Comm) else raw_call)(comm, *args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = engine_call.__doc__
    return classmethod(call)


Message = _stand_in(
    RawMessage,
    p2p.Message,
    {
        "probe": _matching_probe("probe"),
        "iprobe": _matching_probe("iprobe"),
        **{name: classmethod(getattr(p2p.Message, name).__func__) for name in _HANDLE_CONSTRUCTORS},
    },
)

CommStandIn = _stand_in(
    RawComm,
    Comm,
    {name: classmethod(getattr(Comm, name).__func__) for name in _HANDLE_CONSTRUCTORS},
)
"""``MPI.Comm`` while enabled: ``MPI.Comm.send(comm, ...)`` is the engine's for a pkl5shim
communicator, as ``comm.send(...)`` is."""

STAND_INS: dict[str, type] = {"Comm": CommStandIn, "Request": Request, "Message": Message}
"""The ``mpi4py.MPI`` classes ``enable()`` replaces, by name."""
