"""Algorithm tags: models fitted on a brand's people (RFM, BG/NBD + Gamma-Gamma lifetime
value and purchase intent, the churn warning, AIPL stages) whose scores are ordinary tag
results. Above the engine (it reads profiles and the engine's results), below audiences."""
