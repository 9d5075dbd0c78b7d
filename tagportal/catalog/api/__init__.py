"""The catalog REST API: serializers, viewsets and their URLs."""
