"""The one graph search: breadth first over a mapping of successors."""

from __future__ import annotations

import doctest

from tagportal.core import graphs
from tagportal.core.graphs import reachable


def test_the_module_examples_hold():
    assert doctest.testmod(graphs).failed == 0


def test_breadth_first_in_the_order_given():
    successors = {"a": ["c", "b"], "b": ["d"], "c": ["e", "d"], "e": ["f"]}
    assert reachable(["a"], successors) == ["a", "c", "b", "e", "d", "f"]


def test_cycles_and_several_starts_visit_each_node_once():
    successors = {1: [2], 2: [3, 1], 3: [1], 7: [3, 8]}
    assert reachable([7, 1, 7], successors) == [7, 1, 3, 8, 2]
    assert reachable([], successors) == []
    assert reachable([9], successors) == [9]  # a node without successors, or unknown
