"""scripts/compare_remedies.py: budgets cut from whole drives keep what each target learns."""

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[2] / "scripts"))

import compare_remedies as cr  # noqa: E402

from tests.conftest import learnable_episode  # noqa: E402


def test_a_cut_keeps_the_curvature_ahead_that_direct_perception_learns():
    episode = learnable_episode(3, frames=10)
    curvature = np.arange(50, dtype=np.float32).reshape(10, 5)
    cut = cr._cut(replace(episode, curvature_ahead=curvature), 4)
    assert len(cut.labels) == 4 and cut.meta["cut_to"] == 4
    np.testing.assert_array_equal(cut.curvature_ahead, curvature[:4])
    assert cr._cut(episode, 4).curvature_ahead is None  # recorded without it: none made up


def test_perception_runs_are_named_apart_from_the_end_to_end_ones():
    assert cr.label(cr.CompareConfig(), "dart") == "dart"
    assert cr.label(cr.CompareConfig(target="perception"), "dart") == "dart-perception"
