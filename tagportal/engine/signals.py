"""Signals other apps listen to, so the engine never imports them.

``results_updated`` is sent once new tag results are swapped in and committed, with
``brand_id`` (int) and ``tag_ids`` (list of the tags whose result changed). The
audiences app refreshes the audiences that read those tags.
"""

from django.dispatch import Signal

results_updated = Signal()
