"""Command verbs built on the stages: watch, view, saliency, export, DAgger."""
