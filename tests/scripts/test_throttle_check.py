"""scripts/throttle_check.py: a net's throttle beside the expert's law, off the expert's speed."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "scripts"))

import throttle_check as tc  # noqa: E402

from driving.learn.model import ModelConfig  # noqa: E402
from driving.learn.policy import NetPolicy  # noqa: E402
from tests.conftest import save_untrained  # noqa: E402


def test_each_offset_is_asked_with_the_frame_seen_and_answered_by_the_law(tmp_path):
    spec = str(save_untrained(tmp_path / "net.pt"))
    found = tc.throttles(spec, roads=1, every=40)
    assert sorted(found) == sorted(tc.OFFSETS)
    for offset, rows in found.items():
        assert rows.shape[1] == 2 and len(rows) >= 3  # a drive of 10 s or more
        # the expert's law: 0.2 throttle per m/s below the target, clipped
        np.testing.assert_allclose(rows[:, 0], np.clip(-offset / 5, -1, 1), atol=1e-6)
    # the net's answers differ with the speed it is told (an untrained net too)
    assert not np.allclose(found[-4.0][:, 1], found[4.0][:, 1])
    text = tc.table([spec], roads=1, every=40)
    assert text.count("\n| ") == len(tc.OFFSETS) and "| +4 m/s | -0.800 |" in text


def test_a_net_that_stacks_frames_is_refused(tmp_path):
    spec = str(save_untrained(tmp_path / "net.pt", config=ModelConfig(frames=2)))
    assert NetPolicy.from_checkpoint(spec).model.config.frames == 2
    with pytest.raises(SystemExit, match="stacks frames"):
        tc.throttles(spec, roads=1, every=40)
