from harness.data.example import Example

__all__ = ["Example"]
