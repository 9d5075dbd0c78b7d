"""The audiences REST API: serializers, viewsets and their URLs."""
