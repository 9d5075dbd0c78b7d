"""The Plotly pages for data stewards: cleanup dashboard, activity, usage, cold tags,
quality, duplicates and the reports behind them, mounted at ``/dashboards/``."""
