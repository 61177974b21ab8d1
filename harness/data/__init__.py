"""Data: the ``Example`` type, readers for every supported layout, validation, the demo set."""

from harness.data.demo import demo_is_stale, generate_demo
from harness.data.example import Example
from harness.data.readers import (
    LAYOUTS,
    detect_layout,
    read_examples,
    read_hf,
    read_hw7,
    read_squad,
    read_table,
)
from harness.data.validate import nearest_occurrence, validate_examples

__all__ = [
    "Example",
    "LAYOUTS",
    "demo_is_stale",
    "detect_layout",
    "generate_demo",
    "nearest_occurrence",
    "read_examples",
    "read_hf",
    "read_hw7",
    "read_squad",
    "read_table",
    "validate_examples",
]
