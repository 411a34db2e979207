"""Stand-in for edx-platform's `waffle_utils` app: the course and org override tables."""
