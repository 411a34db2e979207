"""Deliberate differences between the Go service and openedx-authz 1.35.0's own migration.

The differential test (compat/tests/test_differential.py) runs the same manual steps through
openedx-authz's migration functions and through the Go binary on identical databases and
compares the resulting tables. A difference fails the test unless an entry here excuses it.

Each entry:
    id      short name, shown in the test output
    table   the compared table the difference is in (see test_differential.TABLES)
    match   substring of the differing row's rendering (as printed by the test) that
            identifies the difference, or "" for every difference in that table
    reason  why the Go service differs on purpose (cite SPEC sections)

The list starts empty: which differences are deliberate is decided by the service's owner.
"""

DELIBERATE = [
]
