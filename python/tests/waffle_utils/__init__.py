"""Stand-in for edx-platform's openedx.core.djangoapps.waffle_utils: same app label, models, tables and columns."""
