"""The chaos suite: fault injection against a real SSEServer (marker ``chaos``).

CI size by default; the full size with ``python -m tests.chaos.run_full``.
"""
