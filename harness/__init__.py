"""harness: a Kaggle-style competition harness for extractive QA and text classification."""

__version__ = "0.1.0"
