"""The modular, hand-built driver: classical computer vision on the camera frame (no learning, no
ground truth at drive time) estimates the lane, and the expert's own control law drives from the
estimates. `lanes`: the bird's-eye warp, marking and road-edge extraction, the lane fit;
`driver`: the `ModularDriver` policy (`drive evaluate --policy modular`)."""
