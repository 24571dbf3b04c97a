"""Open-loop delta-action task: replay logged actions (+ Δa) from logged states and track the logged states."""
