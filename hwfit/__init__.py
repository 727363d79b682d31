"""hwfit: fit AI models to the hardware they run on."""

__version__ = "0.1.0"
