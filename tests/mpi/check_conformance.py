"""Conformance with mpi4py, generated from mpi4py's own API.

For every public attribute of mpi4py's request, message and communicator
classes, the same call is made on a pkl5shim object and on a plain mpi4py
object in the same situation, bound (``obj.name(...)``) and through the class
as ``mpi4py.MPI`` names it while pkl5shim is enabled (``MPI.Request.test(req)``).
Outcomes are normalized (MPI objects by kind, received objects by value,
statuses by source/tag/count, exceptions by type) and must agree.

A name without a recipe is called with no arguments.  Names never called are
in ``EXCLUDED`` with a reason; a public name that fits none of these fails.
The class form goes through the module attribute only (a stand-in while
enabled): mpi4py's own C methods do not check ``self``.
"""

from __future__ import annotations

import inspect
import itertools
import pickle
import re
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from mpi4py import MPI

import pkl5shim
from pkl5shim import p2p, patch, transport
from pkl5shim.transport import RawComm, RawMessage, RawRequest

if not pkl5shim.enabled():  # test_mpi_checks.py launches without PKL5_ENABLE=1
    pkl5shim.enable()

RAW_WORLD: MPI.Intracomm = patch.original("COMM_WORLD")
WORLD_RANK = RAW_WORLD.Get_rank()
WORLD_SIZE = RAW_WORLD.Get_size()
CTL = RAW_WORLD.Dup()  # agreement between ranks, untouched by the calls under test
PLAIN = RAW_WORLD.Dup()  # a plain mpi4py communicator pkl5shim never wrapped
BASES: dict[str, MPI.Intracomm] = {
    "mpi4py": PLAIN,  # the reference: mpi4py's objects, and mpi4py's own class
    "mpi4py via stand-in": PLAIN,  # mpi4py's objects through the replaced MPI.<class>
    "pkl5shim": MPI.COMM_WORLD.Dup(),  # wrapped: has a channel
}
REFERENCE = "mpi4py"
FORMS = ("bound", "class")
DEADLINE = 10.0
MPI.Attach_buffer(bytearray(8 << 20))  # for the buffered sends

ORIGINAL_CLASSES: dict[str, type] = {
    "Request": RawRequest,
    "Prequest": MPI.Prequest,
    "Message": RawMessage,
    "Comm": RawComm,
    "Intracomm": MPI.Intracomm,
    "Intercomm": MPI.Intercomm,
    "Cartcomm": MPI.Cartcomm,
    "Graphcomm": MPI.Graphcomm,
    "Distgraphcomm": MPI.Distgraphcomm,
}
"""mpi4py's own classes, whose ``dir()`` generates the calls."""

COMM_KINDS = (MPI.Cartcomm, MPI.Graphcomm, MPI.Distgraphcomm, MPI.Intercomm, MPI.Intracomm, RawComm)

EXCLUDED: dict[str, str] = {
    "Abort": "kills the job",
    "Spawn": "starts new processes that never take part in this job's sequence of calls",
    "Spawn_multiple": "starts new processes that never take part in this job's sequence of calls",
    "Accept": "blocks until a client connects, and none ever does",
    "Connect": "blocks until a server accepts, and none ever does",
    "Join": "needs a connected socket and blocks until the other side joins",
}
"""Communicator methods never called, each with the reason."""

_tags = itertools.count()


def new_tag() -> int:
    """A tag no earlier call used (the same on every rank: all run the same sequence)."""
    return 100 + next(_tags) % 30000


def payload(variant: str, sender: int) -> Any:
    """The object a rank sends: a small dict or a 1 MiB array (out of band)."""
    if variant == "large":
        return np.arange(1 << 17, dtype="f8") + sender
    return {"rank": sender, "word": "small"}


def inbox() -> bytearray:
    """A receive buffer for one object: mpi4py's own irecv needs one for a large object."""
    return bytearray(2 << 20)


# -- outcomes -------------------------------------------------------------------
def failure(exc: BaseException) -> tuple[Any, ...]:
    """An exception by type (an MPI error also by its class)."""
    if isinstance(exc, MPI.Exception):
        return ("raise", "MPI.Exception", exc.Get_error_class())
    return ("raise", type(exc).__name__)


def status_of(status: MPI.Status) -> tuple[Any, ...]:
    """A status by source, tag, byte count and cancellation.

    A count above 64 KiB is compared in KiB: a large object pickled in band
    (mpi4py) and out of band (pkl5shim) differ by a few bytes of framing.
    """
    count = status.Get_count(MPI.BYTE)
    shown = count if count <= 1 << 16 else f"{count >> 10} KiB"
    return ("Status", status.Get_source(), status.Get_tag(), shown, status.Is_cancelled())


def kind_of(value: Any, kinds: tuple[type, ...]) -> str:
    """The first of mpi4py's ``kinds`` that ``value`` is an instance of."""
    return next(kind.__name__ for kind in kinds if isinstance(value, kind))


def carries(comm: Any) -> tuple[Any, ...]:
    """Whether a communicator carries a large object: to this rank itself, or (an
    intercommunicator) between partners of equal rank in the two groups."""
    me = comm.Get_rank()
    peer: int | None = me
    if comm.Is_inter() and me >= min(comm.Get_size(), comm.Get_remote_size()):
        peer = None
    tag = new_tag()
    receive = send = None
    error: tuple[Any, ...] | None = None
    if peer is not None:
        try:
            receive = comm.irecv(inbox(), source=peer, tag=tag)
            send = comm.isend(payload("large", me), peer, tag)
        except Exception as exc:  # noqa: BLE001 - it is the outcome
            error = failure(exc)
    everyone = bool(CTL.allreduce(error is None, op=MPI.LAND))  # nobody waits for a failed send
    if peer is None:
        return ("carry", "unpaired", everyone)
    if error is not None or not everyone:
        cancel_and_wait(receive)
        if send is not None and error is None:
            finish(send)
        return ("carry", error)
    got = value_of(receive)
    finish(send)
    return ("carry", got == ("received", norm(payload("large", peer))))


def comm_of(value: Any) -> tuple[Any, ...]:
    """A communicator by kind, size, topology and whether it carries a large object."""
    kind = kind_of(value, COMM_KINDS)
    if value == MPI.COMM_NULL:
        return ("Comm", kind, "null")
    if value.Is_inter():
        return ("Comm", kind, value.Get_size(), value.Get_remote_size(), carries(value))
    return ("Comm", kind, value.Get_size(), value.Get_topology(), carries(value))


def norm(value: Any) -> Any:
    """A value comparable between mpi4py's objects and pkl5shim's."""
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return value
    if isinstance(value, np.ndarray):
        return ("ndarray", value.dtype.str, value.shape, zlib.crc32(value.tobytes()))
    if isinstance(value, p2p.Request):
        return ("Request", bool(value))
    if isinstance(value, RawRequest):
        return (kind_of(value, (MPI.Prequest, MPI.Grequest, RawRequest)), bool(value))
    if isinstance(value, (p2p.Message, RawMessage)):
        return ("Message", bool(value), value == MPI.MESSAGE_NO_PROC)
    if isinstance(value, RawComm):
        return comm_of(value)
    if isinstance(value, MPI.Status):
        return status_of(value)
    if isinstance(value, MPI.Group):
        if value == MPI.GROUP_NULL:
            return ("Group", "null")
        return ("Group", value.Get_size(), value.Get_rank())
    if isinstance(value, MPI.Info):
        return ("Info", "null") if value == MPI.INFO_NULL else ("Info", sorted(value.items()))
    if isinstance(value, MPI.Errhandler):
        known = (MPI.ERRHANDLER_NULL, MPI.ERRORS_RETURN, MPI.ERRORS_ARE_FATAL, MPI.ERRORS_ABORT)
        return ("Errhandler", [value == other for other in known])
    if isinstance(value, (list, tuple)):
        # (comm, request) of Idup/Ishrink: the request first, completed before the comm is used
        requests = [norm(item) for item in value if isinstance(item, (RawRequest, p2p.Request))]
        for item in value:
            if isinstance(item, (RawRequest, p2p.Request)) and not isinstance(item, MPI.Prequest):
                finish(item)
        rest = [norm(item) for item in value if not isinstance(item, (RawRequest, p2p.Request))]
        return (type(value).__name__, requests, rest)
    if isinstance(value, dict):
        return {key: norm(item) for key, item in value.items()}
    sized = len(value) if hasattr(value, "__len__") else None
    return (type(value).__name__, sized)


