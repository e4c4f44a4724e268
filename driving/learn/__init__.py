"""Learning: PilotNet, checkpoints, the network policy, batches, the training loop, saliency."""
