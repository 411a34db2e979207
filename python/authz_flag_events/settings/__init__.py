"""Plugin settings (edx-django-utils plugin framework) for the LMS and CMS."""
