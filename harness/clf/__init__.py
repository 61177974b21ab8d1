"""Text classification and regression (GLUE-style tasks)."""
