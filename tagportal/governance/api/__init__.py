"""The governance REST API: serializers, viewsets and their URLs."""
