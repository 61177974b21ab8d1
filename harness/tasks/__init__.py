"""Task kinds (extractive QA, classification/regression): see :mod:`harness.tasks.base`."""
