from django.db import migrations, models


class Migration(migrations.Migration):
    """A new action: finished multi-label answers sent back to the queue for the classes added since."""

    dependencies = [
        ('audit', '0002_auditevent_index_actor_username'),
    ]

    operations = [
        migrations.AlterField(
            model_name='auditevent',
            name='action',
            field=models.CharField(choices=[('annotation.create', 'annotation finished'), ('annotation.change', 'finished annotation changed'), ('annotation.relabel', 'annotations relabelled (label removed)'), ('annotation.ask_new_classes', 'sent back for the classes added since'), ('taxonomy.create', 'taxonomy created'), ('taxonomy.update', 'taxonomy changed'), ('taxonomy.delete', 'taxonomy deleted'), ('label.add', 'labels added'), ('label.update', 'label changed'), ('label.reorder', 'labels reordered'), ('label.delete', 'label removed')], max_length=32),
        ),
    ]
