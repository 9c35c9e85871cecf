"""The binomial tree that ``bcast`` sends its first message down (no MPI needed)."""

from __future__ import annotations

import math

import pytest

from pkl5shim.collectives import tree


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7, 8, 9, 16, 33])
def test_every_rank_is_reached_once_within_log2_hops(size: int) -> None:
    for root in range(size):
        links = {rank: tree(rank, root, size) for rank in range(size)}
        assert links[root][0] is None
        reached, depth, frontier = {root}, 0, [root]
        while frontier:
            nxt = [child for rank in frontier for child in links[rank][1]]
            for child in nxt:
                assert child not in reached, (size, root, child)
                assert links[child][0] in frontier
            reached.update(nxt)
            frontier = nxt
            depth += 1 if nxt else 0
        assert reached == set(range(size))
        assert depth <= math.ceil(math.log2(size)) if size > 1 else depth == 0


def test_the_root_sends_to_the_farthest_subtree_first() -> None:
    assert tree(0, 0, 8) == (None, [4, 2, 1])
    assert tree(5, 3, 8) == (3, [6])  # relative rank 2: parent 0, child 3
    assert tree(6, 3, 8) == (5, [])
    assert tree(7, 3, 8) == (3, [1, 0])  # relative rank 4: children 6 and 5, wrapped
