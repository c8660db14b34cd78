"""rspp-sentiment-node: the ``ext.sentiment`` node (entry point group ``rspp.nodes``)."""

from .node import SentimentConfig, SentimentNode, build, sentiment_label

__all__ = ["SentimentConfig", "SentimentNode", "build", "sentiment_label"]
