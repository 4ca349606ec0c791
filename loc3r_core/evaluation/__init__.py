"""Evaluation: predictions over a split, the metrics of the issue, and pictures of them."""
