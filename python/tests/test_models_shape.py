"""
The stand-in override models (tests/waffle_utils) have the shape of edx-platform's
``openedx/core/djangoapps/waffle_utils/models.py`` and of the tables its migrations create: the
plugin reads these rows in production, so the tests must exercise the same fields, column
types and ConfigurationModel behaviour.
"""
import pytest
from config_models.models import ConfigurationModel
from django.conf import settings
from django.db import connection, models
from opaque_keys.edx.django.models import CourseKeyField
from opaque_keys.edx.keys import CourseKey

from tests.waffle_utils.models import WaffleFlagCourseOverrideModel, WaffleFlagOrgOverrideModel

COMMON = ["id", "change_date", "changed_by", "enabled", "waffle_flag"]


def concrete(model):
    return {f.name: f for f in model._meta.concrete_fields}


@pytest.mark.parametrize("model, table, scope_field, key_fields", [
    (WaffleFlagCourseOverrideModel, "waffle_utils_waffleflagcourseoverridemodel", "course_id",
     ("waffle_flag", "course_id")),
    (WaffleFlagOrgOverrideModel, "waffle_utils_waffleflagorgoverridemodel", "org", ("waffle_flag", "org")),
])
def test_shape_matches_edx_platform(model, table, scope_field, key_fields):
    assert issubclass(model, ConfigurationModel)
    meta = model._meta
    assert (meta.app_label, meta.db_table) == ("waffle_utils", table)
    assert model.KEY_FIELDS == key_fields
    assert list(meta.ordering) == []  # a plain Meta: ConfigurationModel's ordering is not inherited

    fields = concrete(model)
    assert list(fields) == COMMON + [scope_field, "override_choice", "note"]
    assert [f.column for f in fields.values()] == [
        "id", "change_date", "changed_by_id", "enabled", "waffle_flag", scope_field, "override_choice", "note"]
    assert type(fields["id"]) is models.AutoField
    assert fields["change_date"].auto_now_add
    changed_by = fields["changed_by"]
    assert changed_by.related_model._meta.label == settings.AUTH_USER_MODEL
    assert changed_by.null and not changed_by.editable
    assert changed_by.remote_field.on_delete is models.PROTECT
    assert isinstance(fields["enabled"], models.BooleanField) and fields["enabled"].default is False
    assert (fields["waffle_flag"].max_length, fields["waffle_flag"].db_index) == (255, True)
    scope = fields[scope_field]
    if scope_field == "course_id":
        assert type(scope) is CourseKeyField
    else:
        assert type(scope) is models.CharField
    assert (scope.max_length, scope.db_index) == (255, True)
    choice = fields["override_choice"]
    assert (choice.max_length, choice.default) == (3, "on")
    assert [(v, str(label)) for v, label in choice.choices] == [("on", "Force On"), ("off", "Force Off")]
    assert isinstance(fields["note"], models.TextField) and fields["note"].blank


def test_org_model_index():
    (index,) = WaffleFlagOrgOverrideModel._meta.indexes
    assert (index.name, index.fields) == ("waffle_org_and_waffle_flag", ["org", "waffle_flag"])


@pytest.mark.django_db
def test_tables_have_edx_platform_columns():
    with connection.cursor() as cursor:
        for model, scope in ((WaffleFlagCourseOverrideModel, "course_id"), (WaffleFlagOrgOverrideModel, "org")):
            desc = connection.introspection.get_table_description(cursor, model._meta.db_table)
            assert sorted(c.name for c in desc) == sorted(
                ["id", "change_date", "changed_by_id", "enabled", "waffle_flag", scope, "override_choice", "note"])


@pytest.mark.django_db
def test_saving_an_existing_row_inserts_a_new_one():
    """ConfigurationModel.save(): an edit (as in the admin) is a new row with a new id."""
    row = WaffleFlagCourseOverrideModel.objects.create(
        waffle_flag="authz.enable_course_authoring", course_id=CourseKey.from_string("course-v1:A+B+C"),
        enabled=True)
    first_id = row.pk
    row.override_choice = "off"
    row.save()
    assert row.pk != first_id
    assert WaffleFlagCourseOverrideModel.objects.count() == 2
    current = WaffleFlagCourseOverrideModel.current("authz.enable_course_authoring", CourseKey.from_string("course-v1:A+B+C"))
    assert (current.pk, current.override_choice) == (row.pk, "off")
