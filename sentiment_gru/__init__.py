"""sentiment-gru: a bidirectional GRU sentiment classifier with readable reports.

The public API is one class:

    from sentiment_gru import SentimentClassifier
    clf = SentimentClassifier.from_pretrained("artifacts")
    clf("what a wonderful film")   # [{"label": "positive", "score": 0.98}]

Importing the package is cheap: submodules are imported where they are used, so
prediction starts without torch (on the ONNX backend), datasets, scikit-learn or matplotlib.
"""

__version__ = "0.1.0"
__all__ = ["SentimentClassifier", "__version__"]


def __getattr__(name: str):
    if name == "SentimentClassifier":
        from .inference.classifier import SentimentClassifier

        return SentimentClassifier
    raise AttributeError(f"module 'sentiment_gru' has no attribute {name!r}")
