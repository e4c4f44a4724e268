"""The intervention loop: a policy drives one road, the expert takes over when it strays.

    for step in drive(env, policy, expert, seed, alone): ...      # one `Step` per policy step
    metrics = rollout(env, policy, expert, seed)           # the episode's metrics (and video)

Shared by evaluation, `drive watch`, `drive saliency` and DAgger, so that an intervention means
the same thing in all of them. A driver with explicit state (`policy.estimate`: the modular
driver) has its estimates logged in `info["estimate"]`, beside the truth of the frame they were
made in (`info["estimate_truth"]`), and its interventions attributed to perception or control
(`driving.rollout.attribution`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from driving.draw.overlays import saliency_overlay
from driving.draw.video import overlay, write_mp4
from driving.learn.policy import observe
from driving.rollout import breakdown
from driving.rollout.attribution import perception_error, perception_record
from driving.rollout.clips import ClipRecorder
from driving.rollout.metrics import INFO_KEYS, INTERVENTION_OFFSET, episode_metrics
from driving.rollout.traffic_metrics import TRAFFIC_KEYS, traffic_episode_metrics
from envs.expert import Expert
from envs.traffic import TrafficEnv
from envs.winding import FINISH_MARGIN

BACK_ON_CENTRE = 0.2  # [m] the expert hands back control this close to the centre
BACK_ON_HEADING = 0.05  # [rad] ... and this well aligned
LANE_CHANGE_S = 3.0  # [s] in traffic, off the lane centre this long before it counts


@dataclass
class Step:
    """One policy step of a closed-loop episode, as `drive` yields it."""

    obs: dict
    """what the driver saw: {"image", "speed"}"""
    state: dict
    """ground truth when `obs` was seen (the env's info before the step)"""
    action: np.ndarray
    """the action executed (the policy's, or the expert's during an intervention)"""
    expert_action: np.ndarray
    """the expert's answer to the same observation (the label)"""
    info: dict
    """ground truth after the step"""
    autonomous: bool
    """the policy was in control during this step"""
    intervention: bool
    """an intervention began at this step (the expert drives from the next one)"""
    time_s: float
    """time at the start of the step [s]"""
    done: bool
    """the episode ended with this step"""
    truth: tuple = ()
    """`expert.truth()` when `obs` was seen (the lane's curvature ahead, the car ahead), with
    `drive(..., truth=True)`: what a recorded step keeps (DAgger)"""


def drive(
    env, policy, expert: Expert, seed: int, alone: bool = False, truth: bool = False
) -> Iterator[Step]:
    """Drive one road with `policy`, the expert taking over after each intervention; yields steps.

    An intervention begins when the policy is in control and the car gets more than
    `INTERVENTION_OFFSET` from the lane centre (in traffic: for more than `LANE_CHANGE_S`, so
    that lane changes are allowed), leaves the road or crashes; the expert then drives until the
    car is back within `BACK_ON_CENTRE` of the centre and aligned. The policy is shown the frames
    the expert drove (`driving.learn.policy.observe`), so that a net stacking earlier frames has
    them when it takes over again.

    `alone`: no safety driver; the drive ends where an intervention would have begun by leaving
    the road or crashing (straying from the centre alone does not end it), and that step counts
    as the one intervention. `truth`: each step carries `expert.truth()` (`Step.truth`).
    """
    obs, info = env.reset(seed=seed)
    policy.reset()
    expert.reset()
    autonomous, done, step, off_centre_steps = True, False, 0, 0
    dt = 1.0 / env.unwrapped.config["policy_frequency"]
    allowed_steps = round(LANE_CHANGE_S / dt) if isinstance(env.unwrapped, TrafficEnv) else 0
    while not done:
        expert_action = expert.act(obs)
        read = expert.truth() if truth else ()
        if autonomous:
            action = policy.act(obs)
        else:
            action = expert_action
            observe(policy, obs)
        state = info
        next_obs, _, terminated, truncated, info = env.step(action)
        estimate = getattr(policy, "estimate", None)
        if estimate is not None:  # a driver with explicit state: what it saw in obs, the truth
            info["estimate"] = dict(estimate)
            info["estimate_truth"] = {k: state[k] for k in estimate}
        done = terminated or truncated
        off_centre = abs(info["lateral_offset"]) > INTERVENTION_OFFSET
        off_centre_steps = off_centre_steps + 1 if off_centre else 0
        failed = not info["on_road"] or info["crashed"]
        started = autonomous and (failed or (off_centre_steps > allowed_steps and not alone))
        done = done or (alone and started)
        yield Step(
            obs, state, action, expert_action, info, autonomous, started, step * dt, done, read
        )
        if started:
            autonomous = False
        elif (
            not autonomous
            and abs(info["lateral_offset"]) < BACK_ON_CENTRE
            and abs(info["heading_error"]) < BACK_ON_HEADING
        ):
            autonomous = True
        obs, step = next_obs, step + 1


def rollout(
    env,
    policy,
    expert: Expert,
    seed: int,
    video: Path | None = None,
    clips: Path | None = None,
    saliency=None,
    video_saliency: bool = False,
    alone: bool = False,
) -> dict:
    """One episode with interventions; returns its metrics (and writes its video if asked).

    Args:
        video: write the whole episode as an mp4 here.
        clips: write a clip of each intervention and failure into this folder.
        saliency: a `driving.tools.saliency.VisualBackProp` of the policy, drawn on the clips.
        video_saliency: draw it on the video too.
        alone: no safety driver (`drive`): the drive ends where the policy leaves the road.
    """
    frames, info, curvature = [], {}, []
    dt = 1.0 / env.unwrapped.config["policy_frequency"]
    recorder = None if clips is None else ClipRecorder(clips, seed, dt, saliency)
    traffic = isinstance(env.unwrapped, TrafficEnv)
    copied = tuple(dict.fromkeys((*INFO_KEYS, *TRAFFIC_KEYS))) if traffic else INFO_KEYS
    record = {k: [] for k in (*copied, "autonomous", "intervention")}
    errors, seen_offset = {}, []  # perception errors and the offset of the frame they were made in
    for step in drive(env, policy, expert, seed, alone):
        if video is not None:
            note = "" if step.autonomous else "EXPERT DRIVING"
            speed, image = float(step.obs["speed"][0]), step.obs["image"]
            if saliency is not None and video_saliency:
                image = saliency_overlay(image, saliency(policy.net_input)[0])
            frames.append(overlay(image, step.action, step.expert_action, speed, step.time_s, note))
        if recorder is not None:
            recorder.add(step)
        info = step.info
        curvature.append(info["curvature"])
        record["autonomous"].append(step.autonomous)
        record["intervention"].append(step.intervention)
        for key in copied:
            record[key].append(info[key])
        if "estimate" in info:
            for q, error in perception_error(info["estimate"], info["estimate_truth"]).items():
                errors.setdefault(q, []).append(error)
            seen_offset.append(step.state["lateral_offset"])
    arrays = {k: np.asarray(v) for k, v in record.items()}
    reached_end = bool(info.get("reached_end", False))
    metrics = episode_metrics(arrays, dt, reached_end)
    if traffic:
        route = env.unwrapped.road_map.length - FINISH_MARGIN
        metrics["traffic"] = traffic_episode_metrics(arrays, info["progress"], route, reached_end)
    if errors:
        flags = (record["autonomous"], record["intervention"])
        metrics["perception"] = perception_record(errors, seen_offset, *flags, dt)
    if video is not None:
        write_mp4(video, frames, fps=1.0 / dt)
    counts = breakdown.count(
        curvature, record["speed"], record["autonomous"], record["intervention"], dt
    )
    written = recorder.close() if recorder is not None else []
    return {"seed": seed, **metrics, "breakdown": counts, "clips": written}
