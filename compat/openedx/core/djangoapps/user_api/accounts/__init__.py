"""Stand-in package at edx-platform's module path (compatibility tier; see compat/README.md)."""
