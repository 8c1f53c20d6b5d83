"""sentiment-gru: a bidirectional GRU sentiment classifier with readable reports.

Importing the package is cheap: submodules are imported where they are used,
so `predict` starts without `datasets`, scikit-learn or matplotlib.
"""

__version__ = "0.1.0"
