"""asap: ASAP (Aligning Simulation and Real Physics) for the Unitree G1."""

__version__ = "0.1.0"
