"""Stand-in for edx-platform's `student` app: only the CourseAccessRole table."""
