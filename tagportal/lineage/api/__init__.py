"""The lineage REST API: serializers, viewsets and their URLs."""
