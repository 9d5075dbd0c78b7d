"""The profiles REST API: serializers, viewsets and their URLs."""
