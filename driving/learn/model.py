"""PilotNet: the end-to-end steering network of Bojarski et al. 2016 (arXiv 1604.07316).

One camera frame (and, optionally, the current speed) in, two commands out: [steering, throttle]
in [-1, 1]. The layer sizes follow the paper; the speed input follows conditional imitation
learning (Codevilla et al. 2018), which found that throttle cannot be learned from a single frame
without knowing how fast the car already goes. A second measurement beside it, the speed limit
of the road (`ModelConfig.limit_input`: what a navigation map or a sign reader tells a driver),
lets a net drive at a limit the frame does not show. The same trunk with a head of other outputs
(`ModelConfig.outputs`) predicts the lane quantities instead: direct perception
(`driving.learn.perception`).

A net may also choose before it steers (`ModelConfig.outputs` = `CHOOSING`): beside a
classifier of the lane plan (left, keep, right: the traffic expert's `lane_change`), it has one
[steering, throttle] pair per plan, learnt only from the frames of that plan, and drives with
the pair of the plan it deems likeliest (`controls`). A single pair learns the mean of "change
lanes" and "keep the lane" from frames that look alike, which keeps the lane: conditional
imitation learning's branches (Codevilla et al. 2018), here with the command learnt too.

Optionally the net sees the K most recent frames instead of one (`ModelConfig.frames`), stacked
on the channel axis, oldest first: channels 3j..3j+2 hold the frame (K-1-j) * `frame_stride`
policy steps old, so the last three are the current frame. From two frames a net can judge how
fast the car ahead comes closer, which one frame cannot show. Only the first conv layer changes
(3K input channels); the trunk is the paper's.

The input normalisation is fixed (`input_norm="fixed"`, pixels scaled to [-1, 1]) or per frame
(`"per-frame"`: each channel of each frame to mean 0 and standard deviation 1, a grey-world white
balance and contrast stretch), which makes the net blind to a frame's overall brightness,
contrast and colour cast: looks it was never shown then differ less from those it was.

The top `hidden_rows` rows of every frame can be hidden from the net (`ModelConfig.hidden_rows`):
cut before the normalisation and put back as zeros, so the conv stack keeps its sizes. On the
dashcam those are the rows above the visible ground (sky and haze, `Dashcam.ground_top`), which
say nothing about the road and everything about the day's weather; PilotNet's own input crop left
out most of the sky for the same reason. A box inside them stays seen (`ModelConfig.shown_box`):
the dashcam's rear-view mirror, which hangs in the sky (`Dashcam.mirror_box`).

    model = PilotNet(ModelConfig(height=66, width=200, speed_input=True))
    action = model(image_uint8_nhwc, speed_m_s)  # (B, 2)
    told = PilotNet(ModelConfig(limit_input=True))
    action = told(image_uint8_nhwc, speed_m_s, limit_m_s)  # (B, 2)
    chooser = PilotNet(ModelConfig(outputs=CHOOSING))
    action = controls(chooser(image_uint8_nhwc, speed_m_s), CHOOSING)  # (B, 2)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

SPEED_SCALE = 20.0
"""Speed (and the speed limit) is divided by this [m/s] so that the feature sits near the range
of the others."""
MAX_FRAMES = 8
"""Most frames a PilotNet may stack (more only makes the first conv layer larger)."""
INPUT_NORMS = ("fixed", "per-frame")
"""How a PilotNet may normalise its input (`ModelConfig.input_norm`)."""
_MIN_STD = 2.0  # [grey levels] a flat channel is not stretched into noise
CONTROLS = ("steering", "throttle")
"""The outputs of an end-to-end PilotNet (`ModelConfig.outputs`)."""
LANE_CHANGE = "lane_change"
CHOOSING = (*CONTROLS, LANE_CHANGE)
"""The outputs of a PilotNet that chooses a lane plan, then drives it: its labels are
[steering, throttle, plan], plan -1 (left), 0 (keep) or +1 (right)."""
PLANS = ("left", "keep", "right")
"""The plans of a choosing net, in the order of its outputs: plan value + 1."""
PLAN_WEIGHT = 0.1
"""Weight of the plan's cross-entropy in a choosing net's loss: unweighted (about 0.2 against a
steering error of 0.03) it pulled the trunk away from steering, and the net steered worse in the
bends than one without the plan (docs/traffic.md)."""


class ModelConfigError(ValueError):
    """A ModelConfig that cannot build a PilotNet."""


def _conv_out(size: int, kernel: int, stride: int) -> int:
    return (size - kernel) // stride + 1


def _check_box(box, hidden_rows: int, width: int) -> tuple[int, int, int, int]:
    """`ModelConfig.shown_box` as a tuple; ModelConfigError unless it lies in the hidden rows."""
    ok = isinstance(box, (tuple, list)) and len(box) == 4
    ok = ok and all(isinstance(n, int) and not isinstance(n, bool) for n in box)
    if not ok or not (0 <= box[0] < box[1] <= hidden_rows and 0 <= box[2] < box[3] <= width):
        raise ModelConfigError(
            f"model shown_box must be (top, bottom, left, right) inside the hidden_rows="
            f"{hidden_rows} rows and width={width} columns, got {box!r}"
        )
    return tuple(box)


def _feature_size(size: int) -> int:
    """Height or width of the last conv feature map for an input of `size` pixels."""
    for kernel, stride in ((5, 2), (5, 2), (5, 2), (3, 1), (3, 1)):
        size = _conv_out(size, kernel, stride)
    return size


@dataclass
class ModelConfig:
    """Everything needed to rebuild a PilotNet (stored in every checkpoint)."""

    height: int = 66
    """Input frame height [px]."""
    width: int = 200
    """Input frame width [px]."""
    speed_input: bool = True
    """Feed the current speed [m/s] to the first fully connected layer."""
    limit_input: bool = False
    """Feed the road's speed limit [m/s] beside the speed (the observation's speed_limit)."""
    frames: int = 1
    """Frames stacked on the channel axis, oldest first, the current one last (1 = the paper)."""
    frame_stride: int = 1
    """Policy steps between two stacked frames."""
    input_norm: str = "fixed"
    """'fixed' (pixels to [-1, 1]) or 'per-frame' (each channel to mean 0, std 1)."""
    hidden_rows: int = 0
    """Top rows of the frame the net does not see (zeros after the normalisation): on the
    dashcam, the sky and haze above the visible ground (`drive train --mask-sky`)."""
    shown_box: tuple[int, int, int, int] | None = None
    """Rows [top, bottom) and columns [left, right) inside the hidden rows that the net sees
    nonetheless: the dashcam's rear-view mirror (`Dashcam.mirror_box`); None: no such box."""
    outputs: tuple[str, ...] = CONTROLS
    """What the head predicts, one name per output: the controls (end-to-end), or the lane
    quantities of a direct-perception net (`driving.learn.perception`)."""

    @property
    def channels(self) -> int:
        """Input channels: RGB of each stacked frame."""
        return 3 * self.frames

    def validate(self) -> ModelConfig:
        """Check that the conv stack leaves at least one feature pixel; return self.

        Raises:
            ModelConfigError: the frame is too small, a size or count is not a positive integer,
                or more than `MAX_FRAMES` frames are stacked.
        """
        for name in ("height", "width", "frames", "frame_stride"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ModelConfigError(f"model {name} must be a positive integer, got {value!r}")
        if self.frames > MAX_FRAMES:
            raise ModelConfigError(f"model frames must be at most {MAX_FRAMES}, got {self.frames}")
        hidden = self.hidden_rows
        if isinstance(hidden, bool) or not isinstance(hidden, int) or not 0 <= hidden < self.height:
            raise ModelConfigError(
                f"model hidden_rows must be an integer in [0, height={self.height}), got {hidden!r}"
            )
        if self.shown_box is not None:
            self.shown_box = _check_box(self.shown_box, hidden, self.width)  # a checkpoint's list
        for name in ("height", "width"):
            value = getattr(self, name)
            if _feature_size(value) < 1:
                raise ModelConfigError(
                    f"model {name}={value} px is too small for PilotNet's conv stack "
                    "(needs at least 65 px); render larger frames"
                )
        if self.input_norm not in INPUT_NORMS:
            raise ModelConfigError(
                f"model input_norm must be one of {INPUT_NORMS}, got {self.input_norm!r}"
            )
        if isinstance(self.outputs, str) or not isinstance(self.outputs, (tuple, list)):
            raise ModelConfigError(f"model outputs must be a list of names, got {self.outputs!r}")
        self.outputs = tuple(self.outputs)  # a checkpoint may hold a list
        if not self.outputs or not all(isinstance(n, str) for n in self.outputs):
            raise ModelConfigError(f"model outputs must be names, got {self.outputs!r}")
        if LANE_CHANGE in self.outputs and self.outputs != CHOOSING:
            raise ModelConfigError(f"model outputs with {LANE_CHANGE!r} must be {CHOOSING}")
        for name in ("speed_input", "limit_input"):
            if not isinstance(getattr(self, name), bool):
                raise ModelConfigError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.limit_input and not self.speed_input:
            raise ModelConfigError(
                "limit_input goes beside the speed input: a net told the limit must know its speed"
            )
        return self

    @property
    def head_size(self) -> int:
        """Numbers the head puts out: one per output, or for a choosing net a [steering,
        throttle] pair per plan and a score per plan (`PLANS`)."""
        if self.outputs == CHOOSING:
            return len(PLANS) * (len(CONTROLS) + 1)
        return len(self.outputs)

    @property
    def measurements(self) -> int:
        """Scalar inputs beside the frame: the speed, then the speed limit."""
        return int(self.speed_input) + int(self.limit_input)


class PilotNet(nn.Module):
    """PilotNet with a fixed input normalisation and optional speed and speed-limit inputs.

    Shapes in the comments are for the paper's 66x200 input; K is the number of stacked frames.
    """

    def __init__(self, config: ModelConfig | None = None) -> None:
        """Build the network.

        Args:
            config: input size, stacked frames and whether speed is an input; the defaults match
                the paper.
        """
        super().__init__()
        self.config = (config or ModelConfig()).validate()
        self.conv = nn.Sequential(
            nn.Conv2d(self.config.channels, 24, 5, stride=2),  # (B, 24, 31, 98)
            nn.ELU(),
            nn.Conv2d(24, 36, 5, stride=2),  # (B, 36, 14, 47)
            nn.ELU(),
            nn.Conv2d(36, 48, 5, stride=2),  # (B, 48, 5, 22)
            nn.ELU(),
            nn.Conv2d(48, 64, 3),  # (B, 64, 3, 20)
            nn.ELU(),
            nn.Conv2d(64, 64, 3),  # (B, 64, 1, 18)
            nn.ELU(),
        )
        # Asking the layers is simpler and safer than repeating their arithmetic for other sizes.
        with torch.no_grad():
            dummy = torch.zeros(1, self.config.channels, self.config.height, self.config.width)
            self.flat_features = self.conv(dummy).numel()  # 1152 for 66x200
        self.head = nn.Sequential(
            nn.Linear(self.flat_features + self.config.measurements, 100),  # (B, 100)
            nn.ELU(),
            nn.Linear(100, 50),  # (B, 50)
            nn.ELU(),
            nn.Linear(50, 10),  # (B, 10)
            nn.ELU(),
            nn.Linear(10, self.config.head_size),  # (B, 2) [steering, throttle] (or O)
        )
        # Initialise the speed (and limit) column as PyTorch would for a layer with fan-in 1. The
        # default bound 1/sqrt(1153) makes the single speed input nearly invisible, and the net then
        # needs hundreds of steps to start using it (measured on a synthetic throttle = f(speed)
        # set: validation throttle MSE after 50 steps 0.34 with the default, 0.04 with this).
        with torch.no_grad():
            for column in range(self.flat_features, self.flat_features + self.config.measurements):
                self.head[0].weight[:, column].uniform_(-1.0, 1.0)

    def normalize(self, image: torch.Tensor) -> torch.Tensor:
        """Untrained normalisation (`ModelConfig.input_norm`): uint8 NHWC frames -> float NCHW,
        in [-1, 1] ('fixed') or each channel to mean 0 and std 1 ('per-frame'); the top
        `hidden_rows` rows are zeros, but for the `shown_box`.

        Stacked frames are channels like any others: (B, H, W, 3K) -> (B, 3K, H, W).

        The permuted view of an NHWC tensor is already channels_last in memory, so no copy is
        made before the float conversion.
        """
        x = image.permute(0, 3, 1, 2).float()  # (B, 3K, 66, 200)
        hidden, box = self.config.hidden_rows, self.config.shown_box
        if box is not None:
            return self._normalize_with_box(x, hidden, box)
        x = x[:, :, hidden:]  # the rows the net sees; the per-frame statistics are theirs
        if self.config.input_norm == "fixed":
            x = x / 127.5 - 1.0
        else:
            std, mean = torch.std_mean(x, dim=(2, 3), keepdim=True)
            x = (x - mean) / std.clamp_min(_MIN_STD)
        return nn.functional.pad(x, (0, 0, hidden, 0)) if hidden else x

    def _normalize_with_box(
        self, x: torch.Tensor, hidden: int, box: tuple[int, int, int, int]
    ) -> torch.Tensor:
        """`normalize` of float NCHW frames whose hidden rows hold a box that the net sees."""
        top, bottom, left, right = box
        rows, inside = x[:, :, hidden:], x[:, :, top:bottom, left:right]  # what the net sees
        if self.config.input_norm == "fixed":
            rows, inside = rows / 127.5 - 1.0, inside / 127.5 - 1.0
        else:  # the statistics of both together
            seen = torch.cat([rows.flatten(2), inside.flatten(2)], dim=2)  # (B, 3K, pixels)
            std, mean = torch.std_mean(seen, dim=2, keepdim=True)
            std, mean = std.clamp_min(_MIN_STD)[..., None], mean[..., None]  # (B, 3K, 1, 1)
            rows, inside = (rows - mean) / std, (inside - mean) / std
        sides = (left, x.shape[3] - right, top, hidden - bottom)  # zeros around the box
        return torch.cat([nn.functional.pad(inside, sides), rows], dim=2)

    def forward(
        self,
        image: torch.Tensor,
        speed: torch.Tensor | None = None,
        limit: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict [steering, throttle].

        Args:
            image: (B, H, W, 3K) uint8 frames as stored in the dataset, K = `config.frames`
                stacked on the last axis, oldest first (K = 1: one frame, (B, H, W, 3)).
            speed: (B,) current speed [m/s]; required when the model has a speed input, ignored
                otherwise.
            limit: (B,) the road's speed limit [m/s]; required when the model has a limit
                input, ignored otherwise.

        Returns:
            (B, 2) float [steering, throttle], not clipped; (B, `config.head_size`) for other
            `config.outputs` (a choosing net's: `controls` picks its [steering, throttle]).

        Raises:
            ValueError: the image does not have 3K channels, or the speed or limit is missing.
        """
        if image.shape[-1] != self.config.channels:
            raise ValueError(
                f"this PilotNet takes {self.config.frames} stacked RGB frames "
                f"({self.config.channels} channels), got {image.shape[-1]} channels"
            )
        x = self.conv(self.normalize(image))  # (B, 64, 1, 18)
        x = torch.flatten(x, 1)  # (B, 1152)
        inputs = [x]
        if self.config.speed_input:
            if speed is None:
                raise ValueError("this PilotNet takes the speed [m/s] as a second input; pass it")
            inputs.append((speed.to(x.dtype) / SPEED_SCALE).reshape(-1, 1))  # (B, 1)
        if self.config.limit_input:
            if limit is None:
                raise ValueError("this PilotNet takes the speed limit [m/s] as an input; pass it")
            inputs.append((limit.to(x.dtype) / SPEED_SCALE).reshape(-1, 1))  # (B, 1)
        if len(inputs) > 1:
            x = torch.cat(inputs, dim=1)  # (B, 1152 + M)
        return self.head(x)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _plans(pred: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A choosing net's output split into (B, plan, control) pairs and (B, plan) scores."""
    pairs = len(PLANS) * len(CONTROLS)
    return pred[:, :pairs].reshape(-1, len(PLANS), len(CONTROLS)), pred[:, pairs:]


def _pair_of(pairs: torch.Tensor, plan: torch.Tensor) -> torch.Tensor:
    """(B, 2) the pair of each frame's `plan` ((B,) indexes into `PLANS`) among `pairs`."""
    return pairs[torch.arange(len(pairs), device=pairs.device), plan]


def controls(pred: torch.Tensor, outputs: tuple[str, ...]) -> torch.Tensor:
    """(B, 2) [steering, throttle] of a control net's output `pred`: the output itself, or for a
    choosing net (`CHOOSING`) the pair of the plan it scores highest."""
    if outputs != CHOOSING:
        return pred
    pairs, scores = _plans(pred)
    return _pair_of(pairs, scores.argmax(1))


def plan_probabilities(pred: torch.Tensor) -> torch.Tensor:
    """(B, 3) how likely a choosing net deems each plan (`PLANS`)."""
    return _plans(pred)[1].float().softmax(1)


def output_losses(pred: torch.Tensor, target: torch.Tensor, outputs: tuple[str, ...]):
    """(B, len(outputs)) loss of each frame and output: the squared error, or for a choosing net
    the squared error of the pair of the labelled plan and the cross-entropy of its scores
    times `PLAN_WEIGHT`."""
    if outputs != CHOOSING:
        return (pred - target) ** 2
    plan = (target[:, 2].round().long() + 1).clamp(0, len(PLANS) - 1)
    pairs, scores = _plans(pred)
    chosen = _pair_of(pairs, plan)
    cross_entropy = PLAN_WEIGHT * nn.functional.cross_entropy(scores, plan, reduction="none")
    return torch.cat([(chosen - target[:, :2]) ** 2, cross_entropy[:, None]], dim=1)
