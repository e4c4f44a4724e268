"""The titles of failure clips: what went wrong, and in traffic where the car hit was."""

import numpy as np

from driving.rollout.clips import event_of
from driving.rollout.loop import Step


def _step(intervention: bool, **info) -> Step:
    info = {"crashed": False, "on_road": True, "speed": 10.0, "speed_limit": 15.0, **info}
    action = np.zeros(2, np.float32)
    return Step({}, {}, action, action, info, not intervention, intervention, 1.0, False)


def test_a_clip_title_tells_the_event_and_a_traffic_crash_by_where_the_car_hit_was():
    assert event_of(_step(False), 0, 0.1) == ""
    assert event_of(_step(True, crashed=True), 0, 0.1) == "INTERVENTION: crash"  # no traffic
    assert event_of(_step(True, crashed=True, collision="ahead"), 0, 0.1) == (
        "INTERVENTION: crash into the car ahead"
    )
    assert event_of(_step(False, crashed=True, collision="behind"), 0, 0.1) == "CRASH FROM BEHIND"
    assert event_of(_step(True, on_road=False), 0, 0.1) == "INTERVENTION: off road"
    assert event_of(_step(False), 11, 0.1) == "SPEEDING > 1 s"  # the 11th step over: 1.1 s
