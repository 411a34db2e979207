"""edx-platform's ContentLibrary, reduced to its identity (org + slug).

Only here because openedx-authz's ContentLibraryScope has a foreign key to it; the course
authoring migration never touches libraries.
"""
from django.db import models
from organizations.models import Organization


class ContentLibrary(models.Model):
    org = models.ForeignKey(Organization, on_delete=models.CASCADE)
    slug = models.SlugField(allow_unicode=True)

    class Meta:
        app_label = "content_libraries"
        unique_together = ("org", "slug")

    @property
    def library_key(self):
        from opaque_keys.edx.locator import LibraryLocatorV2  # pylint: disable=import-outside-toplevel

        return LibraryLocatorV2(org=self.org.short_name, slug=self.slug)

    def __str__(self):
        return f"lib:{self.org.short_name}:{self.slug}"
