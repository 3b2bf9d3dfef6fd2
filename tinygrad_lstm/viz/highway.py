"""Find the highway: the path a tagged state (an LSTM's cell state) takes from one time step to the next.

Generic: it reads only the tag "highway" that a cell puts on its incoming and outgoing state. Between each
tagged tensor and its nearest tagged ancestors it keeps the *shortest* graph paths, so the direct route
(c_prev -> f * c_prev -> + -> c) is the highway while the long detours (c -> tanh -> h -> gates -> c_next)
are not, even though they also lead from one tagged tensor to the next.
"""

from __future__ import annotations

from collections import defaultdict

from ..tensor import GraphView

HIGHWAY_TAG = "highway"


def highway_path(view: GraphView) -> tuple[set[int], set[tuple[int, int]]]:
    """The ids of the tensors and ops on the highway, and the (id, id) graph edges between them."""
    tagged = {id(t) for t in view.tensors if HIGHWAY_TAG in t.tags}
    producers: dict[int, list] = defaultdict(list)
    consumers: dict[int, list] = defaultdict(list)
    for a, b in view.edges:
        producers[id(b)].append(a)
        consumers[id(a)].append(b)
    nodes, edges = set(tagged), set()
    for target in (t for t in view.tensors if id(t) in tagged):
        distance, nearest = _nearest_tagged_ancestors(target, tagged, producers)
        stack = list(nearest)
        while stack:  # walk forward, one step closer to `target` each time: the shortest paths
            node = stack.pop()
            for nxt in consumers[id(node)]:
                if distance.get(id(nxt)) == distance[id(node)] - 1 and (id(node), id(nxt)) not in edges:
                    edges.add((id(node), id(nxt)))
                    nodes.add(id(nxt))
                    stack.append(nxt)
    return nodes, edges


def _nearest_tagged_ancestors(target, tagged: set[int], producers: dict[int, list]) -> tuple[dict[int, int], list]:
    """Breadth-first search backwards from `target`, level by level, until a level holds tagged tensors."""
    distance = {id(target): 0}
    frontier: list[object] = [target]
    nearest: list[object] = []
    while frontier and not nearest:
        next_frontier: list[object] = []
        for node in frontier:
            for prev in producers[id(node)]:
                if id(prev) in distance:
                    continue
                distance[id(prev)] = distance[id(node)] + 1
                (nearest if id(prev) in tagged else next_frontier).append(prev)
        frontier = next_frontier
    return distance, nearest
