"""Small shared helpers (rotations, configuration)."""
