"""Closed-loop evaluation: the intervention loop, metrics, breakdown, clips, reports."""