# -- completing what a call left behind -------------------------------------------
def _test(request: Any) -> bool:
    if isinstance(request, p2p.Request):
        return request.Test()
    return request.Test()


def finish(request: Any) -> bool:
    """Complete ``request`` (polling, with a deadline); False if it never completed."""
    if request is None or not request:
        return True
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        try:
            if _test(request):
                return True
        except Exception:  # noqa: BLE001 - an erroneous request is done with
            return True
    return False


def value_of(request: Any) -> Any:
    """The normalized object a receive request delivers, or why it delivered none."""
    if request is None:
        return ("no request",)
    end = time.monotonic() + DEADLINE
    try:
        while time.monotonic() < end:
            flag, obj = request.test()
            if flag:
                return ("received", norm(obj))
    except Exception as exc:  # noqa: BLE001 - it is the outcome
        return ("receive failed", failure(exc))
    cancel_and_wait(request)
    return ("no completion",)


def cancel_and_wait(request: Any) -> None:
    """Cancel a receive and complete it."""
    try:
        if request:
            request.Cancel()
            finish(request)
    except Exception:  # noqa: BLE001 - best effort
        pass


def drain(comm: Any, tag: int) -> None:
    """Receive what is left on ``comm``'s tag, and any payload stranded on its channel."""
    try:
        while comm.iprobe(source=MPI.ANY_SOURCE, tag=tag):
            comm.recv(source=MPI.ANY_SOURCE, tag=tag)
    except Exception:  # noqa: BLE001 - a raw receive of a header fails: its payload is drained below
        pass
    channel = transport.find(comm) if isinstance(comm, pkl5shim.Comm) else None
    if channel is None:
        return
    status = MPI.Status()
    while channel.comm.Iprobe(MPI.ANY_SOURCE, MPI.ANY_TAG, status):
        channel.comm.Recv(
            bytearray(status.Get_count(MPI.BYTE)), status.Get_source(), status.Get_tag()
        )


def dispose(value: Any) -> None:
    """Free communicators and persistent requests a call made; complete its requests."""
    if isinstance(value, (list, tuple)):
        for item in value:
            dispose(item)
    elif isinstance(value, RawComm):
        if value not in (MPI.COMM_NULL, MPI.COMM_WORLD, MPI.COMM_SELF):
            value.Free()
    elif isinstance(value, MPI.Prequest):
        if value:
            finish(value)
            value.Free()
    elif isinstance(value, (RawRequest, p2p.Request)):
        finish(value)


