from django.db import migrations, models


class Migration(migrations.Migration):
    """Multi-label answers record the classes their labeler was shown (filled for stored answers
    by the next migration) and, when sent back for new classes, the classes asked now."""

    dependencies = [
        ('labeling', '0009_item_image_check_task_waiting'),
    ]

    operations = [
        migrations.AddField(
            model_name='categoryannotation',
            name='shown_label_ids',
            field=models.JSONField(blank=True, editable=False, help_text='Multi-label: the ids of the classes the labeler was shown.', null=True),
        ),
        migrations.AddField(
            model_name='categoryannotation',
            name='asked_label_ids',
            field=models.JSONField(blank=True, editable=False, help_text='Multi-label, sent back for new classes: the ids of the classes asked now.', null=True),
        ),
        migrations.AddConstraint(
            model_name='categoryannotation',
            constraint=models.CheckConstraint(
                condition=models.Q(('asked_label_ids__isnull', True), models.Q(('shown_label_ids__isnull', False), ('status', 'finished')), _connector='OR'),
                name='labeling_categoryannotation_asked_only_of_finished_multi_label',
                violation_error_message='Only a finished multi-label answer can be sent back for new classes.',
            ),
        ),
    ]
