# Written for the compatibility tier: the final state of edx-platform's table (see models.py).

import django.utils.timezone
import model_utils.fields
import opaque_keys.edx.django.models
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
    ]

    operations = [
        migrations.CreateModel(
            name='CourseOverview',
            fields=[
                ('created', model_utils.fields.AutoCreatedField(default=django.utils.timezone.now, editable=False, verbose_name='created')),
                ('modified', model_utils.fields.AutoLastModifiedField(default=django.utils.timezone.now, editable=False, verbose_name='modified')),
                ('version', models.IntegerField()),
                ('id', opaque_keys.edx.django.models.CourseKeyField(db_index=True, max_length=255, primary_key=True, serialize=False)),
                ('_location', opaque_keys.edx.django.models.UsageKeyField(max_length=255)),
                ('org', models.TextField(default='outdated_entry', max_length=255)),
                ('display_name', models.TextField(null=True)),
                ('display_number_with_default', models.TextField()),
                ('display_org_with_default', models.TextField()),
                ('start', models.DateTimeField(null=True)),
                ('end', models.DateTimeField(null=True)),
                ('course_image_url', models.TextField()),
                ('visible_to_staff_only', models.BooleanField(default=False)),
                ('invitation_only', models.BooleanField(default=False)),
                ('catalog_visibility', models.TextField(null=True)),
                ('self_paced', models.BooleanField(default=False)),
                ('language', models.TextField(null=True)),
            ],
        ),
    ]
