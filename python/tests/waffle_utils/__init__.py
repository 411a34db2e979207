"""Stand-in for openedx.core.djangoapps.waffle_utils: same app label, tables and columns."""
