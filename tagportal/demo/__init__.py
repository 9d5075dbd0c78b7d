"""The demo bootstrap: project-level orchestration that may use every app. It creates
the demo business lines, brands, users, templates, data sources, people, change
requests, audiences, usage and reports (``manage.py bootstrap_demo``)."""
