"""Reference model families (the five use cases arrive with the zoo issue) and the demo models."""
