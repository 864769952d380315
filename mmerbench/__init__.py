"""mmerbench: a benchmark harness for multimodal (multi-label) emotion recognition.

Importing the package is cheap: torch, pandas and scikit-learn are imported
by the modules that need them, so ``mmerbench --help`` answers at once.
"""

__version__ = "0.1.0"
