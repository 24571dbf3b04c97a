"""Evaluation: the paper's tracking metrics, closed-loop and open-loop comparisons."""
