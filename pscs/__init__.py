"""pscs: Public Safety Camera System."""

__version__ = "0.1.0"
