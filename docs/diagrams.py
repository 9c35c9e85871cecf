"""Draw docs/protocol-large-send.png: the messages of one large ``send``/``recv`` (matplotlib).

    python docs/diagrams.py

A sequence diagram from docs/protocol.md's "large, inline" case: a numpy array whose
size table and pickle stream travel inside the header, its buffer on the channel.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent
SENDER_X, RECEIVER_X = 1.0, 7.0

# (y, text, side) of each step a rank takes, top to bottom; side 0 sender, 1 receiver
STEPS = [
    (1.0, "dumps_oob(obj): stream + buffers\n(buffers >= MPI.pickle.THRESHOLD)", 0),
    (2.1, "Isend header on the user's (comm, dest, tag):\nfields + size table + stream", 0),
    (3.2, "Isend each buffer on the channel\n(private Dup), under the channel tag", 0),
    (4.6, "Waitall: MPI is done with the memory", 0),
    (2.5, "recv(source, tag): mpi4py's C recv\nunpickles the header -> a Header", 1),
    (
        3.6,
        "allocate each buffer (aligned, uninitialized)\nIrecv it on the channel (channel tag)",
        1,
    ),
    (4.9, "wait; loads_oob(stream, buffers)\n-> the object, its arrays in those buffers", 1),
]
# (y at sender, y at receiver, label) of each message
MESSAGES = [
    (2.1, 2.5, "header (a valid pickle: _header_from_pickle(...))\nkind INLINE, at most 32 KiB"),
    (3.3, 4.1, "buffer 0 (zero-copy, chunked only past PKL5_CHUNK)"),
]


def draw(path: Path) -> None:
    """Write the diagram to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 6.5))
    for x, name in (
        (SENDER_X, "sender: comm.send(array, 1)"),
        (RECEIVER_X, "receiver: comm.recv(source=0)"),
    ):
        ax.text(
            x,
            0.2,
            name,
            ha="center",
            va="center",
            fontsize=10,
            weight="bold",
            bbox={"boxstyle": "round", "facecolor": "#eeeeee"},
        )
        ax.plot([x, x], [0.5, 5.6], color="grey", linewidth=1)
    for y, text, side in STEPS:
        x = SENDER_X if side == 0 else RECEIVER_X
        ax.text(
            x + (-0.1 if side == 0 else 0.1),
            y,
            text,
            fontsize=8,
            ha="right" if side == 0 else "left",
            va="center",
        )
        ax.plot([x], [y], marker="o", color="black", markersize=4)
    for y0, y1, label in MESSAGES:
        ax.annotate(
            "",
            xy=(RECEIVER_X, y1),
            xytext=(SENDER_X, y0),
            arrowprops={"arrowstyle": "->", "color": "tab:blue", "linewidth": 1.5},
        )
        ax.text(
            (SENDER_X + RECEIVER_X) / 2,
            (y0 + y1) / 2 - 0.15,
            label,
            fontsize=8,
            ha="center",
            va="bottom",
            color="tab:blue",
        )
    ax.set_xlim(-3.2, 11.2)
    ax.set_ylim(5.8, -0.2)
    ax.axis("off")
    ax.set_title("pkl5shim: one large send/recv (a numpy array), time going down", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


if __name__ == "__main__":
    draw(HERE / "protocol-large-send.png")
    print(f"wrote {HERE / 'protocol-large-send.png'}")
