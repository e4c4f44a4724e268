"""Test helper shared by the evaluation and DAgger tests."""

from driving.learn.model import PilotNet
from driving.learn.policy import NetPolicy


class Recording(NetPolicy):
    """A network policy that keeps every observation it takes in."""

    def __init__(self, model: PilotNet) -> None:
        super().__init__(model)
        self.seen: list[dict] = []

    def observe(self, obs: dict) -> None:
        self.seen.append(obs)
        super().observe(obs)
