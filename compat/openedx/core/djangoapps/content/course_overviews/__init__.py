"""Stand-in for edx-platform's `course_overviews` app: the CourseOverview table."""
