"""Folder loadable with ``evaluate.load(<this folder>)``; see ``squad_metric.py``."""