# -- one call -------------------------------------------------------------------
@dataclass
class Env:
    """One call of one attribute, on one side, in one form, in one situation."""

    side: str
    form: str
    cls: str
    name: str
    variant: str
    obj: Any = None
    tag: int = 0
    recvs: list[Any] = field(default_factory=list)
    sends: list[Any] = field(default_factory=list)
    made: list[Any] = field(default_factory=list)
    comms: list[Any] = field(default_factory=list)

    @property
    def base(self) -> Any:
        """The side's long-lived communicator."""
        return BASES[self.side]

    def call_on(self, target: Any, *args: Any, **kwargs: Any) -> Any:
        """Call the attribute under test on ``target`` in this form."""
        raw = ORIGINAL_CLASSES[self.cls]
        kind = attribute_kind(raw, self.name)
        # the reference calls mpi4py's own class (its objects are mpi4py's); the others
        # call the module attribute: a stand-in while enabled, for Comm/Request/Message
        named = raw if self.side == REFERENCE else getattr(MPI, self.cls)
        if kind == "property":
            assert not args and not kwargs
            if self.form == "bound":
                return getattr(target, self.name)
            return inspect.getattr_static(named, self.name).__get__(target, named)
        if self.form == "bound":
            return getattr(target, self.name)(*args, **kwargs)
        if kind == "classmethod":
            return getattr(named, self.name)(*args, **kwargs)
        return getattr(named, self.name)(target, *args, **kwargs)

    def call(self, *args: Any, **kwargs: Any) -> Any:
        """Call the attribute under test on ``obj``."""
        return self.call_on(self.obj, *args, **kwargs)

    def attempt_on(self, target: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        """``(outcome, value)`` of the call on ``target``; the value is None if it raised."""
        try:
            value = self.call_on(target, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - it is the outcome
            return failure(exc), None
        return ("ok", norm(value)), value

    def attempt(self, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        """``(outcome, value)`` of the call on ``obj``."""
        return self.attempt_on(self.obj, *args, **kwargs)

    def poll(self, done: Callable[[Any], bool], *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        """Repeat a test-like call until ``done(result)`` (or an exception, or the deadline)."""
        end = time.monotonic() + DEADLINE
        while True:
            try:
                value = self.call(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - it is the outcome
                return failure(exc), None
            if done(value) or time.monotonic() > end:
                return ("ok", norm(value), done(value)), value

    # communicator situations
    @property
    def me(self) -> int:
        """This rank in ``obj``."""
        return self.obj.Get_rank()

    @property
    def inter(self) -> bool:
        """Whether ``obj`` is an intercommunicator."""
        return bool(self.obj.Is_inter())

    @property
    def peer(self) -> int | None:
        """Whom this rank exchanges with: itself, or its partner in the remote group."""
        if not self.inter:
            return self.me
        paired = self.me < min(self.obj.Get_size(), self.obj.Get_remote_size())
        return self.me if paired else None

    def root(self) -> int:
        """The root argument of a rooted collective (rank 0 of group A on an intercomm)."""
        if not self.inter:
            return 0
        if WORLD_RANK % 2:
            return 0
        return MPI.ROOT if self.me == 0 else MPI.PROC_NULL

    def agree(self, ok: bool = True) -> bool:
        """Whether every rank got this far without failing (collective over the job)."""
        return bool(CTL.allreduce(bool(ok), op=MPI.LAND))

    def data(self) -> Any:
        """This rank's object for this variant."""
        return payload(self.variant, self.me)

    def close(self) -> list[str]:
        """Complete, receive and free what the call left; report what would not settle."""
        problems = []
        for request in self.recvs:
            if not finish(request):
                cancel_and_wait(request)
        for message in self.made:
            if isinstance(message, (RawMessage, p2p.Message)) and message:
                if message != MPI.MESSAGE_NO_PROC:
                    try:
                        message.recv()
                    except Exception:  # noqa: BLE001 - a raw receive of a header: drained below
                        pass
        for comm in self.comms:
            drain(comm, self.tag)
        for request in self.sends:
            end = time.monotonic() + DEADLINE
            done = not request or _test(request)
            while not done and time.monotonic() < end:
                for comm in self.comms:
                    drain(comm, self.tag)
                done = _test(request)
            if not done:
                problems.append(f"{self.cls}.{self.name} [{self.form}] {self.side}: send stuck")
        for value in self.made:
            try:
                dispose(value)
            except Exception as exc:  # noqa: BLE001 - reported
                problems.append(f"{self.cls}.{self.name} [{self.form}] {self.side}: {exc!r}")
        return problems


def attribute_kind(raw: type, name: str) -> str:
    """'property', 'classmethod', 'method' or 'other' for mpi4py's attribute."""
    static = inspect.getattr_static(raw, name)
    if isinstance(static, (property, type(RawComm.rank))):
        return "property"
    if isinstance(static, (classmethod, staticmethod)):
        return "classmethod"
    return "method" if callable(static) else "other"


def public_names(raw: type) -> list[str]:
    """mpi4py's public attribute names of ``raw``."""
    return [name for name in dir(raw) if not name.startswith("_")]


# -- recipes: requests ----------------------------------------------------------------
def request_situation(env: Env, kind: str) -> Any:
    """A request of ``env.base`` in the situation ``kind``; what it leaves is tracked."""
    base, me, tag = env.base, env.base.Get_rank(), env.tag
    env.comms.append(base)
    size = "large" if kind.endswith("large") else "small"
    if kind == "null":
        send = base.isend(payload("small", me), me, tag)
        base.recv(source=me, tag=tag)
        send.wait()
        return send
    receive = base.irecv(inbox(), source=me, tag=tag)
    env.recvs.append(receive)
    if kind == "recv_unmatched":
        return receive
    send = base.isend(payload(size, me), me, tag)
    env.sends.append(send)
    return send if kind.startswith("send") else receive


def r_single(done: Callable[[Any], bool] | None, with_status: bool = True) -> Callable[[Env], Any]:
    """test/wait/get_status of one request: polled until done for the test-like ones."""

    def recipe(env: Env) -> Any:
        env.obj = request_situation(env, env.variant)
        status = MPI.Status() if with_status and "recv" in env.variant else None
        args = (status,) if status is not None else ()
        out, _ = env.poll(done, *args) if done else env.attempt(*args)
        return out, status_of(status) if status is not None else None

    return recipe


def r_cancel(env: Env) -> Any:
    """Cancel a receive nothing matches (or a null request), then wait for it."""
    env.obj = request_situation(env, env.variant)
    out, _ = env.attempt()
    status = MPI.Status()
    try:
        env.obj.wait(status)
    except Exception as exc:  # noqa: BLE001 - it is the outcome
        return out, failure(exc)
    return out, status.Is_cancelled(), bool(env.obj)


def r_free(env: Env) -> Any:
    """Free a request; the operation still completes."""
    env.obj = request_situation(env, env.variant)
    env.recvs = [req for req in env.recvs if req is not env.obj]
    env.sends = [req for req in env.sends if req is not env.obj]
    out, _ = env.attempt()
    return out, bool(env.obj), env.obj == MPI.REQUEST_NULL


def r_handle_value(null_value: Callable[[], int]) -> Callable[[Env], Any]:
    """handle/toint/py2f: an int, null or not."""

    def recipe(env: Env) -> Any:
        env.obj = request_situation(env, env.variant)
        out, value = env.attempt()
        if out[0] != "ok":
            return out
        return ("ok", type(value).__name__, value == null_value())

    return recipe


def r_from_handle(handle: Callable[[], int]) -> Callable[[Env], Any]:
    """fromhandle/fromint/f2py of the null request's handle."""

    def recipe(env: Env) -> Any:
        env.obj = request_situation(env, "null")
        out, value = env.attempt(handle())
        return out, isinstance(value, MPI.Request), value == MPI.REQUEST_NULL

    return recipe


def r_list(shape: str, done: Callable[[Any], bool] | None, statuses: str) -> Callable[[Env], Any]:
    """A class method over a list of requests (``all``: receive and send; else null + receive)."""

    def recipe(env: Env) -> Any:
        null = request_situation(env, "null")
        if env.variant == "empty":
            requests: list[Any] = []
            env.obj = null
        else:
            receive = request_situation(env, f"recv_{env.variant}")
            requests = [receive, env.sends[-1]] if shape == "all" else [null, receive]
            env.obj = receive
        given: Any = None
        if statuses == "list":
            given = [MPI.Status() for _ in requests]
        elif statuses == "one":
            given = MPI.Status()
        out, _ = (
            env.poll(done, requests, given) if done and requests else env.attempt(requests, given)
        )
        shown = [status_of(st) for st in given] if isinstance(given, list) else given
        if isinstance(given, MPI.Status):
            shown = status_of(given)
        if shape == "all" and isinstance(shown, list) and len(shown) == 2:
            shown = shown[:1]  # a send's status is not defined
        return out, shown, [bool(req) for req in requests]

    return recipe


def _flag0(result: Any) -> bool:
    return bool(result[0])


def _flag1(result: Any) -> bool:
    return bool(result[1])


def _some(result: Any) -> bool:
    return result is None or len(result) > 0


def _some0(result: Any) -> bool:
    return result[0] is None or len(result[0]) > 0


def _truth(result: Any) -> bool:
    return bool(result)


SINGLE = ("null", "send_small", "send_large", "recv_small", "recv_large")
LISTS = ("small", "large", "empty")


@dataclass
class Recipe:
    """How to call one attribute, and in which situations."""

    run: Callable[[Env], Any]
    variants: tuple[str, ...] = ("",)


REQUEST_RECIPES: dict[str, Recipe] = {
    "test": Recipe(r_single(_flag0), SINGLE),
    "Test": Recipe(r_single(_truth), SINGLE),
    "get_status": Recipe(r_single(_truth), SINGLE),
    "Get_status": Recipe(r_single(_truth), SINGLE),
    "wait": Recipe(r_single(None), SINGLE),
    "Wait": Recipe(r_single(None), SINGLE),
    "cancel": Recipe(r_cancel, ("recv_unmatched", "null")),
    "Cancel": Recipe(r_cancel, ("recv_unmatched", "null")),
    "free": Recipe(r_free, SINGLE),
    "Free": Recipe(r_free, SINGLE),
    "handle": Recipe(r_handle_value(lambda: MPI.REQUEST_NULL.handle), SINGLE),
    "toint": Recipe(r_handle_value(lambda: MPI.REQUEST_NULL.toint()), SINGLE),
    "py2f": Recipe(r_handle_value(lambda: MPI.REQUEST_NULL.py2f()), SINGLE),
    "fromhandle": Recipe(r_from_handle(lambda: MPI.REQUEST_NULL.handle)),
    "fromint": Recipe(r_from_handle(lambda: MPI.REQUEST_NULL.toint())),
    "f2py": Recipe(r_from_handle(lambda: MPI.REQUEST_NULL.py2f())),
    "waitall": Recipe(r_list("all", None, "list"), LISTS),
    "Waitall": Recipe(r_list("all", None, "list"), LISTS),
    "testall": Recipe(r_list("all", _flag0, "list"), LISTS),
    "Testall": Recipe(r_list("all", _truth, "list"), LISTS),
    "get_status_all": Recipe(r_list("all", _truth, "list"), LISTS),
    "Get_status_all": Recipe(r_list("all", _truth, "list"), LISTS),
    "waitany": Recipe(r_list("any", None, "one"), LISTS),
    "Waitany": Recipe(r_list("any", None, "one"), LISTS),
    "testany": Recipe(r_list("any", _flag1, "one"), LISTS),
    "Testany": Recipe(r_list("any", _flag1, "one"), LISTS),
    "get_status_any": Recipe(r_list("any", _flag1, "one"), LISTS),
    "Get_status_any": Recipe(r_list("any", _flag1, "one"), LISTS),
    "waitsome": Recipe(r_list("some", None, "list"), LISTS),
    "Waitsome": Recipe(r_list("some", None, "list"), LISTS),
    "testsome": Recipe(r_list("some", _some0, "list"), LISTS),
    "Testsome": Recipe(r_list("some", _some, "list"), LISTS),
    "get_status_some": Recipe(r_list("some", _some, "list"), LISTS),
    "Get_status_some": Recipe(r_list("some", _some, "list"), LISTS),
}


def r_request_generic(env: Env) -> Any:
    """A request name without a recipe: called with no arguments on a pending receive."""
    env.obj = request_situation(env, "recv_small")
    out, value = env.attempt()
    env.made.append(value)
    return out


# -- recipes: persistent requests -------------------------------------------------------
def persistent_pair(env: Env) -> tuple[MPI.Prequest, MPI.Prequest, np.ndarray]:
    """A persistent receive and a persistent send of the side's base, to this rank."""
    base, me = env.base, env.base.Get_rank()
    inbox = np.zeros(4, "i4")
    receive = base.Recv_init(inbox, me, env.tag)
    send = base.Send_init(np.full(4, me + 1, "i4"), me, env.tag)
    env.made += [receive, send]
    return receive, send, inbox


def r_start(env: Env) -> Any:
    """Start a persistent receive (the send bound), complete both."""
    receive, send, inbox = persistent_pair(env)
    env.obj = receive
    out, _ = env.attempt()
    send.Start()
    return out, finish(receive) if receive else None, finish(send), inbox.tolist()


def r_startall(env: Env) -> Any:
    """Start both persistent requests through ``Startall``."""
    receive, send, inbox = persistent_pair(env)
    env.obj = receive
    out, _ = env.attempt([receive, send])
    return out, finish(receive), finish(send), inbox.tolist()


def r_prequest_generic(env: Env) -> Any:
    """A persistent-request name without a recipe: no arguments, on an inactive receive."""
    receive, _send, _inbox = persistent_pair(env)
    env.obj = receive
    out, value = env.attempt()
    env.made.append(value)
    return out


def r_prequest_handle(back: Callable[[int], Any]) -> Callable[[Env], Any]:
    """handle/toint/py2f of a persistent request: an int that gives it back."""

    def recipe(env: Env) -> Any:
        receive, _send, _inbox = persistent_pair(env)
        env.obj = receive
        out, value = env.attempt()
        if out[0] != "ok":
            return out
        return ("ok", type(value).__name__, back(value) == receive)

    return recipe


PREQUEST_RECIPES = {
    "Start": Recipe(r_start),
    "Startall": Recipe(r_startall),
    "handle": Recipe(r_prequest_handle(RawRequest.fromhandle)),
    "toint": Recipe(r_prequest_handle(RawRequest.fromint)),
    "py2f": Recipe(r_prequest_handle(RawRequest.f2py)),
}


# -- recipes: messages ----------------------------------------------------------------
def message_situation(env: Env, kind: str) -> tuple[Any, MPI.Status]:
    """A matched message of the side's base: small, large, no-process or null."""
    base, me = env.base, env.base.Get_rank()
    env.comms.append(base)
    status = MPI.Status()
    if kind == "noproc":
        return base.mprobe(MPI.PROC_NULL, env.tag, status), status
    env.sends.append(base.isend(payload("large" if kind == "large" else "small", me), me, env.tag))
    message = base.mprobe(me, env.tag, status)
    env.made.append(message)
    if kind == "null":
        message.recv()
    return message, status


def r_message_recv(env: Env) -> Any:
    """recv of a matched message, with a status."""
    env.obj, _ = message_situation(env, env.variant)
    status = MPI.Status()
    out, _ = env.attempt(status)
    return out, status_of(status), bool(env.obj)


def r_message_irecv(env: Env) -> Any:
    """irecv of a matched message, then the object it delivers."""
    env.obj, _ = message_situation(env, env.variant)
    out, request = env.attempt()
    return out, value_of(request), bool(env.obj)


def r_message_buffer(nonblocking: bool) -> Callable[[Env], Any]:
    """Recv/Irecv of a small message's bytes: the same pickle on both sides."""

    def recipe(env: Env) -> Any:
        env.obj, probed = message_situation(env, env.variant)
        buf = bytearray(max(probed.Get_count(MPI.BYTE), 0))
        status = MPI.Status()
        out, request = env.attempt(buf) if nonblocking else env.attempt(buf, status)
        if nonblocking and request is not None:
            request.Wait(status)
        got = pickle.loads(buf) if len(buf) else None
        return out, norm(got), status_of(status)

    return recipe


def r_message_probe(poll: bool, buffers: bool = False) -> Callable[[Env], Any]:
    """probe/iprobe/Probe/Iprobe (class methods) after a send to this rank; then receive.

    A message of ``Probe``/``Iprobe`` is received with ``Recv`` (mpi4py's lowercase
    ``recv`` needs the size its own ``probe`` recorded).
    """

    def recipe(env: Env) -> Any:
        base, me = env.base, env.base.Get_rank()
        env.comms.append(base)
        env.obj, _ = message_situation(env, "noproc")  # something to call a class method on
        source = MPI.PROC_NULL if env.variant == "noproc" else me
        if env.variant != "noproc":
            env.sends.append(base.isend(payload(env.variant, me), me, env.tag))
        status = MPI.Status()
        if poll:
            out, message = env.poll(lambda found: found is not None, base, source, env.tag, status)
        else:
            out, message = env.attempt(base, source, env.tag, status)
        if message is None:
            got = None
        elif buffers:
            data = bytearray(max(status.Get_count(MPI.BYTE), 0))
            message.Recv(data)
            got = norm(pickle.loads(data)) if data else None
        else:
            got = norm(message.recv())
        return out, got, status_of(status)

    return recipe


def r_message_free(env: Env) -> Any:
    """free of a message (does nothing in mpi4py)."""
    env.obj, _ = message_situation(env, env.variant)
    out, _ = env.attempt()
    return out, bool(env.obj)


def r_message_value(null: Callable[[], int], noproc: Callable[[], int]) -> Callable[[Env], Any]:
    """handle/toint/py2f of a message: null, no-process or another."""

    def recipe(env: Env) -> Any:
        env.obj, _ = message_situation(env, env.variant)
        out, value = env.attempt()
        if out[0] != "ok":
            return out
        return ("ok", type(value).__name__, value == null(), value == noproc())

    return recipe


def r_message_from(handle: Callable[[], int]) -> Callable[[Env], Any]:
    """fromhandle/fromint/f2py of the no-process message's handle."""

    def recipe(env: Env) -> Any:
        env.obj, _ = message_situation(env, "noproc")
        out, value = env.attempt(handle())
        return out, isinstance(value, MPI.Message)

    return recipe


NOPROC = MPI.MESSAGE_NO_PROC
# Receiving MPI.MESSAGE_NULL is an error on a null communicator; the Open MPI wheel's
# handler there is fatal (the job aborts with mpi4py's own message too): not tried there.
NULL_RECEIVE = () if "Open MPI" in MPI.Get_library_version() else ("null",)
MESSAGE_RECIPES: dict[str, Recipe] = {
    "recv": Recipe(r_message_recv, ("small", "large", "noproc", *NULL_RECEIVE)),
    "irecv": Recipe(r_message_irecv, ("small", "large", "noproc", *NULL_RECEIVE)),
    "Recv": Recipe(r_message_buffer(False), ("small", "noproc")),
    "Irecv": Recipe(r_message_buffer(True), ("small", "noproc")),
    "probe": Recipe(r_message_probe(False), ("small", "large", "noproc")),
    "iprobe": Recipe(r_message_probe(True), ("small", "large", "noproc")),
    "Probe": Recipe(r_message_probe(False, True), ("small", "noproc")),
    "Iprobe": Recipe(r_message_probe(True, True), ("small", "noproc")),
    "free": Recipe(r_message_free, ("small", "noproc", "null")),
    "handle": Recipe(
        r_message_value(lambda: MPI.MESSAGE_NULL.handle, lambda: NOPROC.handle),
        ("small", "noproc", "null"),
    ),
    "toint": Recipe(
        r_message_value(lambda: MPI.MESSAGE_NULL.toint(), NOPROC.toint), ("small", "noproc", "null")
    ),
    "py2f": Recipe(
        r_message_value(lambda: MPI.MESSAGE_NULL.py2f(), NOPROC.py2f), ("small", "noproc", "null")
    ),
    "fromhandle": Recipe(r_message_from(lambda: NOPROC.handle)),
    "fromint": Recipe(r_message_from(NOPROC.toint)),
    "f2py": Recipe(r_message_from(NOPROC.py2f)),
}


def r_message_generic(env: Env) -> Any:
    """A message name without a recipe: called with no arguments on a small message."""
    env.obj, _ = message_situation(env, "small")
    out, value = env.attempt()
    env.made.append(value)
    return out


# -- recipes: communicators -------------------------------------------------------------
P2P = ("small", "large")


def prepost(env: Env, buffers: bool) -> Any:
    """A receive from the peer posted before the peer sends (bound, the side's own)."""
    if env.peer is None:
        return None
    if buffers:
        inbox = np.zeros(4, "i4")
        request = env.obj.Irecv(inbox, env.peer, env.tag)
        env.recvs.append(request)
        return request, inbox
    request = env.obj.irecv(inbox(), source=env.peer, tag=env.tag)
    env.recvs.append(request)
    return request


def presend(env: Env, buffers: bool) -> bool:
    """The peer's message sent before the call under test receives it (bound, the side's own)."""
    if env.peer is None:
        return True
    try:
        if buffers:
            env.sends.append(env.obj.Isend(np.full(4, env.me + 1, "i4"), env.peer, env.tag))
        else:
            env.sends.append(env.obj.isend(env.data(), env.peer, env.tag))
    except Exception:  # noqa: BLE001 - reported through agree()
        return False
    return True


def r_send(blocking: bool) -> Callable[[Env], Any]:
    """send/ssend/bsend and their nonblocking forms, received by a preposted irecv."""

    def recipe(env: Env) -> Any:
        receive = prepost(env, False)
        env.agree()
        if env.peer is None:
            return ("unpaired",)
        out, request = env.attempt(env.data(), env.peer, env.tag)
        if not blocking and request is not None:
            env.sends.append(request)
        return out, value_of(receive)

    return recipe


def r_send_buffer(blocking: bool) -> Callable[[Env], Any]:
    """Send/Ssend/Bsend/Rsend and their nonblocking forms of four ints."""

    def recipe(env: Env) -> Any:
        posted = prepost(env, True)
        env.agree()
        if posted is None:
            return ("unpaired",)
        out, request = env.attempt(np.full(4, env.me + 1, "i4"), env.peer, env.tag)
        if not blocking and request is not None:
            env.sends.append(request)
        return out, finish(posted[0]), posted[1].tolist()

    return recipe


def r_send_init(env: Env) -> Any:
    """Send_init and its modes: started once, received by a preposted Irecv."""
    posted = prepost(env, True)
    env.agree()
    if posted is None:
        return ("unpaired",)
    out, request = env.attempt(np.full(4, env.me + 1, "i4"), env.peer, env.tag)
    if request is not None:
        env.made.append(request)
        request.Start()
        env.sends.append(request)
    return out, finish(posted[0]), posted[1].tolist()


def r_recv_init(env: Env) -> Any:
    """Recv_init: started, then the peer sends."""
    if env.peer is None:
        env.agree()
        return ("unpaired",)
    inbox = np.zeros(4, "i4")
    out, request = env.attempt(inbox, env.peer, env.tag)
    if request is not None:
        env.made.append(request)
        request.Start()
    env.agree(presend(env, True))
    return out, finish(request), inbox.tolist()


def r_recv(env: Env) -> Any:
    """recv after the peer sent, with a status."""
    if not env.agree(presend(env, False)):
        return ("peer could not send",)
    if env.peer is None:
        return ("unpaired",)
    status = MPI.Status()
    out, _ = env.attempt(None, env.peer, env.tag, status)
    return out, status_of(status)


def r_irecv(env: Env) -> Any:
    """irecv, then the peer sends; the object it delivers."""
    out, request = env.attempt(inbox(), env.peer, env.tag) if env.peer is not None else (None, None)
    env.agree(presend(env, False))
    if env.peer is None:
        return ("unpaired",)
    return out, value_of(request)


def r_recv_buffer(env: Env) -> Any:
    """Recv of four ints after the peer sent them."""
    if not env.agree(presend(env, True)):
        return ("peer could not send",)
    if env.peer is None:
        return ("unpaired",)
    inbox, status = np.zeros(4, "i4"), MPI.Status()
    out, _ = env.attempt(inbox, env.peer, env.tag, status)
    return out, inbox.tolist(), status_of(status)


def r_irecv_buffer(env: Env) -> Any:
    """Irecv of four ints, then the peer sends them."""
    inbox = np.zeros(4, "i4")
    out, request = env.attempt(inbox, env.peer, env.tag) if env.peer is not None else (None, None)
    env.agree(presend(env, True))
    if env.peer is None:
        return ("unpaired",)
    return out, finish(request), inbox.tolist()


def r_sendrecv(env: Env) -> Any:
    """sendrecv with the peer."""
    env.agree()
    if env.peer is None:
        return ("unpaired",)
    status = MPI.Status()
    out, _ = env.attempt(env.data(), env.peer, env.tag, None, env.peer, env.tag, status)
    return out, status_of(status)


def r_sendrecv_buffer(kind: str) -> Callable[[Env], Any]:
    """Sendrecv, Sendrecv_replace, Isendrecv, Isendrecv_replace of four ints."""

    def recipe(env: Env) -> Any:
        env.agree()
        if env.peer is None:
            return ("unpaired",)
        mine, inbox, status = np.full(4, env.me + 1, "i4"), np.zeros(4, "i4"), MPI.Status()
        peer, tag = env.peer, env.tag
        if kind == "Sendrecv":
            out, _ = env.attempt(mine, peer, tag, inbox, peer, tag, status)
        elif kind == "Sendrecv_replace":
            inbox = mine
            out, _ = env.attempt(inbox, peer, tag, peer, tag, status)
        elif kind == "Isendrecv":
            out, request = env.attempt(mine, peer, tag, inbox, peer, tag)
            finish(request)
        else:
            inbox = mine
            out, request = env.attempt(inbox, peer, tag, peer, tag)
            finish(request)
        return out, inbox.tolist(), status_of(status) if kind.startswith("S") else None

    return recipe


def r_probe(poll: str, matched: bool, buffers: bool) -> Callable[[Env], Any]:
    """probe/iprobe/mprobe/improbe (and uppercase) after the peer sent; then receive."""

    def recipe(env: Env) -> Any:
        if not env.agree(presend(env, buffers)):
            return ("peer could not send",)
        if env.peer is None:
            return ("unpaired",)
        status = MPI.Status()
        if poll:
            done = (lambda found: found is not None) if matched else bool
            out, found = env.poll(done, env.peer, env.tag, status)
        else:
            out, found = env.attempt(env.peer, env.tag, status)
        inbox = np.zeros(4, "i4")
        if matched and found is not None:
            got = found.Recv(inbox) if buffers else norm(found.recv())
        elif not matched:
            got = (
                env.obj.Recv(inbox, env.peer, env.tag)
                if buffers
                else norm(env.obj.recv(source=env.peer, tag=env.tag))
            )
        else:
            got = None
        return out, got, inbox.tolist() if buffers else None, status_of(status)

    return recipe


def rooted_send(env: Env) -> bool:
    """Whether this rank holds the data of a rooted collective."""
    root = env.root()
    return root == MPI.ROOT or (root == 0 and not env.inter and env.me == 0)


def count_of(env: Env) -> int:
    """How many items a scatter/alltoall takes here."""
    return env.obj.Get_remote_size() if env.inter else env.obj.Get_size()


def number(env: Env) -> Any:
    """What a rank reduces: an int, or a 1 MiB array."""
    if env.variant == "large":
        return np.full(1 << 17, env.me + 1, dtype="f8")
    return env.me + 1


COLLECTIVE_CALLS: dict[str, Callable[[Env], tuple[Any, ...]]] = {
    "bcast": lambda env: (env.data() if rooted_send(env) else None, env.root()),
    "gather": lambda env: (env.data(), env.root()),
    "scatter": lambda env: (
        [payload(env.variant, i) for i in range(count_of(env))] if rooted_send(env) else None,
        env.root(),
    ),
    "allgather": lambda env: (env.data(),),
    "alltoall": lambda env: ([env.data()] * count_of(env),),
    "reduce": lambda env: (number(env), MPI.SUM, env.root()),
    "allreduce": lambda env: (number(env), MPI.SUM),
    "scan": lambda env: (number(env), MPI.SUM),
    "exscan": lambda env: (number(env), MPI.SUM),
    "neighbor_allgather": lambda env: (env.data(),),
    "neighbor_alltoall": lambda env: ([env.data()] * env.obj.outdegree,),
}


def r_collective(env: Env) -> Any:
    """A lowercase collective with this rank's arguments."""
    out, _ = env.attempt(*COLLECTIVE_CALLS[env.name](env))
    return out


def r_buffer_collective(env: Env) -> Any:
    """Bcast/Ibcast/Bcast_init, Allreduce/Iallreduce of four ints."""
    mine = np.full(4, env.me + 1, "i4")
    if env.name.endswith(("bcast", "Bcast", "Bcast_init")):
        root = env.root()
        buf = mine if rooted_send(env) or root == MPI.PROC_NULL else np.zeros(4, "i4")
        args: tuple[Any, ...] = (buf, root)
    else:
        buf = np.zeros(4, "i4")
        args = (mine, buf, MPI.SUM)
    out, request = env.attempt(*args)
    if isinstance(request, MPI.Prequest):
        env.made.append(request)
        request.Start()
    finish(request) if isinstance(request, RawRequest) else None
    return out, buf.tolist()


def r_derive(arguments: Callable[[Env], tuple[Any, ...]]) -> Callable[[Env], Any]:
    """A call that makes a communicator; its kind and whether it carries a large object."""

    def recipe(env: Env) -> Any:
        out, value = env.attempt(*arguments(env))
        env.made.append(value)
        return out

    return recipe


def ring_graph(env: Env) -> tuple[list[int], list[int]]:
    """index and edges of a ring in which each rank's one neighbour is its right one."""
    count = env.obj.Get_size()
    return [i + 1 for i in range(count)], [(i + 1) % count for i in range(count)]


def r_create_intercomm(env: Env) -> Any:
    """Create_intercomm of the even and odd halves of ``obj`` (needs two ranks)."""
    if env.obj.Get_size() < 2:
        return ("needs two ranks",)
    local = env.obj.Split(env.me % 2, env.me)
    env.made.append(local)
    out, value = env.attempt_on(local, 0, env.obj, 1 - env.me % 2, env.tag)
    env.made.insert(0, value)
    return out


def r_attr(action: str) -> Callable[[Env], Any]:
    """Get_attr/Set_attr/Delete_attr with a keyval of mpi4py's."""

    def recipe(env: Env) -> Any:
        keyval = RawComm.Create_keyval()
        try:
            if action != "Set_attr":
                env.obj.Set_attr(keyval, "value")
            out, _ = env.attempt(keyval, "value") if action == "Set_attr" else env.attempt(keyval)
            return out, env.obj.Get_attr(keyval)
        finally:
            if env.obj != MPI.COMM_NULL:
                env.obj.Delete_attr(keyval)
            RawComm.Free_keyval(keyval)

    return recipe


def r_create_keyval(env: Env) -> Any:
    """Create_keyval: an int (not compared by value), freed again."""
    out, value = env.attempt()
    if value is not None:
        RawComm.Free_keyval(value)
    return out[0], type(value).__name__


def r_free_keyval(env: Env) -> Any:
    """Free_keyval of a fresh keyval."""
    out, _ = env.attempt(RawComm.Create_keyval())
    return out


def r_then(
    args: Callable[[Env], tuple[Any, ...]],
    after: Callable[[Env], Any],
    before: Callable[[Env], Any] | None = None,
) -> Callable[[Env], Any]:
    """The call, preceded and followed by bound calls whose results are compared too."""

    def recipe(env: Env) -> Any:
        if before is not None:
            before(env)
        out, value = env.attempt(*args(env))
        env.made.append(value)
        try:
            later = norm(after(env))
        except Exception as exc:  # noqa: BLE001 - it is part of the outcome
            later = failure(exc)
        return out, later

    return recipe


def r_comm_handle(back: Callable[[int], Any]) -> Callable[[Env], Any]:
    """handle/toint/py2f: an int that gives the same communicator back."""

    def recipe(env: Env) -> Any:
        out, value = env.attempt()
        if out[0] != "ok":
            return out
        return ("ok", type(value).__name__, back(value) == env.obj)

    return recipe


def r_comm_from(handle: Callable[[Any], int]) -> Callable[[Env], Any]:
    """fromhandle/fromint/f2py of ``obj``'s handle: the same communicator (never freed)."""

    def recipe(env: Env) -> Any:
        out, value = env.attempt(handle(env.obj))
        return out, value == env.obj if value is not None else None

    return recipe


def r_iagree(env: Env) -> Any:
    """Iagree of a one-int flag buffer."""
    flag = np.ones(1, "i4")
    out, request = env.attempt(flag)
    finish(request)
    return out, flag.tolist()


def _no_args(_env: Env) -> tuple[Any, ...]:
    return ()


def _attach(env: Env) -> None:
    env.obj.Attach_buffer(bytearray(1 << 16))


COMM_RECIPES: dict[str, Recipe] = {
    **{name: Recipe(r_send(True), P2P) for name in ("send", "ssend", "bsend")},
    **{name: Recipe(r_send(False), P2P) for name in ("isend", "issend", "ibsend")},
    **{name: Recipe(r_send_buffer(True)) for name in ("Send", "Ssend", "Bsend", "Rsend")},
    **{name: Recipe(r_send_buffer(False)) for name in ("Isend", "Issend", "Ibsend", "Irsend")},
    **{
        name: Recipe(r_send_init)
        for name in ("Send_init", "Ssend_init", "Bsend_init", "Rsend_init")
    },
    "Recv_init": Recipe(r_recv_init),
    "recv": Recipe(r_recv, P2P),
    "irecv": Recipe(r_irecv, P2P),
    "Recv": Recipe(r_recv_buffer),
    "Irecv": Recipe(r_irecv_buffer),
    "sendrecv": Recipe(r_sendrecv, P2P),
    **{
        name: Recipe(r_sendrecv_buffer(name))
        for name in ("Sendrecv", "Sendrecv_replace", "Isendrecv", "Isendrecv_replace")
    },
    "probe": Recipe(r_probe("", False, False), P2P),
    "iprobe": Recipe(r_probe("poll", False, False), P2P),
    "mprobe": Recipe(r_probe("", True, False), P2P),
    "improbe": Recipe(r_probe("poll", True, False), P2P),
    "Probe": Recipe(r_probe("", False, True)),
    "Iprobe": Recipe(r_probe("poll", False, True)),
    "Mprobe": Recipe(r_probe("", True, True)),
    "Improbe": Recipe(r_probe("poll", True, True)),
    **{name: Recipe(r_collective, P2P) for name in COLLECTIVE_CALLS},
    **{
        name: Recipe(r_buffer_collective)
        for name in ("Bcast", "Ibcast", "Bcast_init", "Allreduce", "Iallreduce")
    },
    "Dup": Recipe(r_derive(_no_args)),
    "Clone": Recipe(r_derive(_no_args)),
    "Idup": Recipe(r_derive(_no_args)),
    "Dup_with_info": Recipe(r_derive(lambda env: (MPI.INFO_NULL,))),
    "Idup_with_info": Recipe(r_derive(lambda env: (MPI.INFO_NULL,))),
    "Split": Recipe(r_derive(lambda env: (0, env.me))),
    "Split_type": Recipe(r_derive(lambda env: (MPI.COMM_TYPE_SHARED,))),
    "Create": Recipe(r_derive(lambda env: (env.obj.Get_group(),))),
    "Create_group": Recipe(r_derive(lambda env: (env.obj.Get_group(),))),
    "Create_cart": Recipe(r_derive(lambda env: ([env.obj.Get_size()], [True]))),
    "Create_graph": Recipe(r_derive(ring_graph)),
    "Create_dist_graph_adjacent": Recipe(
        r_derive(
            lambda env: ([(env.me - 1) % env.obj.Get_size()], [(env.me + 1) % env.obj.Get_size()])
        )
    ),
    "Create_dist_graph": Recipe(
        r_derive(lambda env: ([env.me], [1], [(env.me + 1) % env.obj.Get_size()]))
    ),
    "Create_intercomm": Recipe(r_create_intercomm),
    "Merge": Recipe(r_derive(lambda env: (WORLD_RANK % 2 == 1,))),
    "Sub": Recipe(r_derive(lambda env: ([True],))),
    "Create_from_group": Recipe(r_derive(lambda env: (env.obj.Get_group(), "org.pkl5shim.t"))),
    "Create_from_groups": Recipe(
        r_derive(
            lambda env: (env.obj.Get_group(), 0, env.obj.Get_remote_group(), 0, "org.pkl5shim.t")
        )
    ),
    "Get_attr": Recipe(r_attr("Get_attr")),
    "Set_attr": Recipe(r_attr("Set_attr")),
    "Delete_attr": Recipe(r_attr("Delete_attr")),
    "Create_keyval": Recipe(r_create_keyval),
    "Free_keyval": Recipe(r_free_keyval),
    "Create_errhandler": Recipe(r_derive(lambda env: (lambda comm, code: None,))),
    "Set_errhandler": Recipe(
        r_then(lambda env: (MPI.ERRORS_RETURN,), lambda env: env.obj.Get_errhandler())
    ),
    "Call_errhandler": Recipe(
        r_then(
            lambda env: (MPI.ERR_OTHER,),
            lambda env: None,
            lambda env: env.obj.Set_errhandler(MPI.ERRORS_RETURN),
        )
    ),
    "Set_name": Recipe(r_then(lambda env: ("conformance",), lambda env: env.obj.Get_name())),
    "Set_info": Recipe(
        r_then(lambda env: (MPI.Info.Create({"pkl5": "1"}),), lambda env: env.obj.Get_info())
    ),
    "Compare": Recipe(r_then(lambda env: (MPI.COMM_WORLD,), lambda env: None)),
    "Attach_buffer": Recipe(
        r_then(lambda env: (bytearray(1 << 16),), lambda env: env.obj.Detach_buffer())
    ),
    "Detach_buffer": Recipe(r_then(_no_args, lambda env: None, _attach)),
    "Agree": Recipe(r_derive(lambda env: (1,))),
    "Iagree": Recipe(r_iagree),
    "Cart_map": Recipe(r_derive(lambda env: ([env.obj.Get_size()], [True]))),
    "Graph_map": Recipe(r_derive(ring_graph)),
    "Get_cart_rank": Recipe(r_derive(lambda env: ([env.me],))),
    "Get_coords": Recipe(r_derive(lambda env: (env.me,))),
    "Shift": Recipe(r_derive(lambda env: (0, 1))),
    "Get_neighbors": Recipe(r_derive(lambda env: (env.me,))),
    "Get_neighbors_count": Recipe(r_derive(lambda env: (env.me,))),
    "handle": Recipe(r_comm_handle(RawComm.fromhandle)),
    "toint": Recipe(r_comm_handle(RawComm.fromint)),
    "py2f": Recipe(r_comm_handle(RawComm.f2py)),
    "fromhandle": Recipe(r_comm_from(lambda comm: comm.handle)),
    "fromint": Recipe(r_comm_from(lambda comm: comm.toint())),
    "f2py": Recipe(r_comm_from(lambda comm: comm.py2f())),
}


def r_comm_generic(env: Env) -> Any:
    """A communicator name without a recipe: called with no arguments."""
    out, value = env.attempt()
    env.made.append(value)
    return out


# -- fresh communicators of each class --------------------------------------------------
def make_intercomm(base: Any) -> Any:
    """Even against odd ranks of ``base`` (None on one rank: no remote group)."""
    if base.Get_size() < 2:
        return None
    me = base.Get_rank()
    local = base.Split(me % 2, me)
    try:
        return local.Create_intercomm(0, base, 1 - me % 2, 77)
    finally:
        local.Free()


def make_graph(base: Any) -> Any:
    """A ring graph communicator of ``base``."""
    count = base.Get_size()
    return base.Create_graph([i + 1 for i in range(count)], [(i + 1) % count for i in range(count)])


FACTORIES: dict[str, Callable[[Any], Any]] = {
    "Comm": lambda base: base.Dup(),
    "Intracomm": lambda base: base.Dup(),
    "Intercomm": make_intercomm,
    "Cartcomm": lambda base: base.Create_cart([base.Get_size()], periods=[True]),
    "Graphcomm": make_graph,
    "Distgraphcomm": lambda base: base.Create_dist_graph_adjacent(
        [(base.Get_rank() - 1) % base.Get_size()], [(base.Get_rank() + 1) % base.Get_size()]
    ),
}


# -- the driver -------------------------------------------------------------------------
def recipes_of(cls: str) -> tuple[dict[str, Recipe], Recipe]:
    """The recipe table of a class, and its recipe for names without one."""
    if cls == "Request":
        return REQUEST_RECIPES, Recipe(r_request_generic)
    if cls == "Prequest":
        return PREQUEST_RECIPES, Recipe(r_prequest_generic)
    if cls == "Message":
        return MESSAGE_RECIPES, Recipe(r_message_generic)
    return COMM_RECIPES, Recipe(r_comm_generic)


def excluded_of(cls: str) -> dict[str, str]:
    """The names of ``cls`` never called, with reasons."""
    return EXCLUDED if cls in FACTORIES else {}


def plan(cls: str) -> dict[str, str]:
    """How each public name of mpi4py's ``cls`` is handled: recipe, generic, excluded or not."""
    raw = ORIGINAL_CLASSES[cls]
    table, _generic = recipes_of(cls)
    excluded = excluded_of(cls)
    handling = {}
    for name in public_names(raw):
        if excluded.get(name):
            handling[name] = "excluded"
        elif name in table:
            handling[name] = "recipe"
        elif attribute_kind(raw, name) in ("method", "classmethod", "property"):
            handling[name] = "generic"
        else:
            handling[name] = "unhandled"
    return handling


def run_one(
    cls: str, name: str, recipe: Recipe, form: str, variant: str, problems: list[str]
) -> dict[str, Any]:
    """The outcome on each side of one call."""
    outcomes: dict[str, Any] = {}
    tag = new_tag()  # the same on every side: statuses compare
    sides = [REFERENCE, "pkl5shim"]
    if form == "class" and getattr(MPI, cls) is not ORIGINAL_CLASSES[cls]:
        sides.insert(1, "mpi4py via stand-in")
    for side in sides:
        env = Env(side, form, cls, name, variant, tag=tag)
        if cls in FACTORIES:
            env.obj = FACTORIES[cls](env.base)
            env.made.append(env.obj)
            env.comms.append(env.obj)
        try:
            outcomes[side] = recipe.run(env)
        except Exception as exc:  # noqa: BLE001 - the recipe itself broke: compared too
            outcomes[side] = ("recipe raised", failure(exc))
        finally:
            problems += env.close()
    return outcomes


_TOPO = r"(Comm|Intracomm|Intercomm|Cartcomm|Graphcomm|Distgraphcomm)"
DOCUMENTED = {
    r"(Request|Message)\.(handle|toint|py2f) \[": (
        "a pkl5shim request of a large message (or a receive, whose first message is not yet "
        "known) is several MPI requests and has no single handle: ValueError says so "
        "(docs/guide.md, Differences from plain mpi4py)"
    ),
    _TOPO + r"\.(probe|iprobe|mprobe|improbe) \[.*large": (
        "a probe describes the first message of an object; for a large one that is its "
        "header (docs/protocol.md), so the status count is the header's size"
    ),
    r"Message\.(probe|iprobe) \[.*large": (
        "as for probe: the status of a matched large object describes its header message"
    ),
    _TOPO + r"\.(Idup|Idup_with_info) \[": (
        "Idup completes at once so that the duplicate gets its channel (collective); "
        "the returned request is already inactive"
    ),
    r"(Intracomm|Intercomm|Cartcomm|Graphcomm|Distgraphcomm)\.(Dup|Dup_with_info|Clone|"
    r"recv|irecv) \[class": (
        "only MPI.Comm, MPI.Request and MPI.Message are replaced: MPI.Intracomm.Dup(comm) "
        "and the like are mpi4py's own C methods (the duplicate has no channel; recv of a "
        "large object raises UnwrappedReceiveError); bound calls and MPI.Comm.<name>(comm) "
        "are pkl5shim's"
    ),
}
"""Differences by design, each with its reason: a difference matching none fails."""


def _documented(difference: str) -> bool:
    return any(re.match(pattern, difference) for pattern in DOCUMENTED)


def conform(cls: str) -> None:
    """Run every public name of ``cls`` in both forms on both sides; fail on any difference."""
    if cls == "Intercomm" and WORLD_SIZE % 2:
        # The recipes pair local rank k with remote rank k: the two groups must be equal.
        if WORLD_RANK == 0:
            print(f"  {cls}: needs an even rank count; its names run at 2 and 4 ranks", flush=True)
        return
    handling = plan(cls)
    table, generic = recipes_of(cls)
    differences: list[str] = []
    problems: list[str] = []
    run: set[str] = set()
    for name, how in handling.items():
        if how not in ("recipe", "generic"):
            continue
        recipe = table[name] if how == "recipe" else generic
        for form in FORMS:
            for variant in recipe.variants:
                outcomes = run_one(cls, name, recipe, form, variant, problems)
                expected = outcomes.pop(REFERENCE)
                for side, got in outcomes.items():
                    if got != expected:
                        differences.append(
                            f"{cls}.{name} [{form}{', ' + variant if variant else ''}] {side}: "
                            f"got {got!r:.300}; mpi4py's own: {expected!r:.300}"
                        )
        run.add(name)
    counts = {
        how: sum(1 for v in handling.values() if v == how)
        for how in ("generic", "recipe", "excluded", "unhandled")
    }
    documented = [difference for difference in differences if _documented(difference)]
    differences = [difference for difference in differences if not _documented(difference)]
    if WORLD_RANK == 0:
        print(
            f"  {cls}: {len(handling)} names, {counts}, {len(differences)} differences "
            f"({len(documented)} more documented by design)",
            flush=True,
        )
    wanted = {name for name, how in handling.items() if how in ("recipe", "generic")}
    assert run == wanted, f"{cls}: names not run: {sorted(wanted - run)}"
    assert not problems, f"{cls}: calls left work that would not settle:\n" + "\n".join(problems)
    assert not differences, f"{cls}: {len(differences)} differences:\n" + "\n".join(differences)


# -- the checks -------------------------------------------------------------------------
def check_every_public_name_is_called_or_excluded_with_a_reason() -> None:
    """No public name is silently skipped; no table names an attribute mpi4py lacks."""
    unhandled = [
        f"{cls}.{name}"
        for cls in ORIGINAL_CLASSES
        for name, how in plan(cls).items()
        if how == "unhandled"
    ]
    assert not unhandled, f"neither generic, recipe nor excluded: {unhandled}"
    assert all(isinstance(reason, str) and reason for reason in EXCLUDED.values())
    known = {name for raw in ORIGINAL_CLASSES.values() for name in public_names(raw)}
    stale = [
        name
        for table in (REQUEST_RECIPES, PREQUEST_RECIPES, MESSAGE_RECIPES, COMM_RECIPES, EXCLUDED)
        for name in table
        if name not in known
    ]
    assert not stale, f"tables name attributes mpi4py does not have: {stale}"
    for cls in ("Comm", "Request", "Message"):
        assert getattr(MPI, cls) is not ORIGINAL_CLASSES[cls], f"MPI.{cls} is not replaced"
    for cls in ("Prequest", "Intracomm", "Intercomm", "Cartcomm", "Graphcomm", "Distgraphcomm"):
        assert getattr(MPI, cls) is ORIGINAL_CLASSES[cls], f"MPI.{cls} was replaced"


def check_request_conformance() -> None:
    """MPI.Request's names on pkl5shim requests and on mpi4py's."""
    conform("Request")


def check_prequest_conformance() -> None:
    """MPI.Prequest's names on persistent requests of a pkl5shim and of a plain communicator."""
    conform("Prequest")


def check_message_conformance() -> None:
    """MPI.Message's names on pkl5shim messages and on mpi4py's."""
    conform("Message")


def check_comm_conformance() -> None:
    """MPI.Comm's names (through the stand-in) on pkl5shim and plain communicators."""
    conform("Comm")


def check_intracomm_conformance() -> None:
    """MPI.Intracomm's names."""
    conform("Intracomm")


def check_intercomm_conformance() -> None:
    """MPI.Intercomm's names (from two ranks on)."""
    conform("Intercomm")


def check_cartcomm_conformance() -> None:
    """MPI.Cartcomm's names."""
    conform("Cartcomm")


def check_graphcomm_conformance() -> None:
    """MPI.Graphcomm's names."""
    conform("Graphcomm")


def check_distgraphcomm_conformance() -> None:
    """MPI.Distgraphcomm's names."""
    conform("Distgraphcomm")
