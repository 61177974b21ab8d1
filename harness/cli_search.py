"""Click commands defined beside their feature; harness.cli registers ``commands``."""

commands: list = []
