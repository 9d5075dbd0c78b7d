"""The engine REST API: serializers, viewsets and their URLs."""
