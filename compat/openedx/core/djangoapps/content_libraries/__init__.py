"""Stand-in for edx-platform's `content_libraries` app (openedx-authz's 0004 points a FK at it)."""
